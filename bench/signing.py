"""Signing rate: SoftHSM2 through PKCS#11 vs the local PyNaCl key (ADR 0013).

Run: .venv/bin/python -m bench.signing [--n 5000] [--rounds 5] [--pipeline N]

Needs ``softhsm2`` (ops/install.sh). A token is initialised in a temporary
directory (its own SOFTHSM2_CONF), an Ed25519 key generated inside it, and the
same 32-byte digests signed by each backend, one thread, median of rounds:

- ``sign``: :meth:`Signer.sign` alone (what the backend costs per signature);
- ``chain link``: :class:`ChainStep` per ~400-byte event (JCS + SHA-256 + sign),
  what the chain signer's pure step costs with each backend;
- ``sign, 2 threads``: two threads signing at once through one signer (the
  token's session is serialized: a PKCS#11 session is not for concurrent use).

Rounds alternate between the backends (load from other processes falls on
both alike); besides signatures/s (wall clock) it prints CPU microseconds per
item, the figure that does not depend on the machine's load.

``--pipeline N`` also times the exactly-once chain signer stage
(``Kernel.chain_signer()`` to idle, Kafka transactions included) over N
published events with each backend, on the stack named by the environment
(see bench/audit_pipeline.py), in fresh topics and databases.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench._table import table
from bench.chain_core import events
from schemas.positions import LogPosition
from streams.chain.links import ChainStep
from streams.chain.pkcs11_signer import TokenConfig, generate_token_key, open_signer
from streams.chain.signing import LocalEd25519Signer, Signer, Verifier

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def softhsm_token(directory: Path) -> TokenConfig:
    """A fresh SoftHSM2 token with an Ed25519 key generated inside it."""
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read when the module is first initialised
    pin = secrets.token_hex(8)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", pin,
         "--so-pin", secrets.token_hex(8)],
        check=True, capture_output=True,
    )  # fmt: skip
    config = TokenConfig(MODULE, "bench", "bench-signer", pin)
    generate_token_key(config)
    return config


def _sign_all(signer: Signer, digests: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        for d in digests:
            signer.sign(d)
        return len(digests)

    return run


def _sign_threads(signer: Signer, digests: list[bytes], threads: int) -> Callable[[], int]:
    def run() -> int:
        workers = [
            threading.Thread(target=_sign_all(signer, digests[i::threads])) for i in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return len(digests)

    return run


def _links(signer: Signer, payloads: list[dict[str, object]]) -> Callable[[], int]:
    def run() -> int:
        step, head = ChainStep(signer), None
        for i, payload in enumerate(payloads):
            head, _ = step(head, payload, LogPosition("bench.actions", 0, i))
        return len(payloads)

    return run


def _measure(fns: dict[str, Callable[[], int]], rounds: int) -> dict[str, tuple[float, float]]:
    """name -> (median items/s wall clock, median CPU microseconds per item).

    Rounds alternate between the backends, so load from other processes on a
    shared machine falls on both alike; CPU time is the load-independent figure.
    """
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            n = fn()
            walls[name].append(n / (time.perf_counter() - wall))
            cpus[name].append((time.process_time() - cpu) * 1e6 / n)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}


def micro(config: TokenConfig, n: int, rounds: int) -> None:
    digests = [secrets.token_bytes(32) for _ in range(n)]
    payloads = events(n)
    local = LocalEd25519Signer(secrets.token_bytes(32), "bench-signer")
    token = open_signer(config, "bench-signer")
    try:
        verifier = Verifier(token.public_key)
        assert all(verifier.verify(d, token.sign(d)) for d in digests[:100])
        rows = []
        for what, make in (
            ("sign", lambda s: _sign_all(s, digests)),
            ("chain link (JCS + SHA-256 + sign)", lambda s: _links(s, payloads)),
            ("sign, 2 threads, one signer", lambda s: _sign_threads(s, digests, 2)),
        ):
            got = _measure({"local": make(local), "token": make(token)}, rounds)
            (lw, lc), (tw, tc) = got["local"], got["token"]
            rows.append([what, lw, tw, f"{tw / lw:.2f}", lc, tc])
        table(
            f"Ed25519 signing, one process, {n} items per round, median of {rounds} rounds",
            ["operation", "local PyNaCl/s", "SoftHSM2/s", "SoftHSM2/local",
             "local CPU us", "SoftHSM2 CPU us"],
            rows,
        )  # fmt: skip
    finally:
        token.close()


def pipeline(config: TokenConfig, n: int) -> None:
    from bench.audit_pipeline import drop_database, prepare  # noqa: PLC0415
    from ops.bootstrap import Kernel  # noqa: PLC0415

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("file", "pkcs11"):
            kernel, _ = prepare(n, Path(tmp) / backend)
            if backend == "pkcs11":
                kernel = Kernel(
                    replace(
                        kernel.settings, signer_backend="pkcs11", pkcs11_module=config.module,
                        pkcs11_token_label=config.token_label, pkcs11_key_label=config.key_label,
                        pkcs11_pin=config.pin,
                    )
                )  # fmt: skip
            try:
                idle = 0.5
                started = time.perf_counter()
                runner = kernel.chain_signer()
                try:
                    signed = runner.run_until_idle(idle_s=idle, max_s=3600)
                finally:
                    runner.close()
                seconds = time.perf_counter() - started - idle
                rows.append([backend, signed, seconds, signed / seconds])
            finally:
                drop_database(kernel)
    table(
        f"exactly-once chain signer stage (Kernel.chain_signer to idle), {n} events",
        ["KERNEL_SIGNER_BACKEND", "records", "seconds", "events/s"],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pipeline", type=int, default=0, help="events for the signer stage (0: off)")
    args, _ = ap.parse_known_args()  # `python -m bench signing` passes the module's name
    with tempfile.TemporaryDirectory() as tmp:
        config = softhsm_token(Path(tmp))
        micro(config, args.n, args.rounds)
        if args.pipeline:
            pipeline(config, args.pipeline)


if __name__ == "__main__":
    main()
