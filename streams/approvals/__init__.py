"""k-of-n approvals: signed statements, the approvers registry and the quorum rule.

Everything here is pure (no I/O); the Kafka reader, the CLI and the HTTP
routes live in ``ops``. Bottom up:

- :mod:`.statement` -- the signed statement ``{subject, action, version,
  expiresAt}`` (RFC 8785 JCS, Ed25519) and one approval;
- :mod:`.registry` -- the approvers registry (approver id -> public key, the
  threshold k) and the changes to it, themselves approved;
- :mod:`.quorum` -- the reusable quorum check: a request plus approvals, judged
  against a registry at a time, every refusal with its reason;
- :mod:`.log` -- the fold over ``approval`` events (genesis, requests,
  approvals, quorums) and the activation gate the policy lifecycle consults.

See docs/decisions/0021-k-of-n-approvals.md.
"""
