"""``kernel keys generate | export-signers`` and key files on disk."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ops.cli import main
from streams.chain.errors import KeyFileError
from streams.chain.keys import generate_key, load_signer, load_signers_file, parse_signers


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KERNEL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_generate_and_export_signers(
    state_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["keys", "generate"]) == 0
    assert main(["keys", "generate", "--signer-id", "rotated-2"]) == 0
    key = state_dir / "keys" / "kernel-signer.ed25519.json"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    capsys.readouterr()
    assert main(["keys", "export-signers"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["signerId"] for s in doc["signers"]] == ["kernel-signer", "rotated-2"]
    signers_json = tmp_path / "signers.json"
    signers_json.write_text(json.dumps(doc))
    verifiers = load_signers_file(signers_json)
    signer = load_signer(key)
    sig = signer.sign(b"\x01" * 32)
    assert verifiers["kernel-signer"].verify(b"\x01" * 32, sig)
    assert not verifiers["rotated-2"].verify(b"\x01" * 32, sig)


def test_generate_never_overwrites(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate"]) == 0
    before = (state_dir / "keys" / "kernel-signer.ed25519.json").read_bytes()
    assert main(["keys", "generate"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert (state_dir / "keys" / "kernel-signer.ed25519.json").read_bytes() == before


def test_load_refuses_readable_or_mismatched_files(tmp_path: Path) -> None:
    path = generate_key(tmp_path / "keys", "k1")
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_signer(path)
    os.chmod(path, 0o600)
    doc = json.loads(path.read_text())
    doc["publicKey"] = json.loads(generate_key(tmp_path / "keys", "k2").read_text())["publicKey"]
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not match"):
        load_signer(path)
    with pytest.raises(KeyFileError):
        generate_key(tmp_path / "keys", "../escape")


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"signers": {}},
        {"signers": [{"signerId": "a"}]},
        {"signers": [{"signerId": "a", "publicKey": "not base64!"}]},
        {"signers": [{"signerId": "a", "publicKey": "AAAA"}]},
        {
            "signers": [
                {"signerId": "a", "publicKey": "A" * 43 + "="},
                {"signerId": "a", "publicKey": "B" * 43 + "="},
            ]
        },
    ],
)
def test_signers_json_is_parsed_strictly(doc: object) -> None:
    with pytest.raises(KeyFileError):
        parse_signers(doc)
