"""Ending background tasks so that a stop always ends."""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("channelmgr.tasks")


async def cancel_and_wait(task: asyncio.Task | None, timeout: float = 5.0) -> None:
    """Cancel ``task`` and wait for it at most ``timeout`` seconds.

    Python 3.11's ``asyncio.wait_for`` can swallow a cancel that arrives as its inner wait
    ends, so a loop built on it may run on after ``cancel()``; awaiting it bare would then
    hang the stop (and SIGTERM with it). Loops should also watch a stop flag of their own.
    """
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("a background task did not end when cancelled; leaving it", task=task.get_name())
        return
    try:
        task.result()
    except (asyncio.CancelledError, Exception):
        pass


async def bounded(aw, timeout: float, what: str) -> bool:
    """Run one step of a shutdown for at most ``timeout`` seconds; True when it finished.

    A step that overruns (an aiohttp runner waiting on a handler stuck behind the database,
    a driver's close that never returns) is cancelled and left, logged, so the next steps
    (and the process's exit) still happen: a stop always ends. Errors are logged, not raised.
    """
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        log.warning("a shutdown step overran its bound; leaving it", step=what, seconds=timeout)
        return False
    try:
        task.result()
    except asyncio.CancelledError:
        return False
    except Exception as e:  # noqa: BLE001 - stopping goes on
        log.warning("a shutdown step failed", step=what, error=str(e)[:200])
        return False
    return True
