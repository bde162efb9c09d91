"""Rotation and revocation on real Kafka and Postgres, through the CLI's commands.

Publish, sign, rotate (a link on every chain, signed by the outgoing key),
publish and sign with the incoming key: ``audit-verify`` passes with
``signers.json`` from the log. Then revoke the old key from a position before
the rotation: exactly the records between are flagged, by audit-verify and (slow
variant) by replay; the key-compromise runbook checks replay's flags by default.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from ops.bootstrap import Kernel
from ops.cli import build_parser
from schemas.events import format_ts
from streams.chain.errors import KeyFileError
from streams.chain.keys import generate_key
from tests.integration.audit.test_pipeline import _run_pipeline
from tests.integration.core.test_producer import _actions


def _cli(kernel: Kernel, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    args = build_parser().parse_args(list(argv))
    code = int(args.func(args, kernel))
    return code, capsys.readouterr().out


def _signers(kernel: Kernel, capsys: pytest.CaptureFixture[str], path: Path) -> Path:
    code, out = _cli(kernel, capsys, "keys", "export-signers", "--from-log")
    assert code == 0
    path.write_text(out)
    return path


def _links(kernel: Kernel) -> list[tuple[str, int, str, str]]:
    with psycopg.connect(kernel.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT chain, seq, signer_id, event_type FROM audit_events ORDER BY chain, seq"
        ).fetchall()
    return [(str(c), int(s), str(k), str(t)) for c, s, k, t in rows]


# Replay of the same log too, as a slow variant (+4 s; run with -m slow): the
# key-compromise runbook checks replay's flags in the default suite.
@pytest.mark.parametrize("replay", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_rotate_then_revoke_flags_exactly_the_records_between(
    audit_kernel: Kernel, tmp_path: Path, capsys: pytest.CaptureFixture[str], replay: bool
) -> None:
    old = audit_kernel
    new_key = generate_key(old.settings.keys_dir, "test-signer-2")
    new = Kernel(replace(old.settings, signing_key=new_key, signer_id="test-signer-2"))
    with old.producer() as producer:
        producer.publish_batch(_actions(5, "acct-a") + _actions(4, "acct-b"))
    _run_pipeline(old)

    code, out = _cli(old, capsys, "keys", "rotate", "--to", "test-signer-2", "--json")
    assert code == 0, out
    rotation = json.loads(out)["keyRotation"]
    positions = rotation["body"]["positions"]
    assert positions and all(c.startswith(old.names.actions) for c in positions)

    with new.producer() as producer:
        producer.publish_batch(_actions(3, "acct-a") + _actions(2, "acct-b"))
    _run_pipeline(new)  # chains the new actions and the keyRotation event itself

    links = _links(new)
    for chain, at in positions.items():  # each chain: the rotation link, then the new key
        mine = [lk for lk in links if lk[0] == chain]
        assert mine[at - 1][2:] == ("test-signer", "keyRotation")
        assert {k for _, s, k, _ in mine if s < at} == {"test-signer"}
        assert {k for _, s, k, _ in mine if s >= at} == {"test-signer-2"}
    keys_chain = [lk for lk in links if lk[0] == f"{old.names.name('keys')}/0"]
    assert [(s, k, t) for _, s, k, t in keys_chain] == [(0, "test-signer-2", "keyRotation")]

    signers = _signers(new, capsys, tmp_path / "signers.json")
    code, out = _cli(new, capsys, "audit-verify", "--signers", str(signers), "--json")
    assert code == 0, out
    assert json.loads(out)["flagged"] == []

    # The key leaked before the rotation: void from seq 1 of the busiest chain.
    chain = max(positions, key=lambda c: positions[c])
    code, out = _cli(new, capsys, "keys", "revoke", "test-signer", "--from", f"{chain}@1")
    assert code == 0, out
    signers = _signers(new, capsys, tmp_path / "signers-revoked.json")
    doc = json.loads(signers.read_text())
    old_entry = next(e for e in doc["signers"] if e["signerId"] == "test-signer")
    assert old_entry["revokedFrom"] == {chain: 1}
    assert old_entry["validUntil"] == positions

    expected = {(chain, seq) for seq in range(1, positions[chain])}  # 1 .. the rotation link
    code, out = _cli(new, capsys, "audit-verify", "--signers", str(signers), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["failures"] == []
    assert {(f["chain"], f["seq"]) for f in report["flagged"]} == expected
    assert all(
        f["reason"] == f"signed by revoked key 'test-signer' after position {chain}@1"
        for f in report["flagged"]
    )
    if replay:
        code, out = _cli(
            new, capsys, "replay", "audit", "--signers", str(signers), "--verify-only", "--json"
        )
        replayed = json.loads(out)["projections"]["audit"]
        assert code == 1
        assert not replayed["verified"] and not replayed["swapped"]
        assert replayed["failures"] == []
        assert {(f["chain"], f["seq"]) for f in replayed["flagged"]} == expected

    # By event time: on every chain, from the first record the key signed at or after it.
    with psycopg.connect(new.settings.database_url) as conn:
        signed = conn.execute(
            "SELECT chain, seq, (extract(epoch FROM ts) * 1000)::bigint FROM audit_events"
            " WHERE signer_id = 'test-signer' ORDER BY chain, seq"
        ).fetchall()
    since = sorted(ts for _, _, ts in signed)[len(signed) // 2]
    wanted: dict[str, int] = {}
    for c, seq, ts in signed:
        if ts >= since:
            wanted.setdefault(str(c), int(seq))
    code, out = _cli(
        new, capsys, "keys", "revoke", "test-signer", "--from-time", format_ts(since), "--json"
    )
    assert code == 0, out
    assert json.loads(out)["keyRotation"]["body"]["positions"] == wanted


def test_rotate_needs_the_incoming_key_and_revoke_a_known_one(
    audit_kernel: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    from schemas.errors import ConfigError

    with pytest.raises(ConfigError, match="no key file for 'nobody'"):
        _cli(audit_kernel, capsys, "keys", "rotate", "--to", "nobody")
    with pytest.raises(ConfigError, match="raw 32-byte Ed25519 key"):
        _cli(audit_kernel, capsys, "keys", "rotate", "--to", "hsm-2", "--public-key", "AAAA")
    with pytest.raises(ConfigError, match="not base64"):
        _cli(audit_kernel, capsys, "keys", "rotate", "--to", "hsm-2", "--public-key", "%%")
    with pytest.raises(KeyFileError, match="signerId"):
        _cli(audit_kernel, capsys, "keys", "rotate", "--to", "../evil", "--public-key", "AAAA")
    with pytest.raises(ConfigError, match="not a key the chains know"):
        _cli(audit_kernel, capsys, "keys", "revoke", "someone-else", "--from", "*@0")


@pytest.mark.slow  # ~10 s: a signer joins its group; run with -m slow
def test_rotate_refuses_while_a_signer_runs(
    audit_kernel: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    from schemas.errors import ConfigError

    generate_key(audit_kernel.settings.keys_dir, "test-signer-2")
    with audit_kernel.producer() as producer:
        producer.publish_batch(_actions(2, "acct-a"))
    runner, stop = audit_kernel.chain_signer(), threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        runner_heads = _wait_for_links(audit_kernel, 2)
        assert runner_heads == 2
        with pytest.raises(ConfigError, match="the chain signer is running"):
            _cli(audit_kernel, capsys, "keys", "rotate", "--to", "test-signer-2", "--wait-s", "2")
    finally:
        stop.set()
        thread.join(30)
        runner.close()
    from tests.integration.core.test_producer import read_all

    links = [e for _, e, _ in read_all(audit_kernel, audit_kernel.names.chain)]
    assert all(e.body["payload"]["eventType"] == "kernelAction" for e in links)  # no rotation


def _wait_for_links(kernel: Kernel, n: int, timeout_s: float = 30.0) -> int:
    import time

    from tests.integration.core.test_producer import read_all

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = len(read_all(kernel, kernel.names.chain))
        if found >= n:
            return found
        time.sleep(0.5)
    return 0
