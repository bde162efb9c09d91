"""Chain core costs per ~400-byte event: JCS (rfc8785 vs ours), SHA-256, Ed25519, Merkle.

Run: .venv/bin/python -m bench.chain_core [--n 20000] [--repeats 5]
Prints the median over repeats of per-operation time and rate, and same-run
ratios. Single core, no I/O.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import rfc8785

from schemas.positions import LogPosition
from streams.chain.canonical import canonicalize
from streams.chain.links import ChainStep
from streams.chain.merkle import CompactRange
from streams.chain.signing import LocalEd25519Signer, Verifier


def events(n: int, floats: bool = False) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        ctx: dict[str, Any] = {
            "amount": 125000 + i, "currency": "EUR", "country": "DE", "riskScore": i % 100,
            "tags": ["payments", "eu"], "user": {"id": f"u-{i}", "role": "operator"},
        }  # fmt: skip
        if floats:
            ctx["ratio"] = i / 7
        out.append({
            "eventId": f"8f0e2c1a-1b2c-4d5e-8f90-{i:012d}", "eventType": "kernelAction",
            "ts": "2026-01-31T12:00:00.123Z", "actor": "svc-payments", "subject": f"acct-{i % 97}",
            "schemaVersion": 1, "metadata": {"traceId": f"{i:016x}", "source": "api"},
            "body": {"action": "payments.transfer", "resource": f"acct-{i % 97}/transfers",
                     "requestId": f"req-{i:08d}", "context": ctx},
        })  # fmt: skip
    return out


def timed(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Median seconds per operation."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) / n)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, rep = args.n, args.repeats
    evs, fevs = events(n), events(n, floats=True)
    size = statistics.median(len(rfc8785.dumps(e)) for e in evs)
    signer = LocalEd25519Signer(hashlib.sha256(b"bench").digest(), "bench")
    verifier = Verifier(signer.public_key)
    digests = [hashlib.sha256(canonicalize(e)).digest() for e in evs]
    sigs = [signer.sign(d) for d in digests]
    jcs = [canonicalize(e) for e in evs]
    assert all(a == rfc8785.dumps(e) for a, e in zip(jcs, evs, strict=True))

    pairs = list(zip(digests, sigs, strict=True))

    def sorted_orjson(e: Any) -> bytes:
        return orjson.dumps(e, option=orjson.OPT_SORT_KEYS)

    def sha(b: bytes) -> bytes:
        return hashlib.sha256(b).digest()

    def chain() -> None:
        step, head = ChainStep(signer), None
        for i, e in enumerate(evs):
            head, _ = step(head, e, LogPosition("t", 0, i))

    def merkle() -> None:
        rng = CompactRange()
        for d in digests:
            rng.append(d)

    rows: list[tuple[str, float]] = [
        ("JCS rfc8785 (reference)", timed(lambda: [rfc8785.dumps(e) for e in evs], n, rep)),
        ("JCS ours (canonicalize)", timed(lambda: [canonicalize(e) for e in evs], n, rep)),
        ("JCS rfc8785, with a float", timed(lambda: [rfc8785.dumps(e) for e in fevs], n, rep)),
        ("JCS ours, with a float", timed(lambda: [canonicalize(e) for e in fevs], n, rep)),
        ("orjson sorted (not JCS; floor)", timed(lambda: [sorted_orjson(e) for e in evs], n, rep)),
        ("SHA-256 of the JCS bytes", timed(lambda: [sha(b) for b in jcs], n, rep)),
        ("Ed25519 sign (PyNaCl)", timed(lambda: [signer.sign(d) for d in digests], n, rep)),
        ("Ed25519 verify (PyNaCl)", timed(lambda: [verifier.verify(*p) for p in pairs], n, rep)),
        ("Merkle append (compact range)", timed(merkle, n, rep)),
        ("ChainStep (JCS+SHA+sign)", timed(chain, n, rep)),
    ]  # fmt: skip
    ref = rows[0][1]
    print(f"chain core, {n} events of median {size:.0f} JCS bytes, median of {rep} runs, 1 core")
    print(f"{'operation':<34}{'us/op':>10}{'ops/s':>12}{'vs rfc8785':>12}")
    for name, sec in rows:
        print(f"{name:<34}{sec * 1e6:>10.2f}{1 / sec:>12,.0f}{ref / sec:>11.1f}x")


if __name__ == "__main__":
    main()
