"""A stop always ends: a task that swallows its cancel cannot keep the loop (and the process
after SIGTERM) from closing."""

from __future__ import annotations

import asyncio

import pytest

from channelmgr.tasks import bounded, end_leftover_tasks


async def _stubborn(started: asyncio.Event) -> None:
    started.set()
    while True:  # what a loop built on 3.11's wait_for can do: the cancel is lost, the wait goes on
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


@pytest.mark.timeout(60)
async def test_a_task_that_will_not_end_is_let_go_and_the_loop_still_closes():
    started = asyncio.Event()
    polite = asyncio.create_task(asyncio.sleep(3600), name="polite")
    stubborn = asyncio.create_task(_stubborn(started), name="stubborn")
    await started.wait()
    let_go = await end_leftover_tasks(0.3)
    assert let_go == ["stubborn"]
    assert polite.cancelled()
    assert not stubborn.done() and stubborn not in asyncio.all_tasks()
    # the test's loop now closes (pytest-asyncio cancels and waits for every task it knows of);
    # before end_leftover_tasks this teardown never ended


async def test_a_shutdown_step_that_overruns_is_left_and_says_so():
    assert await bounded(asyncio.sleep(0), 1, "quick") is True
    assert await bounded(asyncio.sleep(3600), 0.2, "slow") is False

    async def fails():
        raise RuntimeError("driver gone")

    assert await bounded(fails(), 1, "failing") is False
