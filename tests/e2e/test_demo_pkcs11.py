"""``kernel demo`` on a SoftHSM2 token (KERNEL_SIGNER_BACKEND=pkcs11): README's command, HSM-signed.

The demo creates the key inside the token when it is missing, signs the chain
through it, and its verification passes; then the operator's next steps
(``export-signers``, ``audit-verify``) work with the token's key.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import KernelCLI
from tests.softhsm import SoftHsmToken, key_label


def test_demo_signs_through_the_token_and_verifies(
    db_cli: KernelCLI, softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    env = softhsm.env(KERNEL_STATE_DIR=str(tmp_path), KERNEL_SIGNER_ID=key_label())
    done = db_cli("demo", timeout=300, extra_env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert f"signing key (inside PKCS#11 token {softhsm.label!r}, not extractable)" in out
    assert f"generated key {env['KERNEL_SIGNER_ID']!r}" in out
    assert "verified: every chain" in out
    assert not list(tmp_path.rglob("*.ed25519.json"))  # no key file was made
    exported = db_cli("keys", "export-signers", extra_env=env)
    assert exported.returncode == 0, exported.stderr
    signers = tmp_path / "signers.json"
    signers.write_text(exported.stdout)
    verified = db_cli("audit-verify", "--signers", str(signers), extra_env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified" in verified.stdout.splitlines()[-1]
