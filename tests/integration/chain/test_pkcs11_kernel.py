"""The composition root and ``kernel keys`` on a real SoftHSM2 token.

KERNEL_ENV=production starts and signs with the token; ``kernel keys generate
--pkcs11`` creates the key inside it and prints the signers.json entry that
verifiers trust; ``export-signers`` lists it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.cli import main
from ops.config import Settings
from streams.chain.keys import generate_key, parse_signers
from streams.chain.pkcs11_signer import Pkcs11Signer
from tests.softhsm import SoftHsmToken, key_label


def _settings(tmp_path: Path, env: dict[str, str]) -> Settings:
    return Settings.from_env({"KERNEL_STATE_DIR": str(tmp_path / "state"), **env})


def test_production_signs_with_the_token_and_verifiers_trust_its_key(
    softhsm: SoftHsmToken, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    label = key_label()
    env = softhsm.env(label, KERNEL_ENV="production", KERNEL_SIGNER_ID="hsm-prod")
    env.pop("KERNEL_PKCS11_PIN")
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.pin + "\n")
    env["KERNEL_PKCS11_PIN_FILE"] = str(pin_file)
    for name, value in {**env, "KERNEL_STATE_DIR": str(tmp_path / "state")}.items():
        monkeypatch.setenv(name, value)
    assert main(["keys", "generate", "--pkcs11"]) == 0
    out = capsys.readouterr().out
    assert f"generated Ed25519 key {label!r} inside token {softhsm.label!r}" in out
    assert softhsm.pin not in out
    entry = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert entry["signerId"] == "hsm-prod"

    kernel = Kernel(_settings(tmp_path, env))
    signer = kernel.signer()
    try:
        assert isinstance(signer, Pkcs11Signer) and signer.signer_id == "hsm-prod"
        trusted = parse_signers({"signers": [entry]})["hsm-prod"]
        digest = b"\x02" * 32
        assert trusted.verify(digest, signer.sign(digest))
        assert kernel.verifiers()["hsm-prod"].verify(digest, signer.sign(digest))
    finally:
        signer.close()

    assert main(["keys", "export-signers"]) == 0  # KERNEL_SIGNER_BACKEND=pkcs11 includes it
    assert json.loads(capsys.readouterr().out) == {"signers": [entry]}
    assert main(["keys", "generate", "--pkcs11"]) == 2  # never overwritten
    assert "never overwritten" in capsys.readouterr().err
    assert main(["keys", "generate", "--pkcs11", "--if-missing"]) == 0
    assert f"kept Ed25519 key {label!r}" in capsys.readouterr().out


def test_development_lists_file_keys_and_the_token_key_together(
    softhsm: SoftHsmToken, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    state = tmp_path / "state"
    generate_key(state / "keys", "old-file-key")
    sid = key_label()  # the key's label in the token defaults to the signerId
    env = {**softhsm.env(), "KERNEL_STATE_DIR": str(state), "KERNEL_SIGNER_ID": sid}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KERNEL_SIGNER_BACKEND")  # development, file backend
    assert main(["keys", "generate", "--pkcs11"]) == 0
    assert f"generated Ed25519 key {sid!r}" in capsys.readouterr().out
    assert main(["keys", "export-signers"]) == 0
    ids = [s["signerId"] for s in json.loads(capsys.readouterr().out)["signers"]]
    assert ids == ["old-file-key"]
    assert main(["keys", "export-signers", "--pkcs11"]) == 0  # --pkcs11 adds the token's key
    ids = [s["signerId"] for s in json.loads(capsys.readouterr().out)["signers"]]
    assert ids == ["old-file-key", sid]
