"""``kernel audit-verify`` against real Postgres: every tampering class is caught."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from audit_chain_helpers import ATTACKER, INSERT, SIGNER, AuditDb, event, row_params

from ops.cli import main
from streams.chain.links import link_digest

CHAIN = "kernel.actions/0"


def verify(db: AuditDb, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(
        [
            "audit-verify",
            "--database-url",
            db.url,
            "--signers",
            str(db.signers_path),
            "--json",
            *extra,
        ]
    )
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def db(audit_db: AuditDb) -> AuditDb:
    audit_db.add_chain("kernel.actions", 0, 12)
    audit_db.add_chain("kernel.actions", 1, 5, start=100)
    return audit_db


def test_valid_chains_verify(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verify(db, capsys)
    assert code == 0
    assert out["verified"] and out["total"] == 17 and out["failures"] == []
    heads = {c["chain"]: (c["length"], c["headHash"]) for c in out["chains"]}
    assert heads == {
        CHAIN: (12, db.bodies[CHAIN][-1]["hash"]),
        "kernel.actions/1": (5, db.bodies["kernel.actions/1"][-1]["hash"]),
    }
    capsys.readouterr()
    assert main(["audit-verify", "--database-url", db.url, "--signers", str(db.signers_path)]) == 0
    text = capsys.readouterr().out
    assert f"head {db.bodies[CHAIN][-1]['hash']}" in text and "17 records, verified" in text


def test_table_is_append_only(db: AuditDb) -> None:
    with db.connect() as conn:
        for sql in (
            "UPDATE audit_events SET signer_id = 'x'",
            "DELETE FROM audit_events WHERE seq = 3",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)
        grants = conn.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = 'kernel_projector' AND table_name = 'audit_events'"
        ).fetchall()
    assert sorted(g for (g,) in grants) == ["INSERT"]  # the projector may only append


def _first_failure(out: Any) -> dict[str, Any]:
    assert out["verified"] is False
    return dict(out["failures"][0])


def _expect(db: AuditDb, capsys: pytest.CaptureFixture[str], seq: int, reason: str) -> None:
    code, out = verify(db, capsys)
    assert code == 1
    f = _first_failure(out)
    assert (f["chain"], f["seq"]) == (CHAIN, seq)
    assert reason in f["reason"]
    assert len(out["failures"]) == 1  # the other chain still verifies
    if seq < 12:
        assert f["id"] is not None


def test_edited_payload(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET payload = jsonb_set(payload, '{body,context,amount}', '999')"
            " WHERE chain = %s AND seq = 4",
            (CHAIN,),
        )
    _expect(db, capsys, 4, "payload or hash edited")


def test_edited_hash(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET hash = repeat('0', 64) WHERE chain = %s AND seq = 11", (CHAIN,)
        )
    _expect(db, capsys, 11, "payload or hash edited")


def test_edited_signature(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    sig = bytearray(base64.b64decode(db.bodies[CHAIN][6]["signature"]))
    sig[10] ^= 1
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET signature = %s WHERE chain = %s AND seq = 6",
            (base64.b64encode(bytes(sig)).decode(), CHAIN),
        )
    _expect(db, capsys, 6, "signature does not verify")


def test_deleted_row(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    with db.tampering() as conn:
        conn.execute("DELETE FROM audit_events WHERE chain = %s AND seq = 5", (CHAIN,))
    _expect(db, capsys, 6, "seq 5 is missing")


def test_inserted_row(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    # Make room after seq 3 and insert a well-formed, hash-consistent record.
    bodies = db.bodies[CHAIN]
    forged = dict(bodies[4])
    forged["payload"] = event(777)
    forged["prevHash"] = bodies[3]["hash"]
    digest = link_digest(forged["payload"], forged["prevHash"])
    forged["hash"] = digest.hex()
    forged["signature"] = base64.b64encode(SIGNER.sign(b"\x00" * 32)).decode()  # replayed sig
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET seq = seq + 100 WHERE chain = %s AND seq >= 4", (CHAIN,)
        )
        conn.execute(
            "UPDATE audit_events SET seq = seq - 99 WHERE chain = %s AND seq >= 104", (CHAIN,)
        )
        conn.execute(INSERT, row_params(forged))
    _expect(db, capsys, 4, "signature does not verify")


def test_inserted_row_relinks_nothing(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    # Even a correctly signed copy of a real record, inserted, breaks the next link.
    dup = dict(db.bodies[CHAIN][2])
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET seq = seq + 100 WHERE chain = %s AND seq >= 3", (CHAIN,)
        )
        conn.execute(
            "UPDATE audit_events SET seq = seq - 99 WHERE chain = %s AND seq >= 103", (CHAIN,)
        )
        dup["seq"] = 3
        conn.execute(INSERT, row_params(dup))
    _expect(db, capsys, 3, "does not link")


def test_swapped_rows(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    with db.tampering() as conn:
        conn.execute("UPDATE audit_events SET seq = 1000 WHERE chain = %s AND seq = 7", (CHAIN,))
        conn.execute("UPDATE audit_events SET seq = 7 WHERE chain = %s AND seq = 8", (CHAIN,))
        conn.execute("UPDATE audit_events SET seq = 8 WHERE chain = %s AND seq = 1000", (CHAIN,))
    _expect(db, capsys, 7, "does not link")


def test_unknown_signer(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET signer_id = 'attacker' WHERE chain = %s AND seq = 2", (CHAIN,)
        )
    _expect(db, capsys, 2, "'attacker' is not in signers.json")


def test_valid_signature_by_the_wrong_key(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    digest = bytes.fromhex(db.bodies[CHAIN][9]["hash"])
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET signature = %s WHERE chain = %s AND seq = 9",
            (base64.b64encode(ATTACKER.sign(digest)).decode(), CHAIN),
        )
    _expect(db, capsys, 9, "signature does not verify under 'kernel-signer'")


def test_edited_query_column(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    with db.tampering() as conn:
        conn.execute(
            "UPDATE audit_events SET event_type = 'policyCheck' WHERE chain = %s AND seq = 1",
            (CHAIN,),
        )
    _expect(db, capsys, 1, "event_type disagrees")


def test_truncated_tail_against_checkpoint(
    db: AuditDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, note = db.checkpoint(CHAIN, 12, tmp_path)
    _, older = db.checkpoint(CHAIN, 7, tmp_path)
    assert verify(db, capsys, "--checkpoint", str(note), "--checkpoint", str(older))[0] == 0
    with db.tampering() as conn:
        conn.execute("DELETE FROM audit_events WHERE chain = %s AND seq >= 10", (CHAIN,))
    assert verify(db, capsys)[0] == 0  # without a checkpoint a clean cut is invisible
    code, out = verify(db, capsys, "--checkpoint", str(note))
    assert code == 1
    f = _first_failure(out)
    assert f["chain"] == CHAIN and "removed from its tail" in f["reason"]


def test_rewritten_chain_against_checkpoint(
    db: AuditDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A full rewrite by someone holding the signing key is still caught by an
    # older checkpoint: the Merkle root at its size differs.
    _, note = db.checkpoint(CHAIN, 6, tmp_path)
    with db.tampering() as conn:
        conn.execute("DELETE FROM audit_events WHERE chain = %s", (CHAIN,))
    db.add_chain("kernel.actions", 0, 12, start=500)
    assert verify(db, capsys)[0] == 0
    code, out = verify(db, capsys, "--checkpoint", str(note))
    assert code == 1 and "rewritten" in _first_failure(out)["reason"]


def test_only_one_chain(db: AuditDb, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verify(db, capsys, "--chain", "kernel.actions/1")
    assert code == 0 and [c["chain"] for c in out["chains"]] == ["kernel.actions/1"]
