"""``POST /sentinel/check`` under open-loop load: p50/p95/p99/p99.9 at 200, 500, 1,000 req/s.

Run: ``.venv/bin/python -m bench.sync_check [--seconds 10] [--in-scope 100]`` (on the
stack the environment names, e.g. ``KERNEL_STATE_DIR=/var/lib/kernel-test
KERNEL_KAFKA_PORT=29092 KERNEL_PG_PORT=25432``).

The API is served by uvicorn in a subprocess (``--workers``, default one; the
check router only), with 100 policies taken to ``active`` on a fresh topic prefix; the
broker runs on the same machine. Every answer is a durable decision: the
server answers after Kafka acknowledged the policyCheck.

**Open loop.** Request *i* is scheduled at ``t0 + i / rate`` whatever happened
to earlier ones, and its latency runs from that scheduled time to the last
byte of the answer. A request that cannot be sent on time (every connection
busy, the client loop late) waits, and the wait is in its latency -- the
coordinated-omission trap of closed-loop tools that only send when a previous
answer came back. The client is a minimal asyncio HTTP/1.1 keep-alive client
over a pool of connections (a general-purpose client would spend more CPU than
the server on this 2-core machine). "fallback" counts answers past the budget,
"shed" those refused by the in-flight limit (both are recorded denies).

**Noise.** The load generator, the broker and the server share the machine (on
the 2-core test host, with other suites running too), so one run says little.
``--repeat N`` runs every rate N times, interleaved (200, 500, 1,000, 200, ...),
and reports the median of each column; "cpu ms/req" is the server's own CPU
(every worker process, all threads, from ``/proc``) per request -- steadier than
the latencies and the first thing to read when comparing two trees.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench._certs import Certs, make_certs
from bench._table import table
from bench.stream_eval import bench_kernel, lifecycle_events, policies
from ops.http.tokens import TokenStore
from streams.sentinel.lifecycle import PolicyChange

__all__ = ["app"]

RATES = (200, 500, 1000)
CONNECTIONS = 64


def app() -> Any:
    """uvicorn factory: the check router on the composition root of the environment."""
    from ops.bootstrap import bootstrap  # noqa: PLC0415
    from ops.http.access import OPEN, Gate  # noqa: PLC0415
    from ops.http.app import create_app  # noqa: PLC0415
    from ops.http.sentinel_check import check_router  # noqa: PLC0415

    kernel = bootstrap()
    limit = int(os.environ.get("BENCH_MAX_IN_FLIGHT", "8"))
    router = check_router(functools.partial(kernel.sync_check, max_in_flight=limit))
    gate = kernel.gate()
    if os.environ.get("BENCH_AUTH") == "none":  # the baseline: the check open to anyone
        gate = Gate(None, rules=[("POST", "/sentinel/check", OPEN)])
    return create_app([router], gate=gate)


_TOKEN: list[str] = [""]  # the checker token main() creates; "" for no Authorization header
_SSL: list[ssl.SSLContext | None] = [None]  # the client's TLS context (mutual TLS mode)


def _request(i: int, port: int) -> bytes:
    body = orjson.dumps(
        {
            "action": "payments.transfer",
            "actor": f"agent:billing-{i % 50}",
            "resource": "prod/ledger/eu" if i % 2 else "dev/ledger",
            "subject": f"acct:{i % 500}",
            "requestId": f"bench-{i}",
            "context": {
                "amount": (i * 7919) % 40_000,
                "currency": "EUR",
                "riskScore": (i % 100) / 100,
                "country": ["FR", "DE", "IR", "US"][i % 4],
                "tags": ["batch"],
            },
        }
    )
    head = (
        f"POST /sentinel/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        + (f"Authorization: Bearer {_TOKEN[0]}\r\n" if _TOKEN[0] else "")
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def _load(port: int, rate: int, seconds: float, offset: int) -> dict[str, Any]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port, ssl=_SSL[0]))
    n = int(rate * seconds)
    requests = [_request(offset + i, port) for i in range(n)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    fallbacks = shed = 0

    async def one(i: int, due: float) -> None:
        nonlocal fallbacks, shed
        conn = await pool.get()
        try:
            status, body = await _exchange(*conn, requests[i])
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        fallbacks += b"ms budget" in body
        shed += b"shedding load" in body

    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
        await writer.wait_closed()
    latencies.sort()
    return {"n": n, "lat": latencies, "statuses": statuses, "fallbacks": fallbacks,
            "shed": shed, "achieved": n / elapsed}  # fmt: skip


def _pct(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))
    return sorted_values[index] * 1000


def _cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (uvicorn's workers), from /proc."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent pid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the API did not come up")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--in-scope", type=int, default=100, help="of the 100 active policies")
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--max-in-flight", type=int, default=8, help="per worker, then shed")
    ap.add_argument("--repeat", type=int, default=1, help="runs per rate; medians reported")
    ap.add_argument("--loop", default="auto", help="uvicorn --loop (auto: uvloop if installed)")
    ap.add_argument("--http", default="auto", help="uvicorn --http (auto: httptools if installed)")
    ap.add_argument(
        "--auth",
        default="token",
        help="comma-separated, run in turn: none (plaintext, open route), token (plaintext, "
        "bearer token), mtls (TLS with a client certificate)",
    )
    ap.add_argument(
        "--canary",
        default="off",
        help="comma-separated, run in turn: off (100 active policies), on (and a version 2 "
        "of one in-scope policy in canary at 10%%: enforced on its sample, in shadow on the "
        "rest, its rollout view in every record)",
    )
    args = ap.parse_args([] if __name__ != "__main__" else None)
    kernels = {c: _kernel(args.in_scope, canary=c == "on") for c in args.canary.split(",")}
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    tokens = work / "tokens.json"
    token, _ = TokenStore(tokens).create("bench", ["checker"])
    certs = make_certs(work)
    roles = work / "roles.json"
    roles.write_text(json.dumps({"identities": {certs.client_identity: ["checker"]}}))
    rows = []
    for canary, kernel in kernels.items():
        for mode in args.auth.split(","):
            found = _run_mode(args, kernel, mode, token, certs, tokens, roles)
            rows += [[f"{row[0]}{'+canary' if canary == 'on' else ''}", *row[1:]] for row in found]
    table(
        f"POST /sentinel/check, open loop, 100 active policies ({args.in_scope} in scope "
        f"of each request), uvicorn {args.workers} worker(s) ({args.loop}/{args.http}), "
        f"{args.seconds:.0f} s per rate, "
        f"shed over {args.max_in_flight} in flight; latency in ms; median of {args.repeat} "
        "run(s)",
        ["auth", "req/s", "sent/s", "requests", "200", "fallback", "shed", "shed %", "p50",
         "p95", "p99", "p99.9", "max", "cpu ms/req"],
        rows,
    )  # fmt: skip


def _kernel(in_scope: int, *, canary: bool) -> Any:
    """A fresh topic prefix with the 100 policies; ``canary``: and p0 v2 in canary at 10%."""
    from dataclasses import replace  # noqa: PLC0415

    from streams.sentinel.lifecycle import (  # noqa: PLC0415
        RegistryState,
        apply_change,
        plan_transition,
        plan_version,
    )
    from streams.sentinel.policy import State  # noqa: PLC0415

    kernel = bench_kernel("sync-canary" if canary else "sync")
    items = policies(100, in_scope)
    events = lifecycle_events(items)
    if canary:
        state = RegistryState()
        for event in events:
            state = apply_change(state, PolicyChange.from_event(event))
        steps = [plan_version(state, replace(items[0], rule="true"), "bench")]
        for target in (State.TEST, State.CANARY):
            state = apply_change(state, steps[-1])
            steps.append(plan_transition(state, items[0].policy_id, 2, target, "bench",
                                         canary_percent=10.0))  # fmt: skip
        events += [c.to_event() for c in steps]
    kernel.producer().publish_batch(events)
    return kernel


def _run_mode(
    args: argparse.Namespace,
    kernel: Any,
    mode: str,
    token: str,
    certs: Certs,
    tokens: Path,
    roles: Path,
) -> list[list[Any]]:
    port = _free_port()
    env = dict(os.environ, KERNEL_TOPIC_PREFIX=kernel.settings.topic_prefix,
               KERNEL_BOOTSTRAP_SERVERS=kernel.settings.kafka_bootstrap,
               KERNEL_TOKENS_FILE=str(tokens), KERNEL_ROLES_FILE=str(roles), BENCH_AUTH=mode,
               BENCH_MAX_IN_FLIGHT=str(args.max_in_flight))  # fmt: skip
    argv = [sys.executable, "-m", "uvicorn", "bench.sync_check:app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--workers", str(args.workers), "--loop", args.loop,
            "--http", args.http]  # fmt: skip
    _TOKEN[0], _SSL[0] = (token if mode == "token" else ""), None
    if mode == "mtls":
        argv[argv.index("--http") + 1] = "ops.http.tls:KernelHttpTools"  # passes the client cert
        argv += ["--ssl-certfile", str(certs.server_cert),
                 "--ssl-keyfile", str(certs.server_key), "--ssl-ca-certs", str(certs.ca),
                 "--ssl-cert-reqs", str(int(ssl.CERT_OPTIONAL))]  # fmt: skip
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        _SSL[0] = ctx
    elif mode not in ("none", "token"):
        raise SystemExit(f"--auth: unknown mode {mode!r} (none, token, mtls)")
    server = subprocess.Popen(argv, env=env)
    runs: dict[int, list[list[float]]] = {}
    try:
        _wait_up(port)
        asyncio.run(_load(port, 100, 2.0, 10_000_000))  # warm-up, not reported
        rates = [int(r) for r in args.rates.split(",")]
        for attempt in range(args.repeat):
            for rate in rates:
                cpu = _cpu_s(server.pid)
                offset = (attempt * 10 + 1) * rate * 100_000
                r = asyncio.run(_load(port, rate, args.seconds, offset))
                cpu = _cpu_s(server.pid) - cpu
                lat = r["lat"]
                assert r["statuses"].get(200, 0) == r["n"], (mode, r["statuses"])
                runs.setdefault(rate, []).append([
                    r["achieved"], r["n"], r["statuses"].get(200, 0), r["fallbacks"], r["shed"],
                    100 * r["shed"] / r["n"], _pct(lat, 50), _pct(lat, 95), _pct(lat, 99),
                    _pct(lat, 99.9), lat[-1] * 1000, cpu * 1000 / r["n"],
                ])  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = []
    for rate, results in runs.items():
        med = [statistics.median(column) for column in zip(*results, strict=True)]
        counts = [f"{v:.0f}" for v in med[0:5]]
        latencies = [f"{v:.2f}" for v in med[6:10]]
        rows.append([mode, rate, *counts, f"{med[5]:.0f}%", *latencies,
                     f"{med[10]:.1f}", f"{med[11]:.2f}"])  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
