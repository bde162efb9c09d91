"""Production signing on SoftHSM2, as an operator drives it.

``kernel keys generate --pkcs11`` makes the key inside the token; ``kernel run
signer checkpointer`` with KERNEL_ENV=production signs every audited event and
checkpoint through the token (two workers of one process sharing its login);
``kernel keys export-signers`` prints the token's key, and ``kernel
audit-verify`` verifies every chain with it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from ops.bootstrap import Kernel
from projections.migrate import migrate
from tests.e2e.conftest import settings_env
from tests.integration.core.test_producer import _actions, read_all
from tests.softhsm import SoftHsmToken, key_label

KERNEL = str(Path(sys.executable).with_name("kernel"))


def test_production_signs_through_the_token_and_audit_verify_passes(
    db_kernel: Kernel, softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    kernel = db_kernel
    migrate(kernel.settings.database_url)
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.pin)
    env = {**settings_env(kernel.settings), **softhsm.env()}
    del env["KERNEL_PKCS11_PIN"]  # the PIN from a secret file, as in production
    env.update(
        KERNEL_ENV="production",
        KERNEL_PKCS11_PIN_FILE=str(pin_file),
        KERNEL_SIGNER_ID=key_label(),
        KERNEL_STATE_DIR=str(tmp_path / "state"),  # no key files anywhere
        KERNEL_METRICS_PORT="0",
        KERNEL_CHECKPOINT_EVERY="5",
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KERNEL, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    made = cli("keys", "generate", "--pkcs11")
    assert made.returncode == 0, made.stderr
    assert "sensitive, not extractable" in made.stdout

    events = _actions(12, "acct-a") + _actions(9, "acct-b")
    kernel.producer().publish_batch(events)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [KERNEL, "run", "signer", "checkpointer"], env=env, stdout=out, stderr=out
        )
    try:
        chained, deadline = 0, time.monotonic() + 90
        while chained < len(events) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(1)
            chained = len(read_all(kernel, kernel.names.chain))
        assert chained == len(events), log.read_text()
        checkpoints, deadline = 0, time.monotonic() + 30
        while checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(1)
            checkpoints = len(read_all(kernel, kernel.names.checkpoints))
        assert checkpoints > 0, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
    assert softhsm.pin not in log.read_text()

    projector = kernel.audit_projector()
    try:
        projector.run_until_idle(idle_s=1.0)
    finally:
        projector.close()
    with psycopg.connect(kernel.settings.database_url) as conn:
        signer_ids = {r[0] for r in conn.execute("SELECT DISTINCT signer_id FROM audit_events")}
    assert signer_ids == {env["KERNEL_SIGNER_ID"]}

    exported = cli("keys", "export-signers")
    assert exported.returncode == 0, exported.stderr
    signers = tmp_path / "signers.json"
    signers.write_text(exported.stdout)
    assert [s["signerId"] for s in json.loads(exported.stdout)["signers"]] == [
        env["KERNEL_SIGNER_ID"]
    ]
    verified = cli(
        "audit-verify", "--database-url", kernel.settings.database_url, "--signers", str(signers)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{len(events)} records, verified" in verified.stdout
