"""The topics of the log, declared once.

``kernel topics ensure`` creates them and reports drift. The event log and the
audit topics are never compacted and never expire (``retention.ms=-1``); the
dead-letter topic keeps 30 days by default. Names carry KERNEL_TOPIC_PREFIX so
tests can run side by side on one broker with uuid-named prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.errors import SchemaError

__all__ = ["AUDITED", "TOPICS", "TopicNames", "TopicSpec"]

FOREVER = "-1"


@dataclass(frozen=True)
class TopicSpec:
    name: str  # without the prefix
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    event_types: tuple[str, ...] = ()
    doc: str = ""


_KEEP = {"cleanup.policy": "delete", "retention.ms": FOREVER, "retention.bytes": "-1"}

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("actions", 3, _KEEP, ("kernelAction",), "every kernel action"),
    TopicSpec("policy-checks", 3, _KEEP, ("policyCheck",), "SentinelNet decisions"),
    TopicSpec(
        "policies",
        1,
        _KEEP,
        ("policyChange", "policySimulation"),
        "policy lifecycle and simulation reports; one ordered log",
    ),
    TopicSpec("approvals", 1, _KEEP, ("approval",), "k-of-n signed approvals"),
    TopicSpec("remediations", 1, _KEEP, ("remediation",), "remediation steps"),
    TopicSpec("keys", 1, _KEEP, ("keyRotation",), "signing key rotations"),
    TopicSpec("access", 1, _KEEP, ("accessDenied",), "requests refused at a door (rate-limited)"),
    TopicSpec("audit.chain", 3, _KEEP, ("auditRecord",), "signed hash-chain records"),
    TopicSpec("audit.checkpoints", 1, _KEEP, ("chainCheckpoint",), "signed Merkle checkpoints"),
    TopicSpec(
        "dlq",
        1,
        {"cleanup.policy": "delete", "retention.ms": str(30 * 86_400_000)},
        ("deadLetter",),
        "records that could not be processed, with the reason",
    ),
)

# Topics whose records the chain signer chains and signs.
AUDITED: tuple[str, ...] = (
    "actions",
    "policy-checks",
    "policies",
    "approvals",
    "remediations",
    "keys",
    "access",
)


class TopicNames:
    """Prefixed topic names, and the topic of each event type."""

    def __init__(self, prefix: str = "kernel.") -> None:
        self.prefix = prefix
        self._by_type = {t: s.name for s in TOPICS for t in s.event_types}

    def name(self, short: str) -> str:
        return self.prefix + short

    def for_event_type(self, event_type: str) -> str:
        try:
            return self.name(self._by_type[event_type])
        except KeyError:
            raise SchemaError(f"no topic carries event type {event_type!r}") from None

    def audited(self) -> list[str]:
        return [self.name(t) for t in AUDITED]

    @property
    def actions(self) -> str:
        return self.name("actions")

    @property
    def policy_checks(self) -> str:
        return self.name("policy-checks")

    @property
    def policies(self) -> str:
        return self.name("policies")

    @property
    def approvals(self) -> str:
        return self.name("approvals")

    @property
    def chain(self) -> str:
        return self.name("audit.chain")

    @property
    def checkpoints(self) -> str:
        return self.name("audit.checkpoints")

    @property
    def access(self) -> str:
        return self.name("access")

    @property
    def dlq(self) -> str:
        return self.name("dlq")
