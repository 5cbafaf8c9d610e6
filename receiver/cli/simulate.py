"""
``receiver simulate FLOW``: argument parsing and the summary (the command's thin shell over ``receiver.simulator``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from receiver.calls.actions import InvalidActions, parse_actions
from receiver.cli._options import (
    CONFIG_HELP,
    PLACEHOLDER_HELP,
    describe,
    expand_placeholders,
    has_placeholders,
    insecure_hint,
    local_webhook_url,
)
from receiver.config import Settings
from receiver.errors import InvalidValue
from receiver.events import Encoding
from receiver.logging import configure
from receiver.loop import loop_factory
from receiver.simulator.api import ApiSettings, CompatApi, LiveCalls
from receiver.simulator.audio import AudioError, AudioSpec, load
from receiver.simulator.compare import MISMATCH, compare_recordings
from receiver.simulator.credentials import Credentials
from receiver.simulator.http import MAX_ATTEMPTS, WebhookSettings
from receiver.simulator.plan import Faults, MediaSpec
from receiver.simulator.runner import Flow, RunReport, RunSettings, run
from receiver.simulator.wire import WireFormat, check_format

ENCODINGS = {"mulaw": Encoding.MULAW, "alaw": Encoding.ALAW, "l16": Encoding.L16}

EXAMPLES = """\
examples:
  # the example flow against the local receiver (make run), webhooks included:
  receiver simulate --allow-insecure examples/flow.json
  # faults, and a check that the recordings equal what was sent:
  receiver simulate --allow-insecure examples/flow.json --loss 0.05 --reorder-ms 80 --compare recordings
  # speech on the caller's track (espeak-ng, or any WAV file):
  receiver simulate --allow-insecure examples/flow.json --inbound-audio "say:I would like a refund"
  # load: 200 calls, 50 at once, failures tolerated but listed:
  receiver simulate --allow-insecure examples/flow.json --calls 200 --concurrency 50 --allow-failures
  # the flow from your application's answer_url:
  receiver simulate https://app.example.com/answer --webhook-url https://app.example.com/webhooks
"""


def add_parser(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="run a MiniVoice call flow against a receiver (streams, faults, webhooks, load)",
        description=describe(
            "Run an answer_url flow on simulated calls against a stream receiver, as the platform "
            "would: streams with real audio and seeded network faults, then the webhooks. Exits 1 when anything "
            "failed (the summary's result section says what), 0 when all went as planned."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "flow",
        metavar="FLOW",
        help=f"a JSON actions file, or an http(s) answer_url to POST to; {PLACEHOLDER_HELP}",
    )
    p.add_argument("--config", help=CONFIG_HELP + "; read for {receiver}, {webhooks} and the default --webhook-url")
    audio = p.add_argument_group("audio")
    audio.add_argument(
        "--inbound-audio",
        default="tone:440",
        metavar="SPEC",
        help="inbound track: a WAV file, say:TEXT (espeak-ng), tone:HZ or silence (default tone:440)",
    )
    audio.add_argument(
        "--outbound-audio",
        default="tone:660",
        metavar="SPEC",
        help="outbound track, as --inbound-audio (default tone:660)",
    )
    audio.add_argument(
        "--format",
        choices=[w.value for w in WireFormat],
        default="minivoice",
        help="wire format: a carrier's, as it streams (default minivoice; see docs/platforms.md)",
    )
    audio.add_argument("--encoding", choices=list(ENCODINGS), default="mulaw", help="media encoding (default mulaw)")
    audio.add_argument(
        "--sample-rate",
        type=int,
        choices=[8000, 16000, 24000],
        default=8000,
        help="sample rate in Hz (default 8000; 16000/24000: l16 only)",
    )
    net = p.add_argument_group("connection")
    net.add_argument(
        "--allow-insecure",
        action="store_true",
        help="permit ws:// stream URLs (the platform requires wss://); local testing only",
    )
    net.add_argument("--plivo-auth-token", metavar="TOKEN", help="Plivo: sign each upgrade (X-Plivo-Signature-V3)")
    net.add_argument(
        "--vonage-signature-secret", metavar="SECRET", help="Vonage: send a signed JWT (Authorization: Bearer)"
    )
    net.add_argument(
        "--audiohook-api-key",
        metavar="KEY:SECRET",
        help="AudioHook: the API key and (base64) client secret that sign each upgrade",
    )
    net.add_argument("--fast", action="store_true", help="send as fast as possible instead of on the real-time clock")
    net.add_argument(
        "--open-timeout", type=float, default=10.0, metavar="S", help="WebSocket handshake timeout (default 10)"
    )
    hooks = p.add_argument_group("webhooks")
    hooks.add_argument(
        "--webhook-url",
        metavar="URL",
        help="POST call.completed and recording.* webhooks here (default: the local receiver's webhook URL "
        "when FLOW uses {receiver} or {webhooks}; otherwise none)",
    )
    hooks.add_argument("--no-webhooks", action="store_true", help="send no webhooks, even to the local receiver")
    hooks.add_argument(
        "--webhook-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for a 2xx before sending again (default 10)",
    )
    hooks.add_argument(
        "--webhook-backoff",
        type=float,
        default=1.0,
        metavar="S",
        help="pause before the 2nd attempt, doubled after (default 1)",
    )
    hooks.add_argument(
        "--webhook-attempts",
        type=int,
        default=MAX_ATTEMPTS,
        metavar="N",
        help=f"attempts per webhook (default {MAX_ATTEMPTS})",
    )
    hooks.add_argument(
        "--answer-timeout", type=float, default=10.0, metavar="S", help="seconds to wait for the answer_url"
    )
    faults = p.add_argument_group("faults (seeded, reproducible)")
    faults.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed for ids and faults (default: a new one each run, printed with the summary)",
    )
    faults.add_argument("--loss", type=float, default=0.0, metavar="P", help="probability that a frame is lost")
    faults.add_argument(
        "--duplicate", type=float, default=0.0, metavar="P", help="probability that a frame is sent twice"
    )
    faults.add_argument(
        "--reorder-ms",
        type=int,
        default=0,
        metavar="MS",
        help="reorder frames within this window: a reordered frame arrives while the newest audio is at most MS past its start (40: neighbours swap; up to the receiver's window, no frame is lost)",
    )
    faults.add_argument(
        "--reorder",
        type=float,
        default=0.1,
        metavar="P",
        help="probability that a frame is reordered, with --reorder-ms (default 0.1)",
    )
    faults.add_argument(
        "--delay", type=float, default=0.0, metavar="P", help="probability that a frame is delayed by --delay-ms"
    )
    faults.add_argument(
        "--delay-ms", type=int, default=200, metavar="MS", help="how late a delayed frame arrives (default 200)"
    )
    faults.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="random extra send delay per frame, order kept (real-time clock only)",
    )
    faults.add_argument(
        "--drop-at",
        type=float,
        metavar="SECONDS",
        help="drop every open stream's connection, without stop, at this call time",
    )
    faults.add_argument(
        "--receiver-window-ms",
        type=int,
        default=100,
        metavar="MS",
        help="the receiver's reorder window, for --record-sent (default 100, the receiver's default)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--record-sent",
        metavar="DIR",
        help="write {call_id}/{stream_id}.{track}.wav: what a correct receiver must decode",
    )
    out.add_argument(
        "--compare",
        metavar="DIR",
        help="after the run, compare the receiver's recordings in DIR with what was sent, sample for sample "
        "(waits up to --compare-timeout for files still being finalised); a difference is a failure",
    )
    out.add_argument(
        "--compare-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds --compare waits for the receiver to finalise its files (default 10)",
    )
    out.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress line on stderr (default: on when stderr is a terminal or with --calls > 1)",
    )
    out.add_argument(
        "--allow-failures",
        action="store_true",
        help="exit 0 even when something failed (load runs that expect some); the summary still lists them",
    )
    out.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info for one call, warning for load"
    )
    out.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="event loop (default auto: uvloop if installed)",
    )
    load_ = p.add_argument_group("load")
    load_.add_argument("--calls", type=int, default=1, metavar="N", help="calls to run (default 1)")
    load_.add_argument("--concurrency", type=int, default=1, metavar="M", help="calls at once (default 1)")
    load_.add_argument(
        "--ramp", type=float, default=0.0, metavar="SECONDS", help="spread the first M calls over this time"
    )
    api = p.add_argument_group(
        "REST API (SignalWire compatibility: startStream, stopStream, hang-up; docs/stream-control.md)"
    )
    api.add_argument("--api-port", type=int, metavar="PORT", help="serve the platform's REST API on PORT (0: any)")
    api.add_argument("--api-host", default="127.0.0.1", metavar="HOST", help="address of the REST API")
    api.add_argument("--api-project", metavar="ID", help="project id: the AccountSid and basic-auth user")
    api.add_argument("--api-token", metavar="TOKEN", help="API token: the basic-auth password")
    api.add_argument("--api-cert", metavar="PEM", help="serve the API over TLS with this certificate (chain)")
    api.add_argument("--api-key", metavar="PEM", help="the certificate's private key")
    api.add_argument(
        "--hold",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep each call up this long after its actions (until a hang-up over the API)",
    )
    p.set_defaults(run=simulate)


def simulate(args: argparse.Namespace) -> int:
    """Run the command; return the exit status.

    0: every call, stream and webhook went as planned (or ``--allow-failures``);
    1: something failed (the summary says what: a stream that could not connect
    or was refused or closed early, a webhook not delivered, an answer_url
    that failed, a recording that differs from what was sent); 2: bad options.
    """
    progress = args.progress if args.progress is not None else (args.calls > 1 or sys.stderr.isatty())
    # With a progress line, info lines would break it up: the summary says the same at the end.
    quiet = progress or args.calls > 1
    configure(fmt="json" if args.json else "auto", level=args.log_level or ("warning" if quiet else "info"))
    try:
        flow, media, faults, settings = _options(args)
        api = _api(args)
    except InvalidActions as exc:
        reason = insecure_hint(exc.reason, args.allow_insecure)
        print(f"invalid action payload: {reason}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": exc.body["error"], "reason": reason}))
        return 1
    except (ValueError, AudioError, OSError) as exc:
        print(f"receiver simulate: {exc}", file=sys.stderr)
        return 2

    async def main() -> RunReport:
        running = run(
            flow,
            media,
            faults,
            settings,
            calls=args.calls,
            concurrency=args.concurrency,
            ramp=args.ramp,
            progress=sys.stderr if progress else None,
        )
        if api is None:
            return await running
        live = settings.live if isinstance(settings.live, LiveCalls) else LiveCalls(media, faults, api.project)
        async with CompatApi(api, live) as served:
            print(f"REST API: {served.url}/api/laml/2010-04-01/Accounts/{api.project}", file=sys.stderr, flush=True)
            return await running

    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        report = runner.run(main())
    if args.compare:
        assert settings.record_sent is not None
        sent = [path for call in report.calls for st in call.streams for path in st.recorded]
        problems = compare_recordings(sent, settings.record_sent, Path(args.compare), args.compare_timeout)
        if problems:
            report.mismatches[MISMATCH] = problems
    failures = report.failures()
    if args.json:
        print(json.dumps({"seed": faults.seed, **report.as_dict(details=args.calls <= 10)}, indent=2))
    else:
        print(f"seed: {faults.seed} (--seed {faults.seed} runs the same calls again: same ids, same faults)")
        print(_text(report))
        if args.compare and MISMATCH not in report.mismatches:
            print(f"recordings: every file in {args.compare} equals what was sent")
        print(_result(failures, args.allow_failures))
    return 1 if failures and not args.allow_failures else 0


def _result(failures: list[str], allowed: bool) -> str:
    if not failures:
        return "result: OK"
    head = "result: FAILED" + (" (allowed by --allow-failures)" if allowed else "")
    return "\n".join([head, *(f"  {line}" for line in failures)])


def _api(args: argparse.Namespace) -> ApiSettings | None:
    if args.api_port is None:
        if args.api_project or args.api_token or args.api_cert:
            raise InvalidValue("--api-project, --api-token and --api-cert need --api-port")
        return None
    if not args.api_project or not args.api_token:
        raise InvalidValue("--api-port needs --api-project and --api-token (the REST API always asks for them)")
    if args.format not in ("signalwire", "twilio"):
        raise InvalidValue("--api-port serves the compatibility API: use --format signalwire or twilio")
    if bool(args.api_cert) != bool(args.api_key):
        raise InvalidValue("--api-cert and --api-key go together")
    return ApiSettings(args.api_project, args.api_token, args.api_host, args.api_port, args.api_cert, args.api_key)


def _options(args: argparse.Namespace) -> tuple[Flow, MediaSpec, Faults, RunSettings]:
    if args.calls < 1 or args.concurrency < 1:
        raise InvalidValue("--calls and --concurrency must be at least 1")
    if args.webhook_attempts < 1:
        raise InvalidValue("--webhook-attempts must be at least 1")
    if args.hold < 0:
        raise InvalidValue("--hold must be a non-negative number of seconds")
    wire = WireFormat(args.format)
    encoding = ENCODINGS[args.encoding]
    check_format(wire, encoding, args.sample_rate)
    specs = {"inbound": AudioSpec.parse(args.inbound_audio), "outbound": AudioSpec.parse(args.outbound_audio)}
    for spec in specs.values():
        load(spec, args.sample_rate)  # fail now, not in the middle of a call
    media = MediaSpec(wire, encoding, args.sample_rate, specs)
    faults = Faults(
        seed=args.seed if args.seed is not None else secrets.randbelow(2**31),
        loss=args.loss,
        duplicate=args.duplicate,
        reorder_ms=args.reorder_ms,
        reorder=args.reorder,
        delay=args.delay,
        delay_ms=args.delay_ms,
        jitter_ms=args.jitter_ms,
        drop_at=args.drop_at,
        receiver_window_ms=args.receiver_window_ms,
    )
    if args.webhook_url and args.no_webhooks:
        raise ValueError("--webhook-url and --no-webhooks exclude each other")
    remote = args.flow.startswith(("http://", "https://"))
    text = args.flow if remote else Path(args.flow).read_text()
    webhook_url = args.webhook_url
    local = has_placeholders(text) or has_placeholders(webhook_url or "")
    if local:
        # The flow names the local receiver: its addresses and webhook URL come from its settings.
        receiver = Settings.load(args.config)
        text = expand_placeholders(text, receiver)
        if webhook_url is None and not args.no_webhooks:
            webhook_url = local_webhook_url(receiver)
        elif webhook_url is not None:
            webhook_url = expand_placeholders(webhook_url, receiver)
    if remote:
        flow = Flow(answer_url=text)
    else:
        flow = Flow(actions=tuple(parse_actions(text, allow_insecure=args.allow_insecure)))
    record_sent = args.record_sent
    if args.compare and not record_sent:
        record_sent = tempfile.mkdtemp(prefix="receiver-sent-")
    settings = RunSettings(
        fast=args.fast,
        allow_insecure=args.allow_insecure,
        webhooks=WebhookSettings(
            None if args.no_webhooks else webhook_url, args.webhook_timeout, args.webhook_backoff, args.webhook_attempts
        ),
        record_sent=Path(record_sent) if record_sent else None,
        open_timeout=args.open_timeout,
        answer_timeout=args.answer_timeout,
        hold=args.hold,
        live=LiveCalls(media, faults, args.api_project or "") if args.api_port is not None else None,
        credentials=_credentials(args),
    )
    return flow, media, faults, settings


def _credentials(args: argparse.Namespace) -> Credentials:
    key, secret = "", ""
    if args.audiohook_api_key:
        key, sep, secret = args.audiohook_api_key.partition(":")
        try:
            ok = bool(sep and key and base64.b64decode(secret, validate=True))
        except binascii.Error:
            ok = False
        if not ok:
            raise InvalidValue("--audiohook-api-key must be KEY:SECRET, the secret base64")
    return Credentials(args.plivo_auth_token or "", args.vonage_signature_secret or "", key, secret)


def _text(report: RunReport) -> str:
    s = report.stats.as_dict()
    lines = [
        f"calls: {s['calls_completed']} completed, {s['calls_failed']} failed; streams: {s['streams']}",
        f"frames sent: {s['frames_sent']} in {s['elapsed_seconds']} s ({s['frames_per_second']}/s); messages: {s['messages_sent']}",
        f"send lag: max {s['send_lag_ms']['max']} ms, mean {s['send_lag_ms']['mean']} ms, {s['send_lag_ms']['late_sends']} sent over 20 ms late",
        f"connection errors: {s['connection_errors']} ({s['refused']} refused); closed early by receiver: {s['receiver_closed']}",
        f"webhooks: {s['webhooks_delivered']} delivered, {s['webhooks_failed']} failed",
    ]
    if len(report.calls) <= 10:
        for call in report.calls:
            lines.append(f"call {call.call_id} ({call.duration_seconds} s)")
            for st in call.streams:
                altered = {
                    name: {k: len(v) for k, v in tf.items() if v} for name, tf in st.faults.items() if any(tf.values())
                }
                lines.append(
                    f"  stream {st.stream_id} {st.track} {st.start_seconds}-{st.end_seconds} s: {st.outcome}"
                    f" ({st.media_sent}/{st.frames_planned * (2 if st.track == 'both' else 1)} frames sent)"
                    + (f" faults {altered}" if altered else "")
                    + (f" error {st.error}" if st.error else "")
                )
            if call.unmatched_stop_streams:
                lines.append(f"  stop_stream matched nothing {call.unmatched_stop_streams} time(s)")
            for hook in call.webhooks:
                lines.append(
                    f"  webhook {hook.event}: {'delivered' if hook.delivered else 'FAILED'} after {hook.attempts} attempt(s)"
                )
    lines.extend(f"error: {e}" for e in report.errors)
    return "\n".join(lines)
