"""Remediation: what a ``remediate`` decision or an operator's request makes happen.

Pure code only (no I/O): the registered actions (:mod:`.actions`), the approval
seam (:mod:`.approval`), the state machine over ``remediation`` events
(:mod:`.machine`) and the ``quarantine`` action, which is an event
(:mod:`.quarantine`). The worker that calls webhooks is wired in
:mod:`ops.remediation`. See docs/decisions/0023-remediation.md.
"""
