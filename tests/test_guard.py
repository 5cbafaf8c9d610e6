"""The guard: each decision (upgrade, start, limits) answered, counted, and logged once, never with a secret."""

from __future__ import annotations

import time
from http import HTTPStatus

import pytest
from structlog.testing import capture_logs

from receiver.config import Settings
from receiver.errors import CloseCode, StreamRefused
from receiver.events import Encoding, MediaFormat, Platform, StreamStarted, Track
from receiver.logging import get_logger
from receiver.security.auth import HandshakeResult, stream_token
from receiver.security.guard import Guard, Refusal
from receiver.security.limits import Limit

SECRET = "guard-secret"


def started(call_id: str = "call_g", **custom: str) -> StreamStarted:
    return StreamStarted(
        platform=Platform.MINIVOICE,
        stream_id="str_g",
        call_id=call_id,
        tracks=(Track.INBOUND,),
        media_format=MediaFormat(Encoding.MULAW, 8000),
        custom_parameters=custom,
    )


def token(call_id: str = "call_g") -> str:
    return stream_token(call_id=call_id, secret=SECRET, expires_at=int(time.time()) + 600)


def check(guard: Guard, path: str = "/mv", headers: tuple[tuple[str, str], ...] = (), **kw: object) -> object:
    args: dict[str, object] = {"peer": "127.0.0.1", "pending": 0, "draining": False, **kw}
    return guard.check_request(path=path, headers=headers, **args)  # type: ignore[arg-type]


def test_an_open_server_admits_the_upgrade() -> None:
    result = check(Guard(Settings()))

    assert result == HandshakeResult(None, client="127.0.0.1")


def test_draining_and_capacity_refuse_with_503_counted_and_logged() -> None:
    guard = Guard(Settings(max_streams=2))

    with capture_logs() as logs:
        draining = check(guard, draining=True)
        full = check(guard, pending=2)

    assert draining == Refusal(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "unavailable", "reason": "draining"})
    assert isinstance(full, Refusal) and full.body["reason"] == "over_capacity"
    assert guard.counts == {"refused_draining": 1, "refused_over_capacity": 1, "limit_capacity": 1}
    assert [(e["event"], e["reason"]) for e in logs] == [
        ("stream_refused", "draining"),
        ("stream_refused", "over_capacity"),
    ]
    assert logs[1]["max_streams"] == 2


def test_missing_credentials_are_a_401_with_a_challenge_and_a_redacted_path() -> None:
    guard = Guard(Settings(auth_secrets=(SECRET,), auth_start_token=False))

    with capture_logs() as logs:
        refused = check(guard, path="/mv?token=v1.not-a-token&x=1")

    assert isinstance(refused, Refusal)
    assert (refused.status, refused.body) == (
        HTTPStatus.UNAUTHORIZED,
        {"error": "unauthorized", "reason": "token_malformed"},
    )
    assert refused.headers == (("WWW-Authenticate", 'Bearer realm="receiver"'),)
    [line] = logs
    assert line["path"] == "/mv?token=redacted&x=1"
    assert "not-a-token" not in repr(logs)


def test_an_address_outside_the_allow_list_is_a_403_without_a_challenge() -> None:
    guard = Guard(Settings(ip_allowlist=("10.9.8.0/24",)))

    refused = check(guard)

    assert isinstance(refused, Refusal)
    assert (refused.status, refused.body["error"], refused.headers) == (HTTPStatus.FORBIDDEN, "forbidden", ())
    assert guard.counts == {"refused_address_not_allowed": 1}


def test_a_valid_url_token_admits_the_upgrade_for_its_call() -> None:
    guard = Guard(Settings(auth_secrets=(SECRET,)))

    result = check(guard, path=f"/mv?token={token()}")

    assert isinstance(result, HandshakeResult)
    assert (result.method, result.call_id) == ("url_token", "call_g")
    assert guard.redact(f"/mv?token={token()}") == "/mv?token=redacted"


def test_a_start_token_is_checked_scrubbed_and_the_stream_marked_started() -> None:
    guard = Guard(Settings(auth_secrets=(SECRET,)))
    handshake = check(guard)
    limits = guard.new_limits()
    assert isinstance(handshake, HandshakeResult) and handshake.pending_start

    with capture_logs() as logs:
        admitted = guard.admit_start(handshake, limits, started(token=token(), agent="a1"), get_logger("test"))

    assert admitted.custom_parameters == {"agent": "a1"}  # sinks never see the token
    assert limits.sweep(time.monotonic() + guard.limits.start_timeout + 1, 0) is not Limit.START_TIMEOUT
    assert [(e["event"], e["method"]) for e in logs] == [("stream_authenticated", "start_token")]


@pytest.mark.parametrize(
    ("custom", "message"),
    [({}, "no stream token"), ({"token": "v1.1.x.y"}, "start token malformed")],
)
def test_a_start_without_a_good_token_is_refused_and_counted(custom: dict[str, str], message: str) -> None:
    guard = Guard(Settings(auth_secrets=(SECRET,)))
    handshake = check(guard)
    assert isinstance(handshake, HandshakeResult)

    with pytest.raises(StreamRefused, match=message) as refused:
        guard.admit_start(handshake, guard.new_limits(), started(**custom), get_logger("test"))

    assert refused.value.close_code is CloseCode.POLICY_VIOLATION
    assert guard.counts["refused_start"] == 1


def test_a_url_token_for_another_call_is_refused_at_start() -> None:
    guard = Guard(Settings(auth_secrets=(SECRET,)))
    handshake = check(guard, path=f"/mv?token={token('call_other')}")
    assert isinstance(handshake, HandshakeResult)

    with pytest.raises(StreamRefused, match="another call"):
        guard.admit_start(handshake, guard.new_limits(), started("call_g"), get_logger("test"))


def test_a_start_that_skipped_the_upgrade_check_fails_closed_when_auth_is_on() -> None:
    with pytest.raises(StreamRefused, match="not authenticated"):
        Guard(Settings(auth_bearer_tokens=("b",))).admit_start(
            None, Guard(Settings()).new_limits(), started(), get_logger("t")
        )

    open_guard = Guard(Settings())
    assert open_guard.admit_start(None, open_guard.new_limits(), started(), get_logger("t")) == started()


def test_a_limit_hit_is_counted_and_logged_with_its_close_code() -> None:
    guard = Guard(Settings(max_messages_per_second=50.0))

    with capture_logs() as logs:
        guard.limit_hit(get_logger("test"), Limit.RATE, max_messages_per_second=50.0)
        guard.limit_hit(get_logger("test"), Limit.HANDSHAKE_TIMEOUT)

    assert guard.counts == {"limit_rate": 1, "limit_handshake_timeout": 1}
    assert [(e["limit"], e["close_code"]) for e in logs] == [("rate", 4429), ("handshake_timeout", None)]
    assert guard.limit_value(Limit.RATE) == 50.0 and guard.limit_value(Limit.MESSAGE_SIZE) == 0


def test_start_up_says_loudly_when_nothing_guards_the_port() -> None:
    with capture_logs() as logs:
        Guard(Settings()).log_startup()
        Guard(Settings(auth_bearer_tokens=("b",), ip_allowlist=("127.0.0.0/8",))).log_startup()

    assert [(e["event"], e["log_level"]) for e in logs] == [("auth_disabled", "warning"), ("auth_configured", "info")]
    assert logs[1]["modes"] == ["bearer", "ip_allowlist"]
