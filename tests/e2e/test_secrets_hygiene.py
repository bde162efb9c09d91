"""No secret reaches a log: the demo, a worker and the API, as an operator runs them.

The secrets of a deployment here: the signing key's seed, an API bearer token,
and the Postgres password in ``POSTGRES_URL``. The demo runs, ``kernel run
signer`` runs, ``kernel api`` answers a request with the token and refuses a
forged one; then every line they printed and every log file under the state
directory is searched for each secret, in every spelling a log could hold it
(base64, hex, the raw string).
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from ops.bootstrap import Kernel
from tests import identity
from tests.e2e.conftest import KernelCLI, settings_env
from tests.ports import free_port


def _spellings(secret: bytes | str) -> set[str]:
    raw = secret.encode() if isinstance(secret, str) else secret
    out = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), raw.hex()}
    if isinstance(secret, str):
        out.add(secret)
    return {s.rstrip("=") for s in out if len(s) >= 12}


def _serve(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_no_secret_reaches_a_log(db_kernel: Kernel, db_cli: KernelCLI, tmp_path: Path) -> None:
    state = tmp_path / "state"
    demo = db_cli("demo", timeout=300, extra_env={"KERNEL_STATE_DIR": str(state)})
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    (key_file,) = (state / "keys").glob("*.ed25519.json")
    seed = base64.b64decode(json.loads(key_file.read_text())["seed"])
    password = conninfo_to_dict(db_kernel.settings.database_url).get("password")
    kinds = {"signing seed": _spellings(seed), "API token": _spellings(identity.TOKEN)}
    kinds["API token"] |= _spellings(identity.TOKEN.rsplit("_", 1)[1])
    if password:
        kinds["Postgres password"] = _spellings(str(password))
    secrets = {s: kind for kind, spelled in kinds.items() for s in spelled}

    env = settings_env(db_kernel.settings)
    env.update(
        KERNEL_STATE_DIR=str(state),
        KERNEL_SIGNING_KEY=str(key_file),
        KERNEL_METRICS_PORT="0",
    )
    exe = str(Path(sys.executable).with_name("kernel"))
    port = free_port()
    logs = [state / "signer.log", state / "api.log"]
    signer = _serve([exe, "run", "signer"], env, logs[0])
    api = _serve([exe, "api", "--port", str(port), "--access-log"], env, logs[1])
    try:
        deadline = time.monotonic() + 60
        statuses: list[int] = []
        while time.monotonic() < deadline and len(statuses) < 2:
            try:
                for headers in (identity.AUTH, {"authorization": "Bearer kt_00000000_forged"}):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("GET", "/audit/chains", headers=headers)
                    statuses.append(conn.getresponse().status)
                    conn.close()
            except OSError:
                time.sleep(0.3)
        assert statuses == [200, 401], statuses
        time.sleep(2)  # the signer has chained the demo's backlog by now, and logged it
    finally:
        for proc in (signer, api):
            proc.send_signal(signal.SIGTERM)
        for proc in (signer, api):
            proc.wait(timeout=30)

    printed = {"demo stdout": demo.stdout, "demo stderr": demo.stderr}
    for path in [*logs, *state.rglob("*.log")]:
        printed[str(path)] = path.read_text(errors="replace")
    assert printed[str(logs[0])] and printed[str(logs[1])]  # they did log something
    found = [
        (where, kind, text[max(0, text.index(s) - 60) : text.index(s)])
        for where, text in printed.items()
        for s, kind in secrets.items()
        if s in text
    ]
    assert not found, f"secrets in logs: {found}"
