"""
How many webhooks per second the listener stores (``python bench/webhooks.py``).

Starts ``receiver webhooks`` as its own process on a free loopback port with
a fresh SQLite file, then POSTs distinct ``call.completed`` /
``recording.completed`` webhooks over aiohttp's client (keep-alive,
``--concurrency`` requests in flight) and reports stored webhooks per second.
Every answer must be a 200 "stored"; anything else fails the run. A second
pass re-sends the same bodies to measure acknowledged duplicates.

``--postgres`` also runs the same passes against a PostgreSQL server of its
own (initdb in a temporary directory: ``tests/services.py``), SQLite and
PostgreSQL alternating ``--repeat`` times, so the two are compared in one run.

The client runs on the same machine, so the figure is a lower bound of what
the listener can do; on a shared machine it is noisy: run it a few times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # for tests/services.py (--postgres)


def bodies(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        call = f"call_bench_{i // 2:07d}"
        if i % 2:
            payload = {
                "event": "recording.completed",
                "created_at": f"2026-05-29T12:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                "call": {"id": call, "status": "in_progress", "direction": "inbound"},
                "variables": {},
                "data": {
                    "recording_id": f"rec_{call}",
                    "status": "completed",
                    "duration_seconds": 120,
                    "size_bytes": 204800,
                },
            }
        else:
            payload = {
                "event": "call.completed",
                "created_at": f"2026-05-29T13:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                "call": {
                    "id": call,
                    "customer_id": "cust_123",
                    "application_id": "app_123",
                    "status": "completed",
                    "direction": "inbound",
                    "from": "+15551230001",
                    "to": "+15551230002",
                },
                "variables": {},
                "data": {},
            }
        out.append(orjson.dumps(payload))
    return out


async def blast(url: str, payloads: list[bytes], concurrency: int, expect: str) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    answer = await response.json()
                    if response.status != 200 or answer.get("result") != expect:
                        raise SystemExit(f"unexpected answer {response.status} {answer}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--count", type=int, default=5000, help="webhooks to send (default 5000)")
    parser.add_argument("-c", "--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument(
        "--log-level", default="info", help="the listener's log level (info: one line per webhook, as in production)"
    )
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (needs its Debian package)")
    parser.add_argument("--repeat", type=int, default=1, help="passes per store, alternating (default 1)")
    args = parser.parse_args()

    postgres = None
    if args.postgres:
        sys.path.insert(0, ROOT)
        from tests.services import PostgresServer

        postgres = PostgresServer()
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        for i in range(args.repeat):
            for store in ["sqlite"] + (["postgresql"] if postgres else []):
                database = postgres.create_database(f"bench{i}") if postgres and store == "postgresql" else None
                n, stored, duplicates = await run_one(args, database)
                results.setdefault(store, []).append((n / stored, n / duplicates))
    finally:
        if postgres is not None:
            postgres.stop()
    print(
        f"{n} webhooks a pass, concurrency {args.concurrency}, loopback, log level {args.log_level}, {args.repeat} pass(es)"
    )
    for store, rows in results.items():
        best_stored = max(r[0] for r in rows)
        best_dup = max(r[1] for r in rows)
        print(f"{store:<11} stored: {best_stored:7.0f} webhooks/s   duplicates: {best_dup:7.0f}/s (best pass)")
    if "postgresql" in results:
        ratio = max(r[0] for r in results["postgresql"]) / max(r[0] for r in results["sqlite"])
        print(f"postgresql/sqlite stored ratio: {ratio:.2f}")
    return 0


async def run_one(args: argparse.Namespace, url: str | None) -> tuple[int, float, float]:
    """One listener on a fresh store (a SQLite file, or the PostgreSQL schema ``url``): (count, stored s, dup s)."""
    with tempfile.TemporaryDirectory() as tmp:
        database = url or str(Path(tmp) / "bench.db")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "receiver", "webhooks", "--webhook-port", str(port), "--database", database,
            "--log-format", "json", "--log-level", args.log_level, "--config", os.devnull,
            cwd=tmp, env=env, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_ready(proc, port)
            url = f"http://127.0.0.1:{port}/webhooks"
            payloads = bodies(args.count)
            await blast(url, payloads[: min(200, len(payloads))], args.concurrency, "stored")  # warm up
            rest = payloads[200:]
            stored = await blast(url, rest, args.concurrency, "stored")
            duplicates = await blast(url, rest, args.concurrency, "duplicate")
        finally:
            proc.terminate()
            await proc.wait()
    return len(rest), stored, duplicates


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(proc: asyncio.subprocess.Process, port: int) -> None:
    async with asyncio.timeout(20), aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise SystemExit("receiver webhooks exited")
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)  # another process starting: nothing to wait on but its port


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
