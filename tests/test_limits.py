"""Per-connection limits with an injected clock: no sleeping."""

from __future__ import annotations

from receiver.security.limits import ConnectionLimits, Limit, LimitExceeded, LimitSettings


def _run_rate(limits: ConnectionLimits, times: list[float]) -> Limit | None:
    """Feed one message per entry of ``times`` as the receive loop does."""
    for count, now in enumerate(times, start=1):
        if count >= limits.rate_check_at:
            hit = limits.check_rate(now, count)
            if hit is not None:
                return hit
    return None


def test_rate_within_the_limit_never_trips() -> None:
    limits = ConnectionLimits(LimitSettings(max_messages_per_second=100, rate_window=1.0), now=0.0)

    # 100 messages a second, for 10 seconds.
    assert _run_rate(limits, [i / 100 for i in range(1, 1001)]) is None


def test_rate_over_the_limit_trips_within_one_window() -> None:
    limits = ConnectionLimits(LimitSettings(max_messages_per_second=100, rate_window=1.0), now=0.0)

    # 300 messages a second.
    assert _run_rate(limits, [i / 300 for i in range(1, 1001)]) is Limit.RATE
    assert limits.hit is Limit.RATE


def test_rate_limit_costs_nothing_until_the_budget_is_spent() -> None:
    limits = ConnectionLimits(LimitSettings(max_messages_per_second=50, rate_window=2.0), now=0.0)

    assert limits.rate_check_at == 100


def test_rate_limit_off() -> None:
    limits = ConnectionLimits(LimitSettings(max_messages_per_second=0), now=0.0)

    assert _run_rate(limits, [0.0] * 10_000) is None


def test_idle_counts_from_the_last_message_seen() -> None:
    limits = ConnectionLimits(LimitSettings(idle_timeout=5.0, start_timeout=0), now=0.0)

    assert limits.sweep(1.0, 1) is None
    assert limits.sweep(5.9, 1) is None
    assert limits.sweep(6.0, 1) is Limit.IDLE


def test_no_start_in_time() -> None:
    limits = ConnectionLimits(LimitSettings(idle_timeout=0, start_timeout=3.0), now=10.0)

    assert limits.sweep(12.9, 5) is None
    assert limits.sweep(13.0, 6) is Limit.START_TIMEOUT
    started = ConnectionLimits(LimitSettings(idle_timeout=0, start_timeout=3.0), now=10.0)
    started.mark_started()
    assert started.sweep(13.0, 6) is None


def test_max_duration() -> None:
    limits = ConnectionLimits(LimitSettings(idle_timeout=0, start_timeout=0, max_stream_seconds=100.0), now=0.0)
    limits.mark_started()

    assert limits.sweep(99.0, 1) is None
    assert limits.sweep(100.0, 2) is Limit.MAX_DURATION


def test_every_limit_has_a_close_code_and_a_short_reason() -> None:
    codes = {limit: limit.close_code for limit in Limit}

    assert codes[Limit.RATE] == 4429
    assert codes[Limit.IDLE] == 4408
    assert codes[Limit.MAX_DURATION] == 1008
    assert codes[Limit.CAPACITY] == 1013
    assert all(len(limit.close_reason.encode()) <= 123 for limit in Limit)
    exc = LimitExceeded(Limit.RATE)
    assert (exc.close_code, exc.close_reason) == (4429, "rate")


def test_sweep_interval_follows_the_shortest_time_limit() -> None:
    assert LimitSettings().sweep_interval == 1.0
    assert LimitSettings(idle_timeout=0.2).sweep_interval == 0.05
    assert LimitSettings(idle_timeout=0, start_timeout=0, max_stream_seconds=0).sweep_interval == 1.0
