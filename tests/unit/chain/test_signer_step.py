"""The chain signer's pure step, driven without a broker."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.verify import AuditRow, ChainVerifier
from schemas.errors import ValidationError
from schemas.events import new_event, parse_ts
from streams.chain.signer import ChainSigner, chain_partition, record_id
from streams.chain.signing import LocalEd25519Signer, Verifier
from streams.processor import InputRecord

SIGNER = LocalEd25519Signer(b"\x01" * 32, "unit-signer")


def _record(offset: int, partition: int = 0, **body: object) -> InputRecord:
    event = new_event("kernelAction", "svc", "s", {"action": "a", "context": dict(body)})
    return InputRecord("t.actions", partition, offset, 0, b"s", event)


def test_links_continue_per_partition_and_are_deterministic() -> None:
    signer = ChainSigner(SIGNER, ["t.actions"], "t.chain", 3)
    state = signer.initial()
    records = [_record(0), _record(1), _record(0, partition=1), _record(5)]
    outs = []
    for rec in records:
        state, out = signer.step(state, rec)
        outs += out
    bodies = [o.event.body for o in outs]
    assert [(b["chain"], b["seq"]) for b in bodies] == [
        ("t.actions/0", 0),
        ("t.actions/0", 1),
        ("t.actions/1", 0),
        ("t.actions/0", 2),
    ]
    assert bodies[1]["prevHash"] == bodies[0]["hash"]
    assert outs[0].partition == chain_partition("t.actions/0", 3)
    assert outs[0].event.event_id == record_id("t.actions/0", 0)
    # The same input gives byte-identical links (deterministic signatures and ids).
    again = signer.initial()
    for rec, out in zip(records, outs, strict=True):
        again, (same,) = signer.step(again, rec)
        assert same.event == out.event
    verifier = ChainVerifier({"unit-signer": Verifier(SIGNER.public_key)})
    rows = sorted(
        (
            AuditRow(
                id=b["payload"]["eventId"],
                chain=b["chain"],
                seq=b["seq"],
                event_type=b["payload"]["eventType"],
                payload=b["payload"],
                prev_hash=b["prevHash"],
                hash=b["hash"],
                signature=b["signature"],
                signer_id=b["signerId"],
                ts_ms=parse_ts(b["payload"]["ts"]),
                metadata=b["payload"]["metadata"],
            )
            for b in bodies
        ),
        key=lambda r: (r.chain, r.seq),
    )
    assert verifier.feed_all(rows).ok


def test_nul_from_a_foreign_producer_is_refused_not_chained() -> None:
    signer = ChainSigner(SIGNER, ["t.actions"], "t.chain", 3)
    rec = _record(0)
    bad = replace(rec, event=replace(rec.event, actor="evil\x00actor"))
    with pytest.raises(ValidationError, match="NUL"):
        signer.step(signer.initial(), bad)


_text = st.text(alphabet=st.sampled_from(["a", "\\", "u", "0", "\x00", "\x01", "é"]), max_size=8)


@settings(max_examples=200, deadline=None)
@given(key=_text, value=_text, in_actor=st.booleans())
def test_nul_is_refused_exactly_when_one_is_in_the_event(
    key: str, value: str, in_actor: bool
) -> None:
    # The signer's quick check reads the canonical bytes; the text "\\u0000" (an
    # escaped backslash) must not be taken for a NUL, and a NUL anywhere must be.
    signer = ChainSigner(SIGNER, ["t.actions"], "t.chain", 3)
    rec = _record(0)
    event = rec.event
    if in_actor:
        event = replace(event, actor="svc" + value)
    else:
        event = replace(event, body={**event.body, "context": {key: value}})
    has_nul = "\x00" in (value if in_actor else key + value)
    bad = replace(rec, event=event)
    if has_nul:
        with pytest.raises(ValidationError, match="NUL"):
            signer.step(signer.initial(), bad)
    else:
        _, (out,) = signer.step(signer.initial(), bad)
        assert out.event.body["payload"] == event.to_json()


@given(chain=st.text(min_size=1, max_size=20), seq=st.integers(0, 2**63 - 1))
def test_record_id_is_the_uuid5_of_chain_and_seq(chain: str, seq: int) -> None:
    expected = uuid.uuid5(uuid.UUID("5b1c7e56-58a4-4c6c-9a51-6f2f3c0c1d2e"), f"{chain}#{seq}")
    assert record_id(chain, seq) == str(expected)
