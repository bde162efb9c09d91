"""SentinelNet: versioned policies, the CEL rule language, and the pure evaluator.

Everything in this package is pure (no I/O) except the adapters named after
their technology (``kafka_registry.py``). The layering, bottom up:

- :mod:`.policy` -- the policy model and its I-JSON mapping;
- :mod:`.lifecycle` -- legal lifecycle transitions, folded from policyChange events;
- :mod:`.rules` -- compile-once CEL rules, checked against the kernel action schema;
- :mod:`.policy_index` -- compiled policies, indexed by scope; their rules run (batched);
- :mod:`.evaluation` -- the model: each policy's result and the evaluation;
- :mod:`.verdict` -- precedence, the decider, the rationale and every reason;
- :mod:`.evaluator` -- one action against the live set: each result, the decision, its path;
- :mod:`.decision` -- the ``policyCheck`` event built from one evaluation.
"""
