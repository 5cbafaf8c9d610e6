"""The console in a real browser (headless Chromium): a real receiver, a call from the simulator.

The tests run in file order: the Live page watches the call while it runs,
then the calls list and the call page look at what it left. The receiver is
configured with a webhook secret, so every page is opened with ``?token=``,
and every link, fetch, audio request and event stream must carry it.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..serve_process import ReceiverProcess
from .conftest import AGENT, CALL_SECONDS, CALLER, KEYWORD, SECRET, screenshot, simulate

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def call(receiver: ReceiverProcess, voices: tuple[Path, Path]) -> Iterator[subprocess.Popen[bytes]]:
    """The simulated call, started once for the module (the Live test watches it run)."""
    proc = simulate(receiver, voices)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


@pytest.fixture(scope="module")
def recorded(receiver: ReceiverProcess, call: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The call once it is over: its simulator report, its stream ended and its webhook stored."""
    out, _ = call.communicate(timeout=60)
    assert call.returncode == 0, out
    report = json.loads(out)
    call_id = report["calls"][0]["call_id"]
    receiver.wait_for("stream_ended", call_id=call_id)
    receiver.wait_for("webhook_stored", call_id=call_id)
    return report["calls"][0]


def url(receiver: ReceiverProcess, path: str) -> str:
    return f"http://127.0.0.1:{receiver.api}{path}{'&' if '?' in path else '?'}token={SECRET}"


def new_page(browser: Any, **options: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return page


def test_live_page_shows_each_tracks_level_moving_and_transcript_lines_as_they_come(
    browser: Any, receiver: ReceiverProcess, call: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    page = new_page(browser)
    page.goto(url(receiver, "/ui/live"))

    # Levels arrive four times a second: wait for the caller's meter to take three different values.
    page.wait_for_function(
        """() => {
            const meter = document.querySelector('#live-streams meter.level[data-track="inbound"]');
            if (!meter || meter.dataset.level === undefined) return false;
            window.levelsSeen = window.levelsSeen || new Set();
            window.levelsSeen.add(meter.dataset.level);
            return window.levelsSeen.size >= 3 && Math.max(...[...window.levelsSeen].map(Number)) > -40;
        }""",
        polling=100,
    )
    line = page.locator("#live-lines li", has_text=CALLER).first
    line.wait_for()

    assert page.locator("#live-state").text_content() == "connected"
    assert "caller" in line.text_content()
    assert page.locator("#live-streams tbody tr").count() == 1
    page.wait_for_function(
        """() => [...document.querySelectorAll('#live-streams meter.level')].some((m) => Number(m.dataset.level) > -30)""",
        polling=50,
    )
    screenshot(page, "live", tmp_path)
    assert page.errors == []
    page.context.close()


def test_calls_list_shows_the_call_and_filters_by_status_and_number(
    browser: Any, receiver: ReceiverProcess, recorded: dict[str, Any], tmp_path: Path
) -> None:
    call_id = recorded["call_id"]
    page = new_page(browser)
    page.goto(url(receiver, "/ui/"))
    row = page.locator("table.calls tbody tr", has_text=call_id)

    assert row.locator("a.call-link").text_content() == call_id
    assert row.locator(".status").text_content() == "completed"
    assert row.locator("td").nth(5).text_content() == "1"  # streams
    screenshot(page, "calls", tmp_path)

    page.fill("input[name=q]", "5551230002")  # the simulator's called number
    page.click("form.filters button")
    assert page.locator("table.calls a.call-link", has_text=call_id).count() == 1
    assert f"token={SECRET}" in page.url  # the filter form carries the token

    page.select_option("select[name=status]", "failed")
    page.click("form.filters button")
    assert page.locator("p.empty").text_content() == "No calls match these filters."
    assert page.errors == []
    page.context.close()


def test_call_page_draws_the_waveform_plays_and_seeks_from_the_transcript(
    browser: Any, receiver: ReceiverProcess, recorded: dict[str, Any], tmp_path: Path
) -> None:
    call_id = recorded["call_id"]
    stream_id = recorded["streams"][0]["stream_id"]
    page = new_page(browser)
    audio_statuses: list[int] = []
    page.on("response", lambda r: audio_statuses.append(r.status) if "/audio/stereo.wav" in r.url else None)
    page.goto(url(receiver, "/ui/"))
    page.click(f"a.call-link:text-is('{call_id}')")  # the list's link, token and all
    figure = page.locator("figure.waveform")
    page.wait_for_selector("figure.waveform[data-drawn='1']")

    # The waveform spans the recording: the stream ran CALL_SECONDS on the media clock.
    with wave.open(str(receiver.recordings / call_id / f"{stream_id}.stereo.wav")) as w:
        recorded_seconds = w.getnframes() / w.getframerate()
    assert float(figure.get_attribute("data-duration")) == pytest.approx(recorded_seconds, abs=0.001)
    assert recorded_seconds == pytest.approx(CALL_SECONDS, abs=0.02)
    assert int(figure.get_attribute("data-keywords")) >= 1
    with urllib.request.urlopen(url(receiver, f"/calls/{call_id}"), timeout=10) as response:
        outcome = json.load(response)["streams"][0]["outcome"]
    gaps = sum(len(spans) for spans in outcome["gap_spans"].values())
    assert gaps > 0  # the simulator lost frames
    assert int(figure.get_attribute("data-gaps")) == gaps  # each one marked
    painted = page.evaluate(
        """() => {
            const c = document.querySelector('figure.waveform canvas');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let caller = 0, agent = 0;
            for (let i = 0; i < px.length; i += 4) {
                if (px[i] === 0x2f && px[i + 1] === 0x6f && px[i + 2] === 0xb3) caller++;
                if (px[i] === 0xc0 && px[i + 1] === 0x62 && px[i + 2] === 0x2d) agent++;
            }
            return [caller, agent];
        }"""
    )
    assert min(painted) > 1000  # both tracks drawn

    # Play a second of the stereo recording (fetched by range requests through the API).
    page.evaluate("() => document.querySelector('audio').play()")
    page.wait_for_function("() => document.querySelector('audio').currentTime >= 1.0")
    assert 206 in audio_statuses

    # Click the agent's first line: the player seeks there, the line lights up, its caption shows.
    line = page.locator("ol.dialogue li.outbound button.line").first
    start = float(line.get_attribute("data-start"))
    line.click()
    page.wait_for_function(
        f"() => {{ const t = document.querySelector('audio').currentTime; return t >= {start} && t < {start} + 2; }}"
    )
    page.wait_for_selector("ol.dialogue li.outbound button.line.current")
    page.wait_for_function(f"() => document.querySelector('.caption').textContent.includes({json.dumps(AGENT)})")
    assert page.locator(".caption").text_content() == f"agent: {AGENT}"
    assert page.locator("ol.dialogue li.keyword", has_text=KEYWORD).count() >= 1
    assert page.locator("table.timeline tbody tr", has_text="call.completed").count() == 1
    page.evaluate("() => document.querySelector('audio').pause()")
    screenshot(page, "call", tmp_path)
    assert page.errors == []
    page.context.close()


HOSTILE_ID = "<img src=x onerror=window.pwned=1>\"'&\u202e<b>bold</b>/../x"
HOSTILE_NUMBER = "<script>window.pwned=2</script>"


def test_a_hostile_call_id_is_shown_as_text_never_as_markup(browser: Any, receiver: ReceiverProcess) -> None:
    body = {
        "event": "call.completed",
        "created_at": "2026-05-29T12:10:00Z",
        "call": {"id": HOSTILE_ID, "status": "completed", "direction": "inbound", "from": HOSTILE_NUMBER, "to": "+1"},
        "variables": {},
        "data": {},
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{receiver.api}/webhooks/{SECRET}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    # Without the page's Content-Security-Policy: escaping alone must hold.
    page = new_page(browser, bypass_csp=True)
    page.goto(url(receiver, "/ui/?q=onerror"))
    link = page.locator("table.calls a.call-link")
    shown = HOSTILE_ID.replace("\u202e", "\\u202e")  # a direction override is shown, not obeyed

    assert link.count() == 1
    assert link.text_content() == shown
    assert page.locator("table.calls tbody td", has_text=HOSTILE_NUMBER).count() == 1
    assert page.locator("table.calls img, table.calls b, table.calls script").count() == 0
    link.click()
    page.wait_for_selector("h1.call-id")
    assert page.locator("h1.call-id").text_content() == shown
    assert page.locator("main img, main b, main script").count() == 0
    assert page.evaluate("() => window.pwned") is None
    assert page.errors == []
    page.context.close()


def test_recordings_come_by_range_through_the_api_with_its_credentials(
    receiver: ReceiverProcess, recorded: dict[str, Any]
) -> None:
    call_id, stream_id = recorded["call_id"], recorded["streams"][0]["stream_id"]
    base = f"/calls/{call_id}/streams/{stream_id}"
    wav = (receiver.recordings / call_id / f"{stream_id}.stereo.wav").read_bytes()
    request = urllib.request.Request(url(receiver, base + "/audio/stereo.wav"), headers={"Range": "bytes=44-1043"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 44-1043/{len(wav)}"
        assert response.read() == wav[44:1044]
    with urllib.request.urlopen(url(receiver, base + "/captions.vtt"), timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/vtt")
        assert f"<v agent>{AGENT}" in response.read().decode().replace("\n", " ")  # a cue's long line wraps

    with urllib.request.urlopen(url(receiver, "/ui"), timeout=10) as response:  # redirected, token kept
        assert response.url == url(receiver, "/ui/")
    for path in (base + "/audio/stereo.wav", base + "/waveform", "/ui/", f"/ui/calls/{call_id}", "/live", "/metrics"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{receiver.api}{path}", timeout=10)
        refused.value.close()
        assert refused.value.code == 401, path
    for path in (
        base + "/audio/..%2F..%2Fcalls.db",
        base + "/audio/stereo.txt",
        f"/calls/{call_id}/streams/nope/waveform",
    ):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url(receiver, path), timeout=10)
        missing.value.close()
        assert missing.value.code == 404, path
