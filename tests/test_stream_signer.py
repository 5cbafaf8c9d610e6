"""actions.StreamSigner: stream URLs the receiver's stream-token check accepts for their call only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from receiver.calls import actions as a
from receiver.security.auth import TokenInvalid, verify_stream_token

SECRET = "signer-secret"
URL = "wss://media.example.com/minivoice?region=eu"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token_of(url: str) -> str:
    [token] = parse_qs(urlsplit(url).query)["token"]
    return token


def test_a_signed_url_keeps_its_query_and_verifies_for_its_call_only() -> None:
    signer = a.StreamSigner(SECRET, ttl=600, clock=Clock(1_000_000))

    url = signer.url(URL, "call_1")

    assert url.startswith("wss://media.example.com/minivoice?region=eu&token=v1.")
    verified = verify_stream_token(token_of(url), secrets=[SECRET], now=1_000_000, call_id="call_1")
    assert verified.expires_at == 1_000_600
    with pytest.raises(TokenInvalid) as wrong:
        verify_stream_token(token_of(url), secrets=[SECRET], now=1_000_000, call_id="call_2")
    assert wrong.value.reason == "wrong_call"
    with pytest.raises(TokenInvalid) as late:
        verify_stream_token(token_of(url), secrets=[SECRET], now=1_000_601, call_id="call_1")
    assert late.value.reason == "expired"


def test_the_same_call_gets_the_same_url_later_so_stop_stream_matches() -> None:
    clock = Clock(1_000_000)
    signer = a.StreamSigner(SECRET, ttl=600, clock=clock)
    start = signer.start_stream(URL, "call_1", track="both")
    clock.now += 120  # a later answer (say, an update of the call flow)

    stop = signer.stop_stream(URL, "call_1")

    assert stop.stream_url == start.stream_url
    assert stop.matches(start.stream_url, start.track)
    assert signer.url(URL, "call_2") != start.stream_url


def test_expiries_are_remembered_for_a_bounded_number_of_calls() -> None:
    clock = Clock(1_000_000)
    signer = a.StreamSigner(SECRET, ttl=600, remember=2, clock=clock)
    first = signer.url(URL, "call_1")
    signer.url(URL, "call_2")
    signer.url(URL, "call_3")  # call_1 is forgotten
    clock.now += 10

    assert signer.url(URL, "call_1") != first
    assert signer.url(URL, "call_1", expires_at=1_000_600) == first  # an explicit expiry gives it back


def test_sign_signs_the_stream_actions_of_a_flow_and_leaves_the_rest() -> None:
    signer = a.StreamSigner(SECRET, clock=Clock(1_000_000))
    flow = a.parse_actions(
        {
            "actions": [
                {"type": "start_stream", "stream_url": URL, "track": "both", "parameters": {"lang": "en"}},
                {"type": "pause", "length": 2},
                {"type": "stop_stream", "stream_url": URL},
                {"type": "stop_stream"},
                {"type": "hangup"},
            ]
        }
    )

    start, pause, stop, stop_all, hangup = signer.sign(flow, "call_1", token_parameter=True)

    assert isinstance(start, a.StartStream) and isinstance(stop, a.StopStream)
    assert start.stream_url == stop.stream_url == signer.url(URL, "call_1")
    assert dict(start.parameters) == {"lang": "en", "token": token_of(start.stream_url)}
    assert (pause, stop_all, hangup) == (flow[1], flow[3], flow[4])
    assert a.parse_actions(a.to_payload([start, pause, stop, stop_all, hangup])) == [
        start,
        pause,
        stop,
        stop_all,
        hangup,
    ]


def test_the_signer_checks_its_settings_and_never_shows_its_secret() -> None:
    with pytest.raises(ValueError):
        a.StreamSigner("")
    with pytest.raises(ValueError):
        a.StreamSigner(SECRET, ttl=0)

    assert SECRET not in repr(a.StreamSigner(SECRET))


def test_start_stream_still_requires_wss() -> None:
    with pytest.raises(a.InvalidActions):
        a.StreamSigner(SECRET).start_stream("ws://127.0.0.1:8080/s", "call_1")
