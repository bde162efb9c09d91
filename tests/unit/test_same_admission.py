"""The signer refuses no action the sentinel decides (``docs/decisions/0010``).

Both workers decode with the same codec, which enforces the input contract,
and both refuse duplicates with the same window (``tests/unit/test_dedup.py``).
What is left are the signer's own refusals of a decoded event -- a NUL, or a
value with no RFC 8785 form (an integer beyond 2^53, a NaN, a lone
surrogate). The property: whenever the signer's step refuses an event for
those, the input contract refuses it too, so the codec never hands it to
either worker and the checks in the signer are defence only.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import KernelError
from schemas.events import Event, new_event
from streams.chain.signer import ChainSigner
from streams.chain.signing import LocalEd25519Signer
from streams.processor import InputRecord

contract = pytest.importorskip("schemas.contract", reason="the input contract (helper contract)")

SIGNER = ChainSigner(
    LocalEd25519Signer(hashlib.sha256(b"admission").digest(), "unit"), ["t.a"], "t.chain", 3
)
hostile_text = st.lists(
    st.sampled_from(["a", "é", "\x00", "\ud800", "\\u0000", "😀"]), max_size=4
).map("".join)
leaves = st.one_of(
    hostile_text,
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


def event_with(context: Any, actor: str, subject: str) -> Event:
    event = new_event("kernelAction", "svc", "s", {"action": "a.x", "context": {}})
    body = {**event.body, "context": context}
    return replace(event, actor=actor, subject=subject, body=body)


@settings(max_examples=400, deadline=None)
@given(
    context=st.dictionaries(hostile_text, json_values, max_size=3),
    actor=st.sampled_from(["svc", "svc\x00", "svc\ud800"]),
    subject=st.sampled_from(["s", "s\x00"]),
)
def test_what_the_signer_refuses_the_contract_refuses(
    context: dict[str, Any], actor: str, subject: str
) -> None:
    event = event_with(context, actor, subject)
    record = InputRecord("t.a", 0, 0, event.ts_ms, b"s", event)
    try:
        SIGNER.step(SIGNER.initial(), record)
    except KernelError:
        refused = True
    else:
        refused = False
    if refused:
        with pytest.raises(KernelError):
            contract.default_contract().check_event(event, log_ts_ms=event.ts_ms)
