"""The runner's real-time clock: the shared ticker."""

from __future__ import annotations

import asyncio

from receiver.simulator.runner import Ticker


async def test_the_ticker_shares_one_future_per_bucket_and_never_fires_early() -> None:
    loop = asyncio.get_running_loop()
    ticker = Ticker(loop, resolution=0.01)
    base = loop.time() + 0.02
    key = -int(-base // 0.01)
    start = key * 0.01 - 0.008  # well inside the bucket that ends at key * 0.01

    same = ticker.at(start), ticker.at(start + 0.005)
    later = ticker.at(key * 0.01 + 0.005)

    assert same[0] is same[1]
    assert later is not same[0]
    await same[0]
    assert loop.time() >= start + 0.005
    await later
    assert loop.time() >= key * 0.01 + 0.005


async def test_a_due_time_in_the_past_fires_at_once() -> None:
    loop = asyncio.get_running_loop()
    ticker = Ticker(loop)

    await asyncio.wait_for(ticker.at(loop.time() - 1), 5)
