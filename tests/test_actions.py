"""answer_url actions: parsing, validation (both forms), builders, and ``receiver check-actions``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.calls import actions as a
from receiver.calls.actions import (
    ACCEPTED_BODY,
    ERROR_BODY,
    Hangup,
    InvalidActions,
    OtherAction,
    Pause,
    StartRecording,
    StartStream,
    StopRecording,
    StopStream,
    StreamTrack,
    parse_actions,
    to_payload,
)
from receiver.errors import ReceiverError
from receiver.events import Track

URL = "wss://media.example.com/minivoice"


def typed(kind: str, **fields: Any) -> dict[str, Any]:
    return {"actions": [{"type": kind, **fields}]}


def keyed(kind: str, **fields: Any) -> dict[str, Any]:
    return {"actions": [{kind: fields}]}


FORMS = pytest.mark.parametrize("form", [typed, keyed], ids=["typed", "keyed"])


def reason_of(payload: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidActions) as info:
        parse_actions(payload, **kwargs)
    return info.value.reason


# -- the pages' own examples -------------------------------------------------------

SEED_VALID = {
    "stop_stream keyed (Stop Stream page)": (
        '{"actions": [{"stop_stream": {"stream_url": "wss://media.example.com/minivoice", "track": "both"}}]}',
        [StopStream(URL, StreamTrack.BOTH)],
    ),
    "start_stream typed (Media Streams page)": (
        '{"actions": [{"type": "start_stream", "stream_url": "wss://media.example.com/minivoice", "track": "both"}]}',
        [StartStream(URL, StreamTrack.BOTH)],
    ),
    "stop_stream typed (Media Streams page)": (
        '{"actions": [{"type": "stop_stream", "stream_url": "wss://media.example.com/minivoice", "track": "both"}]}',
        [StopStream(URL, StreamTrack.BOTH)],
    ),
    "stop_recording keyed (Stop Recording page)": ('{"actions": [{"stop_recording": {}}]}', [StopRecording()]),
}


@pytest.mark.parametrize("name", list(SEED_VALID))
def test_every_valid_example_of_the_pages_parses(name: str) -> None:
    text, expected = SEED_VALID[name]

    assert parse_actions(text) == expected
    assert parse_actions(text.encode()) == expected
    assert parse_actions(json.loads(text)) == expected


def test_the_media_streams_page_failure_example_is_rejected_for_both_its_faults() -> None:
    """The page: invalid "because the URL is not wss and the track is not one of the supported values"."""
    payload = '{"actions": [{"type": "start_stream", "stream_url": "https://media.example.com/minivoice", "track": "speaker"}]}'

    reason = reason_of(payload)

    assert "stream_url must be a wss:// URL" in reason
    assert "https://media.example.com/minivoice" in reason
    assert "track must be inbound, outbound or both, not 'speaker'" in reason


def test_the_error_and_accepted_bodies_are_the_platforms() -> None:
    assert ERROR_BODY == {"error": {"code": "answer_url_error", "message": "invalid action payload"}}
    assert ACCEPTED_BODY == {"result": "stream action accepted by the call flow"}
    exc = InvalidActions("x")
    assert isinstance(exc, ReceiverError)
    assert exc.body == ERROR_BODY
    assert exc.body is not ERROR_BODY


# -- the payload -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("{not json", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        ("", "malformed JSON"),
        ("[]", "must be a JSON object with an actions array, not an array"),
        ('"actions"', "not a string"),
        ("{}", "no actions array"),
        ('{"action": []}', "no actions array"),
        ('{"actions": {}}', "actions must be an array, not an object"),
        ('{"actions": null}', "actions must be an array, not null"),
        ('{"actions": ["start_stream"]}', "actions[0] must be an object, not a string"),
    ],
)
def test_a_malformed_payload_is_rejected_with_its_reason(payload: str | bytes, expected: str) -> None:
    assert expected in reason_of(payload)


def test_an_empty_actions_array_is_valid() -> None:
    assert parse_actions('{"actions": []}') == []


def test_one_bad_action_rejects_the_whole_payload_and_names_its_index() -> None:
    payload = {"actions": [{"type": "pause", "length": 1}, {"type": "start_stream", "stream_url": "ws://x/y"}]}

    with pytest.raises(InvalidActions) as info:
        parse_actions(payload)

    assert info.value.index == 1
    assert info.value.reason.startswith("actions[1]")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({}, "must have a type field or exactly one action key"),
        ({"start_stream": {"stream_url": URL}, "pause": {}}, "found keys: pause, start_stream"),
        ({"start_stream": URL}, "actions[0].start_stream must be an object, not a string"),
        ({"hangup": True}, "actions[0].hangup must be an object, not a boolean"),
        ({"stop_recording": None}, "must be an object, not null"),
        ({"type": 3}, "type must be an action name"),
        ({"type": ""}, "type must be an action name"),
        ({"type": "Start Stream"}, "type must be an action name"),
        ({"type": "type"}, "type must be an action name"),
        ({"Start-Stream": {}}, "is not an action name"),
    ],
)
def test_an_action_that_is_neither_typed_nor_keyed_is_rejected(item: dict[str, Any], expected: str) -> None:
    assert expected in reason_of({"actions": [item]})


# -- start_stream ----------------------------------------------------------------------


@FORMS
def test_start_stream_defaults_to_the_inbound_track_and_no_parameters(form: Any) -> None:
    assert parse_actions(form("start_stream", stream_url=URL)) == [StartStream(URL, StreamTrack.INBOUND, {})]


@FORMS
@pytest.mark.parametrize("track", ["inbound", "outbound", "both"])
def test_start_stream_takes_every_track(form: Any, track: str) -> None:
    (action,) = parse_actions(form("start_stream", stream_url=URL, track=track))

    assert action == StartStream(URL, StreamTrack(track))


@FORMS
def test_start_stream_delivers_parameters_as_strings(form: Any) -> None:
    (action,) = parse_actions(form("start_stream", stream_url=URL, parameters={"token": "abc", "lang": "en"}))

    assert isinstance(action, StartStream)
    assert action.parameters == {"token": "abc", "lang": "en"}


@FORMS
def test_start_stream_keeps_the_url_exactly_with_its_query(form: Any) -> None:
    url = "wss://media.example.com:8443/minivoice/x?token=a%2Fb&sig=1"

    (action,) = parse_actions(form("start_stream", stream_url=url))

    assert isinstance(action, StartStream)
    assert action.stream_url == url


@FORMS
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "stream_url is required"),
        ({"stream_url": None}, "stream_url is required"),
        ({"stream_url": ""}, "stream_url must be a non-empty string"),
        ({"stream_url": 7}, "stream_url must be a non-empty string"),
        ({"stream_url": "https://media.example.com/minivoice"}, "must be a wss:// URL"),
        ({"stream_url": "ws://media.example.com/minivoice"}, "must be a wss:// URL"),
        ({"stream_url": "media.example.com/minivoice"}, "must be a wss:// URL"),
        ({"stream_url": "wss:///minivoice"}, "has no host"),
        ({"stream_url": "wss://media.example.com/a b"}, "without spaces"),
        ({"stream_url": "wss://media.example.com:99999/"}, "is not a valid URL"),
        ({"stream_url": URL, "track": "speaker"}, "track must be inbound, outbound or both, not 'speaker'"),
        ({"stream_url": URL, "track": "inbound_track"}, "track must be inbound, outbound or both"),
        ({"stream_url": URL, "track": "BOTH"}, "track must be inbound, outbound or both"),
        ({"stream_url": URL, "track": ["inbound"]}, "track must be inbound, outbound or both"),
        ({"stream_url": URL, "parameters": "a=b"}, "parameters must be an object of strings, not a string"),
        ({"stream_url": URL, "parameters": {"n": 1}}, "parameters.n must be a string, not a number"),
        ({"stream_url": URL, "parameters": {"n": None}}, "parameters.n must be a string, not null"),
    ],
)
def test_an_invalid_start_stream_is_rejected(form: Any, fields: dict[str, Any], expected: str) -> None:
    assert expected in reason_of(form("start_stream", **fields))


def test_the_scheme_is_case_insensitive() -> None:
    assert parse_actions(typed("start_stream", stream_url="WSS://media.example.com/x"))


def test_ws_urls_are_accepted_only_when_insecure_is_allowed() -> None:
    payload = typed("start_stream", stream_url="ws://127.0.0.1:8080/x")

    assert "must be a wss:// URL" in reason_of(payload)
    assert parse_actions(payload, allow_insecure=True) == [StartStream("ws://127.0.0.1:8080/x")]
    assert "must be a wss:// or ws:// URL" in reason_of(
        typed("start_stream", stream_url="http://h/"), allow_insecure=True
    )


def test_unknown_fields_of_a_known_action_are_ignored() -> None:
    assert parse_actions(typed("start_stream", stream_url=URL, name="s1", bidirectional=False)) == [StartStream(URL)]


# -- stop_stream -----------------------------------------------------------------------


@FORMS
def test_stop_stream_needs_no_fields(form: Any) -> None:
    assert parse_actions(form("stop_stream")) == [StopStream(None, None)]


@FORMS
def test_stop_stream_url_need_not_be_wss(form: Any) -> None:
    """A URL that matches no stream is legal and changes nothing."""
    assert parse_actions(form("stop_stream", stream_url="https://nowhere/x")) == [StopStream("https://nowhere/x")]


@FORMS
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"stream_url": ""}, "stream_url must be a non-empty string"),
        ({"stream_url": 1}, "stream_url must be a non-empty string"),
        ({"track": "speaker"}, "track must be inbound, outbound or both"),
        ({"stream_url": 1, "track": "x"}, "stream_url must be a non-empty string"),
    ],
)
def test_an_invalid_stop_stream_is_rejected(form: Any, fields: dict[str, Any], expected: str) -> None:
    assert expected in reason_of(form("stop_stream", **fields))


@pytest.mark.parametrize(
    ("action", "url", "track", "expected"),
    [
        (StopStream(), URL, "both", True),
        (StopStream(URL), URL, "inbound", True),
        (StopStream(URL + "?x=1"), URL, "inbound", False),
        (StopStream(None, StreamTrack.BOTH), URL, "both", True),
        (StopStream(None, StreamTrack.INBOUND), URL, "both", False),
        (StopStream(URL, StreamTrack.OUTBOUND), URL, "outbound", True),
        (StopStream(URL, StreamTrack.OUTBOUND), URL, StreamTrack.INBOUND, False),
    ],
)
def test_stop_stream_matches_by_equal_url_and_equal_track(
    action: StopStream, url: str, track: str, expected: bool
) -> None:
    assert action.matches(url, track) is expected


# -- recording, pause, hangup, other actions ---------------------------------------------


@FORMS
def test_recording_actions_parse_in_both_forms(form: Any) -> None:
    assert parse_actions(form("start_recording")) == [StartRecording()]
    assert parse_actions(form("start_recording", format="mp3")) == [StartRecording({"format": "mp3"})]
    assert parse_actions(form("stop_recording")) == [StopRecording()]


@FORMS
def test_pause_takes_seconds_and_defaults_to_one(form: Any) -> None:
    assert parse_actions(form("pause", length=2)) == [Pause(2.0)]
    assert parse_actions(form("pause", length=0.25)) == [Pause(0.25)]
    assert parse_actions(form("pause")) == [Pause(1.0)]


@FORMS
@pytest.mark.parametrize("length", [-1, "2", True, float("inf")])
def test_a_pause_of_no_sensible_length_is_rejected(form: Any, length: Any) -> None:
    assert "length must be a non-negative number of seconds" in reason_of(form("pause", length=length))


@FORMS
def test_hangup_parses(form: Any) -> None:
    assert parse_actions(form("hangup")) == [Hangup()]


@FORMS
@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("play", {"url": "https://example.com/a.mp3", "loop": 2}),
        ("collect_digits", {"max_digits": 4, "timeout": 5, "prompt": {"text": "enter"}}),
        ("redirect", {"url": "https://app.example.com/next"}),
        ("transfer", {"to": "+15551230003", "anything": [1, 2]}),
        ("some_future_action", {}),
    ],
)
def test_other_actions_pass_through_whatever_their_fields(form: Any, kind: str, fields: dict[str, Any]) -> None:
    assert parse_actions(form(kind, **fields)) == [OtherAction(kind, fields)]


# -- building ----------------------------------------------------------------------------


def flow() -> list[a.Action]:
    return [
        a.start_stream(URL, "both", {"token": "t"}),
        a.pause(2),
        a.stop_stream(URL, "both"),
        a.start_recording(),
        a.stop_recording(),
        a.action("play", url="https://example.com/a.mp3"),
        a.hangup(),
    ]


@pytest.mark.parametrize("form", [False, True], ids=["typed", "keyed"])
def test_built_payloads_parse_back_to_the_same_actions(form: bool) -> None:
    actions = flow()

    payload = to_payload(actions, keyed=form)

    assert parse_actions(json.dumps(payload)) == actions


def test_to_payload_writes_the_pages_shapes() -> None:
    assert to_payload([a.stop_stream(URL, "both")], keyed=True) == {
        "actions": [{"stop_stream": {"stream_url": URL, "track": "both"}}]
    }
    assert to_payload([a.start_stream(URL, "both")]) == {
        "actions": [{"type": "start_stream", "stream_url": URL, "track": "both"}]
    }
    assert to_payload([a.stop_recording()], keyed=True) == {"actions": [{"stop_recording": {}}]}


def test_builders_refuse_what_the_platform_would_refuse() -> None:
    with pytest.raises(InvalidActions, match="wss://"):
        a.start_stream("https://media.example.com/x")
    with pytest.raises(InvalidActions, match="track"):
        a.start_stream(URL, "speaker")
    with pytest.raises(InvalidActions, match="track"):
        a.stop_stream(URL, "left")
    with pytest.raises(InvalidActions, match="length"):
        a.pause(-1)
    with pytest.raises(InvalidActions, match="stream_url is required"):
        a.action("start_stream")
    assert a.start_stream("ws://127.0.0.1/x", allow_insecure=True).stream_url == "ws://127.0.0.1/x"


def test_the_dataclasses_check_their_fields_too() -> None:
    with pytest.raises(InvalidActions):
        StartStream(URL, "left")  # type: ignore[arg-type]
    with pytest.raises(InvalidActions):
        StartStream("")
    assert StartStream(URL, "both") == StartStream(URL, StreamTrack.BOTH)  # type: ignore[arg-type]


def test_stream_track_names_its_tracks() -> None:
    assert StreamTrack.BOTH.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert StreamTrack.OUTBOUND.tracks == (Track.OUTBOUND,)


def test_check_returns_a_verdict_with_the_platforms_body() -> None:
    good = a.check(to_payload(flow()))
    bad = a.check('{"actions": [{"type": "start_stream"}]}')

    assert good.ok and good.body == ACCEPTED_BODY and good.reason is None
    assert not bad.ok and bad.body == ERROR_BODY and "stream_url is required" in (bad.reason or "")


# -- receiver check-actions ----------------------------------------------------------------


def run_check(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", "check-actions", str(path), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_check_actions_prints_ok_for_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(to_payload(flow())))

    result = run_check(path)

    assert result.returncode == 0
    assert result.stdout.startswith("OK: 7 action(s): start_stream, pause, stop_stream")


def test_check_actions_prints_what_is_wrong_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(
        '{"actions": [{"type": "start_stream", "stream_url": "https://media.example.com/minivoice", "track": "speaker"}]}'
    )

    result = run_check(path)

    assert result.returncode == 1
    assert "invalid action payload" in result.stdout
    assert "must be a wss:// URL" in result.stdout and "'speaker'" in result.stdout


def test_check_actions_allow_insecure_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(typed("start_stream", stream_url="ws://127.0.0.1:9/x")))

    refused = run_check(path)
    assert refused.returncode == 1 and "pass --allow-insecure" in refused.stdout
    assert run_check(path, "--allow-insecure").returncode == 0
    missing = run_check(tmp_path / "nope.json")
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_check_actions_fills_in_the_local_receivers_address_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "receiver.toml"
    config.write_text("[server]\nport = 9123\n")
    example = Path(__file__).parent.parent / "examples" / "flow.json"

    result = run_check(example, "--allow-insecure", "--config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 7 action(s)" in result.stdout


# -- properties ------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_names = st.sampled_from(
    ["start_stream", "stop_stream", "start_recording", "stop_recording", "pause", "hangup", "play", "type", ""]
)


@given(
    st.one_of(
        _json,
        st.dictionaries(st.just("actions"), st.lists(st.dictionaries(_names, _json, max_size=3), max_size=4)),
        st.lists(
            st.fixed_dictionaries(
                {"type": _names}, optional={"stream_url": _json, "track": _json, "length": _json, "parameters": _json}
            ),
            max_size=4,
        ).map(lambda items: {"actions": items}),
    )
)
def test_any_json_either_parses_or_raises_invalid_actions(payload: Any) -> None:
    try:
        actions = parse_actions(payload)
    except InvalidActions as exc:
        assert exc.reason
    else:
        assert parse_actions(to_payload(actions)) == actions
        assert parse_actions(to_payload(actions, keyed=True)) == actions


_urls = st.builds(
    lambda host, path: f"wss://{host}.example.com/{path}",
    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z0-9/_-]{0,12}", fullmatch=True),
)
_params = st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)
# orjson, the payload parser, reads integers as 64-bit: a larger JSON integer comes back a float.
_json_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_tracks = st.sampled_from(list(StreamTrack))
_actions = st.one_of(
    st.builds(StartStream, _urls, _tracks, _params),
    st.builds(StopStream, st.none() | _urls, st.none() | _tracks),
    st.builds(
        StartRecording,
        st.dictionaries(
            st.from_regex(r"[a-z]{1,6}", fullmatch=True).filter(lambda k: k != "type"), _json_ints, max_size=2
        ),
    ),
    st.just(StopRecording()),
    st.builds(Pause, st.floats(0, 3600, allow_nan=False)),
    st.just(Hangup()),
    st.builds(
        OtherAction,
        st.sampled_from(["play", "collect_digits", "redirect", "transfer"]),
        st.dictionaries(
            st.from_regex(r"[a-z]{1,6}", fullmatch=True).filter(lambda k: k != "type"), _json_ints, max_size=2
        ),
    ),
)


@given(st.lists(_actions, max_size=6), st.booleans())
def test_every_valid_flow_survives_a_round_trip_through_json(actions: list[a.Action], keyed: bool) -> None:
    assert parse_actions(json.dumps(to_payload(actions, keyed=keyed))) == actions
