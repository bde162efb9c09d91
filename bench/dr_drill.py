"""The DR drill's recovery time: N audit events, drop the projections, rebuild, compare.

N (``BENCH_N``, default 100,000; ``1000000`` for the issue's figure) kernel
actions are published, chained by the signer and projected; then
``kernel dr-drill`` drops the database, rebuilds it from the log (verified
audit replay and the SentinelNet projectors) and proves it equal. Prints the
recovery time and its steps. Runs on the stack named by the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from bench._table import table
from bench.audit_pipeline import drop_database, pipeline, prepare, worker_env


def main() -> None:
    n = int(os.environ.get("BENCH_N", "100000"))
    with tempfile.TemporaryDirectory() as tmp:
        kernel, signers = prepare(n, Path(tmp))
        build = sum(pipeline(kernel, idle_s=2.0))
        env = worker_env(kernel)
        exe = str(Path(sys.executable).with_name("kernel"))
        done = subprocess.run(
            [exe, "dr-drill", "--signers", str(signers), "--yes", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            report = orjson.loads(done.stdout.splitlines()[-1])
        finally:
            drop_database(kernel)
    rows = [["events signed + projected (before the drill)", f"{build:.1f}"]]
    rows += [[f"drill: {name}", f"{sec:.1f}"] for name, sec in report["steps"].items()]
    rows.append(["drill: recovery time", f"{report['recoverySeconds']:.1f}"])
    table(
        f"DR drill, {n:,} kernel actions ({report['tables']['audit_events']['rows']:,} audit rows);"
        f" identical: {report['identical']}",
        ["step", "seconds"],
        rows,
    )


if __name__ == "__main__":
    main()
