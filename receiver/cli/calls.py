"""
``receiver calls``: call records from the database, for support staff: the
list (``--status``, ``--since``, ``--limit``), one call, or one call's
timeline (``--events``); ``--json`` prints what the read API would return.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from receiver.calls.webhooks import StoreUnavailable, WebhookRejected, parse_limit, parse_since
from receiver.cli._options import CONFIG_HELP, describe, where_from
from receiver.cli._terminal import printable as _t
from receiver.config import Settings

EXAMPLES = """\
examples:
  receiver calls                             # the latest 50 calls
  receiver calls --status completed --since 2026-12-01 --limit 10
  receiver calls call_1f2e3d4c5b6a           # one call: streams, files, recordings
  receiver calls call_1f2e3d4c5b6a --events  # its timeline
  receiver calls --json | jq '.calls[0]'
"""


def add_parser(commands: Any) -> None:
    calls = commands.add_parser(
        "calls",
        help="print call records from the database",
        description=describe(
            "Print the call records `receiver serve` keeps from webhooks and streams: the list, one call "
            "(its streams with their outcome, files and recordings), or one call's timeline."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calls.add_argument("call_id", nargs="?", help="one call's record (default: the list)")
    calls.add_argument("--events", action="store_true", help="the call's timeline: webhooks and stream lifecycle")
    calls.add_argument("--status", help="only calls with this status")
    calls.add_argument("--since", help="only calls active at or after this time (RFC 3339 or a date, UTC)")
    calls.add_argument("--limit", help="at most this many calls (default 50)")
    calls.add_argument("--json", action="store_true", help="print JSON, as the read API does")
    calls.add_argument("--config", help=CONFIG_HELP)
    calls.add_argument(
        "--database", help="call-record database: a SQLite file or postgresql:// URL (default: from settings)"
    )
    calls.set_defaults(run=run_calls)


def run_calls(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from receiver.calls.db import read_call, read_calls, read_events
    from receiver.calls.store import connect_database, is_postgres

    if args.database:
        database, source = args.database, where_from(Settings(), "database", args.database)
    else:
        settings = Settings.load(args.config)
        database, source = settings.database, where_from(settings, "database")
    if not is_postgres(database) and not Path(database).is_file():
        print(f"receiver: no call database at {Path(database).resolve()} ({source})", file=sys.stderr)
        return 1
    try:
        since = parse_since(args.since) if args.since else None
        limit = parse_limit(args.limit)
    except WebhookRejected as exc:
        print(f"receiver: {exc.message}", file=sys.stderr)
        return 2
    try:
        conn = connect_database(database, read_only=True)
    except StoreUnavailable as exc:
        print(f"receiver: {exc.message}", file=sys.stderr)
        return 1
    try:
        if args.call_id is None:
            calls = read_calls(conn, status=args.status, since=since, limit=limit)
            _print(out, {"calls": calls, "count": len(calls)} if args.json else _calls_text(calls), args.json)
            return 0
        found = read_events(conn, args.call_id) if args.events else read_call(conn, args.call_id)
        if found is None:
            print(f"receiver: no call {_t(args.call_id)}", file=sys.stderr)
            return 1
        if args.events:
            assert isinstance(found, list)
            _print(out, {"call_id": args.call_id, "events": found} if args.json else _events_text(found), args.json)
        else:
            assert isinstance(found, dict)
            _print(out, found if args.json else _call_text(found), args.json)
        return 0
    finally:
        conn.close()


def _print(out: TextIO, value: Any, as_json: bool) -> None:
    if as_json:
        out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(value)


def _calls_text(calls: list[dict[str, Any]]) -> str:
    if not calls:
        return "no calls\n"
    lines = [f"{'CALL':<24} {'STATUS':<12} {'LAST STEP':<28} {'UPDATED':<25} FROM -> TO"]
    for c in calls:
        call_id, status, step = _t(c["call_id"]), _t(c["status"] or "-"), _t(c["last_step"] or "-")
        lines.append(
            f"{call_id:<24} {status:<12} {step:<28} {_t(c['updated_at']):<25} {_t(c['from'] or '?')} -> {_t(c['to'] or '?')}"
        )
    return "\n".join(lines) + "\n"


def _call_text(call: dict[str, Any]) -> str:
    lines = [f"call {_t(call['call_id'])}"]
    for key in (
        "status",
        "status_at",
        "last_step",
        "last_step_at",
        "direction",
        "from",
        "to",
        "customer_id",
        "application_id",
        "first_seen_at",
        "updated_at",
    ):
        lines.append(f"  {key:<15} {_t(call[key]) if call[key] is not None else '-'}")
    if call["variables"]:
        lines.append(f"  {'variables':<15} {_t(orjson.dumps(call['variables']).decode())}")
    lines.append(f"  {'events':<15} {call['events']}")
    for s in call["streams"]:
        segment = f" segment {s['segment']}" if s.get("segment", 1) > 1 else ""
        tracks = _t(",".join(str(t) for t in s["tracks"]) or "?")
        lines.append(
            f"  stream {_t(s['stream_id'])}{segment} ({_t(s['platform'] or '?')}, {tracks}, {_t(s['encoding'] or '?')} {_t(s['sample_rate'] or '')})"
        )
        lines.append(
            f"    started {_t(s['started_at'] or '-')}  stopped {_t(s['stopped_at'] or '-')}  reason {_t(s['stop_reason'] or '-')}  close {s['close_code'] if s['close_code'] is not None else '-'}"
        )
        if s["outcome"]:
            o = s["outcome"]
            lines.append(f"    {_media_text(o)}")
        for path in s["files"]:
            lines.append(f"    file {_t(path)}")
    for r in call["recordings"]:
        lines.append(
            f"  recording {_t(r['recording_id'])} {_t(r['status'])}  {format(r['duration_seconds'], 'g') if r['duration_seconds'] is not None else '?'} s  {r['size_bytes'] if r['size_bytes'] is not None else '?'} bytes"
        )
    return "\n".join(lines) + "\n"


def _media_text(outcome: dict[str, Any]) -> str:
    """A stream's media in one line: sequence gaps (messages that never came) apart from audio gaps (silence filled)."""
    tracks = outcome.get("tracks") or {}
    audio_gaps = sum(int(t.get("audio_gaps", t.get("gaps", 0))) for t in tracks.values())
    rate = outcome["samples"] / outcome["duration_seconds"] if outcome.get("duration_seconds") else 0
    filled = sum(int(t.get("audio_gap_samples", t.get("gap_samples", 0))) for t in tracks.values())
    silence = f" ({filled / rate:.2f} s of silence filled)" if rate and filled else ""
    return (
        f"{outcome.get('duration_seconds', 0):.2f} s of media, {outcome.get('messages', 0)} messages, "
        f"{outcome.get('sequence_gaps', 0)} sequence gaps, {audio_gaps} audio gaps{silence}"
    )


def _events_text(events: list[dict[str, Any]]) -> str:
    lines = []
    for e in events:
        detail = e["detail"]
        if e["source"] == "webhook":
            call = detail.get("call", {})
            extra = f"status={call.get('status')}" + (
                f" recording={detail['data'].get('recording_id')}" if detail.get("data", {}).get("recording_id") else ""
            )
        elif e["source"] == "answer":
            extra = "actions=" + ",".join(str(a.get("type")) for a in detail.get("actions", []) if isinstance(a, dict))
        elif e["kind"] == "stream.started":
            extra = f"stream={detail.get('stream_id')} tracks={','.join(detail.get('tracks') or [])} {detail.get('encoding')}"
        elif e["kind"] == "stream.ended":
            extra = f"stream={detail.get('stream_id')} reason={detail.get('reason')} close={detail.get('close_code')}"
        else:
            extra = ""
        lines.append(f"{_t(e['occurred_at'])}  {_t(e['source']):<8} {_t(e['kind']):<22} {_t(extra)}")
    return "\n".join(lines) + "\n"
