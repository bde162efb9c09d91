"""A KernelError anywhere in a command is one line on stderr and exit 2."""

from __future__ import annotations

import pytest

from ops.cli import main


def test_a_bad_instance_id_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "signer", "--instance", "../x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("kernel run: error: KERNEL_INSTANCE_ID must be 1-64 letters")


def test_bad_configuration_from_the_environment_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNEL_INSTANCE_ID", "has space")
    assert main(["run", "signer"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "KERNEL_INSTANCE_ID must be" in line and "'has space'" in line


def test_unknown_workers_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "nope"]) == 2
    out = capsys.readouterr().out
    assert "unknown worker(s): nope" in out and "auditor" in out and "signer" in out
