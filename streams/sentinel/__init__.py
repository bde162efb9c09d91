"""SentinelNet: versioned policies, the CEL rule language, and the pure evaluator.

Everything in this package is pure (no I/O) except the adapters named after
their technology (``kafka_registry.py``). The layering, bottom up:

- :mod:`.policy` -- the policy model and its I-JSON mapping;
- :mod:`.lifecycle` -- legal lifecycle transitions, folded from policyChange events;
- :mod:`.rules` -- compile-once CEL rules, checked against the kernel action schema;
- :mod:`.evaluator` -- policies in scope, each result, the decision and its path;
- :mod:`.decision` -- the ``policyCheck`` event built from one evaluation.
"""
