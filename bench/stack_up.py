"""``kernel up`` seconds until both services answer: cold, warm and reused.

cold: a new state directory (``initdb`` and Kafka storage format run), with
the Kafka jars already in the download cache; warm: the same directory after
``kernel down``; reused: a second ``kernel up`` while both run. Uses its own
ports and a temporary state directory, so a running stack is not touched.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench._table import table
from ops.config import Settings, default_state_dir
from ops.stack import LocalStack

ROUNDS = 3


def _stack(state: Path) -> LocalStack:
    env = {"KERNEL_STATE_DIR": str(state), "KERNEL_KAFKA_PORT": "49092", "KERNEL_PG_PORT": "45432"}
    return LocalStack(Settings.from_env(env))


def _timed(stack: LocalStack) -> float:
    start = time.perf_counter()
    stack.up()
    return time.perf_counter() - start


def main() -> None:
    cache = default_state_dir() / "cache"
    LocalStack(Settings.from_env({"KERNEL_STATE_DIR": str(default_state_dir())})).kafka.classpath()
    cold, warm, reused = [], [], []
    for _ in range(ROUNDS):
        root = Path(tempfile.mkdtemp(prefix="kernel-bench-", dir="/var/tmp"))
        shutil.copytree(cache, root / "cache", symlinks=True, ignore=shutil.ignore_patterns("m2"))
        stack = _stack(root)
        try:
            cold.append(_timed(stack))
            reused.append(_timed(stack))
            stack.down()
            warm.append(_timed(stack))
        finally:
            stack.down()
            shutil.rmtree(root, ignore_errors=True)
    table(
        f"kernel up, seconds until Kafka and Postgres answer (median of {ROUNDS})",
        ["case", "median s", "min s", "max s"],
        [
            [name, f"{statistics.median(v):.2f}", f"{min(v):.2f}", f"{max(v):.2f}"]
            for name, v in (("cold", cold), ("warm", warm), ("reused", reused))
        ],
    )


if __name__ == "__main__":
    main()
