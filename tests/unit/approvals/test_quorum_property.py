"""Property: quorum is reached with k valid distinct approvals, never with fewer.

hypothesis draws a registry of n approvers with threshold k and a set of
approvals of six kinds -- valid, duplicate, expired, forged, wrong subject
(or action, or version), unknown approver -- shuffled. The quorum is reached
exactly when the number of distinct approvers with a valid approval is >= k,
and every other approval is refused with the reason of its kind.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.approvals.quorum import ApprovalRequest, check_quorum
from streams.approvals.registry import ApproverRegistry
from streams.approvals.statement import DAY_MS, Approval, Statement, sign_statement
from streams.chain.signing import LocalEd25519Signer

NOW = 1_780_000_000_000
SIGNERS = [LocalEd25519Signer(bytes([i + 1]) * 32, f"ap{i}") for i in range(7)]
OUTSIDER = LocalEd25519Signer(b"\x99" * 32, "outsider")
REQUEST = ApprovalRequest("r1", "policyActivation", "policy:p1", "activate", 2)
KINDS = ("valid", "duplicate", "expired", "forged", "wrong-target", "unknown")


def _approval(kind: str, who: int, lifetime: int) -> Approval:
    signer = SIGNERS[who]
    statement = REQUEST.statement(NOW + lifetime)
    if kind == "expired":
        statement = REQUEST.statement(NOW - lifetime)
    if kind == "wrong-target":
        subject, action, version = [
            ("policy:p2", "activate", 2),
            ("policy:p1", "deprecate", 2),
            ("policy:p1", "activate", 3),
        ][who % 3]
        statement = Statement(subject, action, version, NOW + lifetime)
    if kind == "unknown":
        return sign_statement(OUTSIDER, statement)
    approval = sign_statement(signer, statement)
    if kind == "forged":  # another key's signature under this approver's name
        other = sign_statement(SIGNERS[(who + 1) % len(SIGNERS)], statement)
        return Approval(signer.signer_id, statement, other.signature)
    return approval


@st.composite
def cases(draw: st.DrawFn) -> tuple[ApproverRegistry, list[tuple[str, Approval]]]:
    n = draw(st.integers(1, 7))
    k = draw(st.integers(1, n))
    registry = ApproverRegistry(1, k, {s.signer_id: s.public_key for s in SIGNERS[:n]})
    picks = draw(
        st.lists(
            st.tuples(st.sampled_from(KINDS), st.integers(0, n - 1), st.integers(1, 30 * DAY_MS)),
            max_size=12,
        )
    )
    approvals: list[tuple[str, Approval]] = []
    for kind, who, lifetime in picks:
        if kind == "duplicate":
            approvals += [("valid", _approval("valid", who, lifetime))] * 2
        else:
            approvals.append((kind, _approval(kind, who, lifetime)))
    return registry, draw(st.permutations(approvals))


@settings(max_examples=150, deadline=None)
@given(cases())
def test_quorum_is_exactly_k_valid_distinct(
    case: tuple[ApproverRegistry, list[tuple[str, Approval]]],
) -> None:
    registry, approvals = case
    result = check_quorum(REQUEST, [a for _, a in approvals], registry, NOW)
    distinct_valid = {a.approver_id for kind, a in approvals if kind == "valid"}
    assert {a.approver_id for a in result.counted} == distinct_valid
    assert len(result.counted) == len(distinct_valid)  # a duplicate counts once
    assert result.reached == (len(distinct_valid) >= registry.threshold)
    expected_reason = {
        "expired": "expired",
        "forged": "does not verify",
        "wrong-target": "not this request's",
        "unknown": "not in the approvers registry",
    }
    for kind, approval in approvals:
        if kind in expected_reason:
            reasons = [r.reason for r in result.rejected if r.approval is approval]
            assert reasons and expected_reason[kind] in reasons[0], (kind, reasons)
    assert len(result.counted) + len(result.rejected) == len(approvals)


@given(st.integers(1, 7).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_k_minus_one_valid_never_reach(nk: tuple[int, int]) -> None:
    n, k = nk
    registry = ApproverRegistry(1, k, {s.signer_id: s.public_key for s in SIGNERS[:n]})
    valid = [_approval("valid", i, DAY_MS) for i in range(k)]
    assert check_quorum(REQUEST, valid, registry, NOW).reached
    short = valid[:-1]
    # k-1 valid, padded with every kind of bad one and with duplicates: still no quorum
    bad = [_approval(kind, 0, DAY_MS) for kind in ("expired", "forged", "wrong-target", "unknown")]
    assert not check_quorum(REQUEST, short + short + bad, registry, NOW).reached
