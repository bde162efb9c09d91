"""``kernel audit-prove`` -> ``kernel audit-verify --proof``: offline, signers.json only."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from audit_chain_helpers import AuditDb

from ops.cli import main

CHAIN = "kernel.actions/0"


@pytest.fixture
def db(audit_db: AuditDb, tmp_path: Path) -> AuditDb:
    audit_db.add_chain("kernel.actions", 0, 21)
    audit_db.checkpoint(CHAIN, 13, tmp_path)
    audit_db.checkpoint(CHAIN, 21, tmp_path)
    return audit_db


def prove(db: AuditDb, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["audit-prove", *args, "--database-url", db.url]) == 0
    return dict(json.loads(capsys.readouterr().out))


def check(
    db: AuditDb, capsys: pytest.CaptureFixture[str], doc: Any, tmp_path: Path, *extra: str
) -> tuple[int, str]:
    path = tmp_path / "proof.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    capsys.readouterr()
    code = main(["audit-verify", "--signers", str(db.signers_path), "--proof", str(path), *extra])
    return code, capsys.readouterr().out


def _flip(b64: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def test_inclusion_proof_round_trip(
    db: AuditDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event_id = db.bodies[CHAIN][9]["payload"]["eventId"]
    doc = prove(db, capsys, event_id)
    assert doc["seq"] == 9 and doc["treeSize"] == 21
    assert len(doc["proof"]) == 5  # ceil(log2(21)): O(log n)
    code, out = check(db, capsys, doc, tmp_path)
    assert code == 0 and f"event {event_id} is record 9" in out


def test_inclusion_negatives(
    db: AuditDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = prove(db, capsys, db.bodies[CHAIN][9]["payload"]["eventId"])
    bad: list[Any] = []
    for i in range(len(good["proof"])):  # flipped bit in each proof hash
        d = json.loads(json.dumps(good))
        d["proof"][i] = _flip(d["proof"][i], 77)
        bad.append(d)
    for seq in (8, 10, 20, 21):  # wrong index
        bad.append({**good, "seq": seq})
    bad.append({**good, "treeSize": 13})  # wrong size
    other = db.bodies[CHAIN][10]  # wrong leaf (a real, signed record)
    bad.append({**good, "record": {
        "id": other["payload"]["eventId"], "payload": other["payload"],
        "prevHash": other["prevHash"], "hash": other["hash"],
        "signature": other["signature"], "signerId": other["signerId"],
    }})  # fmt: skip
    edited = json.loads(json.dumps(good))
    edited["record"]["payload"]["actor"] = "someone-else"
    bad.append(edited)
    bad.append({**good, "checkpoint": "garbage\n" + good["checkpoint"]})  # preceding garbage
    bad.append({**good, "checkpoint": good["checkpoint"] + "garbage\n"})  # trailing garbage
    bad.append({**good, "proof": good["proof"][:-1]})
    bad.append({**good, "proof": [*good["proof"], good["proof"][0]]})
    bad.append({**good, "extra": 1})
    bad.append(json.dumps(good) + "garbage")  # trailing garbage in the file
    bad.append("garbage" + json.dumps(good))  # preceding garbage in the file
    for doc in bad:
        code, out = check(db, capsys, doc, tmp_path)
        assert code == 1, doc
        assert "FAILED" in out


def test_consistency_proof_round_trip_and_negatives(
    db: AuditDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = prove(db, capsys, "--chain", CHAIN, "--old-size", "13")
    assert (doc["oldSize"], doc["newSize"]) == (13, 21)
    code, out = check(db, capsys, doc, tmp_path)
    assert code == 0 and "extends the one of size 13" in out
    # Pinned to the checkpoints the auditor holds: accepted; pinned to others: refused.
    pins = sorted(tmp_path.glob("cp-*.note"))
    pin_args = [a for p in pins for a in ("--checkpoint", str(p))]
    assert check(db, capsys, doc, tmp_path, *pin_args)[0] == 0
    assert check(db, capsys, doc, tmp_path, "--checkpoint", str(pins[0]))[0] == 1
    for i in range(len(doc["proof"])):
        d = json.loads(json.dumps(doc))
        d["proof"][i] = _flip(d["proof"][i], 3)
        assert check(db, capsys, d, tmp_path)[0] == 1
    swapped = {**doc, "oldCheckpoint": doc["newCheckpoint"], "newCheckpoint": doc["oldCheckpoint"]}
    assert check(db, capsys, swapped, tmp_path)[0] == 1
    assert check(db, capsys, {**doc, "oldSize": 12}, tmp_path)[0] == 1


def test_prove_without_a_covering_checkpoint_says_so(
    audit_db: AuditDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    audit_db.add_chain("kernel.actions", 0, 5)
    audit_db.checkpoint(CHAIN, 3, tmp_path)
    event_id = audit_db.bodies[CHAIN][4]["payload"]["eventId"]
    assert main(["audit-prove", event_id, "--database-url", audit_db.url]) == 2
    assert "no signed checkpoint" in capsys.readouterr().err
