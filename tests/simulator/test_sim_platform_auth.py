"""The carriers' own upgrade authentication, end to end: the simulator signs as each carrier
does, the receiver verifies, and a wrong credential is refused at the handshake."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from receiver.app import ReceiverServer
from receiver.calls import actions as a
from receiver.config import Settings
from receiver.events import Encoding
from receiver.simulator import Faults, Flow, RunReport, RunSettings, WireFormat, run
from receiver.simulator.credentials import Credentials
from tests.simulator.test_sim_end_to_end import assert_same_recordings, spec, streams_done

PLIVO_TOKEN = "MAplivo-auth-token"
VONAGE_SECRET = "vonage-signature-secret-of-32-bytes+"
API_KEY, CLIENT_SECRET = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh", base64.b64encode(b"client secret of the key").decode()
RIGHT = Credentials(PLIVO_TOKEN, VONAGE_SECRET, API_KEY, CLIENT_SECRET)
WRONG = Credentials("not-the-token", "not-the-secret-but-32-bytes-long!!", API_KEY, base64.b64encode(b"x").decode())


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[ReceiverServer]:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "recordings"),
        log_format="json",
        plivo_auth_token=PLIVO_TOKEN,
        vonage_signature_secret=VONAGE_SECRET,
        audiohook_api_keys=(f"{API_KEY}:{CLIENT_SECRET}",),
        auth_basic_users=("jambonz:listen-password",),
    )
    async with ReceiverServer(settings) as server:
        yield server


async def simulate(url: str, wire: WireFormat, credentials: Credentials, record: Path | None = None) -> RunReport:
    flow = Flow(actions=(a.start_stream(url, "both", allow_insecure=True), a.pause(0.4), a.hangup()))
    settings = RunSettings(
        fast=True, allow_insecure=True, record_sent=record, open_timeout=5.0, credentials=credentials
    )
    encoding = Encoding.MULAW if wire in (WireFormat.PLIVO, WireFormat.AUDIOHOOK) else Encoding.L16
    return await run(flow, spec(wire, encoding, 8000), Faults(), settings)


@pytest.mark.parametrize(
    ("wire", "path", "method"),
    [
        (WireFormat.PLIVO, "/plivo?token=abc", "plivo_signature"),
        (WireFormat.VONAGE, "/vonage", "vonage_jwt"),
        (WireFormat.AUDIOHOOK, "/audiohook", "audiohook_signature"),
        (WireFormat.JAMBONZ, "/jambonz", "basic"),
    ],
)
async def test_a_carrier_signed_upgrade_is_admitted_and_recorded(
    guarded: ReceiverServer, tmp_path: Path, wire: WireFormat, path: str, method: str
) -> None:
    userinfo = "jambonz:listen-password@" if wire is WireFormat.JAMBONZ else ""
    url = f"ws://{userinfo}127.0.0.1:{guarded.port}{path}"

    with capture_logs() as logs:
        report = await simulate(url, wire, RIGHT, tmp_path / "sent")
        await streams_done(guarded, 1)

    assert report.calls[0].streams[0].outcome == "stopped", report.calls[0].streams[0].error
    [line] = [e for e in logs if e["event"] == "stream_authenticated"]
    assert line["method"] == method
    if wire is WireFormat.PLIVO:
        assert line["reading"] == "signed url: stream_sdk"
    assert assert_same_recordings(tmp_path / "sent", Path(guarded.settings.recordings_dir)) >= 1


@pytest.mark.parametrize(
    ("wire", "path", "reason"),
    [
        (WireFormat.PLIVO, "/plivo", "bad_plivo_signature"),
        (WireFormat.VONAGE, "/vonage", "bad_jwt_signature"),
        (WireFormat.AUDIOHOOK, "/audiohook", "bad_audiohook_signature"),
        (WireFormat.EXOTEL, "/exotel", "missing_credentials"),
    ],
)
async def test_a_wrong_or_missing_carrier_credential_is_refused_at_the_handshake(
    guarded: ReceiverServer, wire: WireFormat, path: str, reason: str
) -> None:
    with capture_logs() as logs:
        report = await simulate(f"ws://127.0.0.1:{guarded.port}{path}", wire, WRONG)

    stream = report.calls[0].streams[0]
    assert stream.outcome == "refused" and "401" in (stream.error or "")
    [line] = [e for e in logs if e["event"] == "stream_refused" and "reason" in e]  # the receiver's line
    assert line["reason"] == reason and line["status"] == 401
    assert guarded.streams_total == 0
