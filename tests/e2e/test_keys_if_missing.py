from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import KernelCLI


def test_generate_if_missing_is_idempotent_and_never_overwrites(
    cli: KernelCLI, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    first = cli("keys", "generate", "--if-missing", "--keys-dir", str(keys))
    assert first.returncode == 0, first.stderr
    assert "wrote" in first.stdout
    before = next(keys.iterdir()).read_bytes()
    second = cli("keys", "generate", "--if-missing", "--keys-dir", str(keys))
    assert second.returncode == 0, second.stderr
    assert "kept" in second.stdout
    assert next(keys.iterdir()).read_bytes() == before
    third = cli("keys", "generate", "--keys-dir", str(keys))
    assert third.returncode == 2
    assert "never overwritten" in third.stderr
