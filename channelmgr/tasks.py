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


async def end_leftover_tasks(timeout: float = 10.0) -> list[str]:
    """After a stop: cancel every task still on this loop but the caller, wait ``timeout``
    seconds for them, and let go of any that will not end (their names and stacks logged).

    ``asyncio.run`` ends by cancelling every task and waiting for all of them with no bound;
    one that swallows its cancel and then waits on something that never comes (a driver's
    close whose worker thread has gone, a job the scheduler left running) would keep the
    process alive after SIGTERM forever. Returns the names of the tasks let go.
    """
    import io

    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in left:
        t.cancel()
    if left:
        await asyncio.wait(left, timeout=timeout)
    stuck = [t for t in left if not t.done()]
    names = []
    for t in stuck:
        buf = io.StringIO()
        t.print_stack(file=buf)
        names.append(t.get_name())
        log.warning("a task did not end when cancelled at shutdown; letting it go", task=t.get_name(),
                    coro=repr(t.get_coro())[:200], stack=buf.getvalue()[-2000:])
        # out of the loop's registry, so the loop's own close does not wait for it without end
        asyncio.tasks._unregister_task(t)  # type: ignore[attr-defined]
    return names
