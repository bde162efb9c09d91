"""A fixed vector of the approval statement, checked by independent implementations.

The statement's bytes come from the ``rfc8785`` reference JCS (not our fast
canonicalizer) and the signature from PyNaCl directly (not our signer), so an
auditor's own Ed25519 + JCS reproduces both: what the offline quorum check relies on.
"""

from __future__ import annotations

import base64

import rfc8785
from nacl.signing import SigningKey, VerifyKey

from streams.approvals.statement import Approval, Statement, sign_statement
from streams.chain.signing import LocalEd25519Signer, Verifier

SEED = bytes(range(32))
STATEMENT = {
    "subject": "policy:payments-large",
    "action": "activate",
    "version": 2,
    "expiresAt": 1767225600000,
}
MESSAGE = (
    b'{"action":"activate","expiresAt":1767225600000,"subject":"policy:payments-large","version":2}'
)
PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
SIGNATURE = (
    "k2x+8IENoCimVLXt0wBLBIrxDNtofbmcs/Jh42/6QGmggjRtf6SiBcD4Ys2fBrmYUdZIceGi6W/hiEeCGGCpAQ=="
)


def test_the_vector_by_independent_implementations() -> None:
    assert rfc8785.dumps(STATEMENT) == MESSAGE
    key = SigningKey(SEED)
    assert base64.b64encode(bytes(key.verify_key)).decode() == PUBLIC_KEY
    assert base64.b64encode(key.sign(MESSAGE).signature).decode() == SIGNATURE
    VerifyKey(base64.b64decode(PUBLIC_KEY)).verify(MESSAGE, base64.b64decode(SIGNATURE))


def test_our_statement_signs_the_vector() -> None:
    statement = Statement("policy:payments-large", "activate", 2, 1767225600000)
    assert statement.to_json() == STATEMENT
    assert statement.message() == MESSAGE
    approval = sign_statement(LocalEd25519Signer(SEED, "approver-a"), statement)
    assert approval.signature == SIGNATURE
    verifier = Verifier(base64.b64decode(PUBLIC_KEY))
    assert approval.verifies(verifier)
    altered = Approval(
        "approver-a", Statement("policy:payments-large", "activate", 3, 1767225600000), SIGNATURE
    )
    assert not altered.verifies(verifier)
    assert not Approval("approver-a", statement, "not base64!").verifies(verifier)
