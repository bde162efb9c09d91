"""Adapter: Kafka ACLs through the Admin API (``create_acls``, ``describe_acls``).

A :class:`Grant` is one allow rule in Kafka's own terms -- principal, resource
(topic, group, transactional id, the cluster), pattern (literal or prefixed),
operation -- without naming confluent_kafka's enums, so the table of who may
do what (:mod:`ops.kafka_acls`) is plain data. Creating an ACL that exists is
a no-op on the broker, so :meth:`KafkaAcls.apply` is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from schemas.errors import LogUnavailableError
from streams.kafka.clients import KafkaClients

__all__ = ["CLUSTER", "Grant", "KafkaAcls"]

Resource = Literal["topic", "group", "transactional_id", "cluster"]
Operation = Literal[
    "read", "write", "describe", "create", "describe_configs", "idempotent_write", "alter"
]
CLUSTER = "kafka-cluster"  # the one name of the cluster resource

_RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,  # librdkafka's name for Kafka's CLUSTER resource
}
_OPERATIONS = {
    "read": AclOperation.READ,
    "write": AclOperation.WRITE,
    "describe": AclOperation.DESCRIBE,
    "create": AclOperation.CREATE,
    "describe_configs": AclOperation.DESCRIBE_CONFIGS,
    "idempotent_write": AclOperation.IDEMPOTENT_WRITE,
    "alter": AclOperation.ALTER,
}


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW ``operation`` on ``resource`` ``name`` (``prefixed``: every name starting so)
    to the SCRAM user ``user`` (principal ``User:<user>``), from any host."""

    user: str
    resource: Resource
    name: str
    operation: Operation
    prefixed: bool = False

    def describe(self) -> str:
        match = "prefix " if self.prefixed else ""
        return f"User:{self.user} {self.operation} {self.resource} {match}{self.name}"

    def binding(self) -> AclBinding:
        return AclBinding(
            _RESOURCES[self.resource],
            self.name,
            ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL,
            f"User:{self.user}",
            "*",
            _OPERATIONS[self.operation],
            AclPermissionType.ALLOW,
        )


class KafkaAcls:
    """Create and list ACLs on the cluster (needs a principal allowed to ALTER the cluster)."""

    def __init__(self, kafka: KafkaClients | str, timeout_s: float = 15.0) -> None:
        self._kafka = KafkaClients.of(kafka)
        self._admin = self._kafka.admin()
        self._timeout = timeout_s

    def apply(self, grants: Iterable[Grant]) -> int:
        """Create every grant (existing ones are left as they are); returns how many."""
        bindings = [g.binding() for g in sorted(set(grants))]
        if not bindings:
            return 0
        futures = self._admin.create_acls(bindings, request_timeout=self._timeout)
        for binding, fut in futures.items():
            try:
                fut.result()
            except KafkaException as exc:
                raise LogUnavailableError(
                    f"Kafka at {self._kafka.bootstrap} refused the ACL {binding}: {exc} "
                    "(ACLs are created by a super user or a principal allowed to ALTER "
                    "the cluster)"
                ) from exc
        self._await_in_force(bindings)
        return len(bindings)

    def _await_in_force(self, bindings: list[AclBinding]) -> None:
        """``create_acls`` returns once the controller has the ACLs; a broker authorizes
        with them once it has applied the metadata, a moment later. The broker answers
        ``describe_acls`` from its own authorizer: wait until it lists them all."""
        wanted = {str(b) for b in bindings}
        deadline = time.monotonic() + self._timeout
        while not wanted <= set(self._described(None)):
            if time.monotonic() > deadline:
                raise LogUnavailableError(
                    f"Kafka at {self._kafka.bootstrap} does not list the ACLs it accepted "
                    f"after {self._timeout:.0f}s"
                )
            time.sleep(0.05)

    def prune(self, grants: Iterable[Grant], users: Iterable[str], within: str) -> list[str]:
        """Delete the ACLs of ``users`` on resources named ``within...`` that ``grants``
        does not have (a right a table no longer gives); returns them, described.

        Only resources under ``within`` (a deployment's topic prefix) are touched, so
        the ACLs of another deployment on the same cluster stay -- unless its prefix
        starts with this one's.
        """
        wanted = {str(g.binding()) for g in grants}
        principals = {f"User:{u}" for u in users}
        stale = [
            b
            for b in self._bindings(None)
            if b.principal in principals and b.name.startswith(within) and str(b) not in wanted
        ]
        if not stale:
            return []
        filters = [
            AclBindingFilter(
                b.restype,
                b.name,
                b.resource_pattern_type,
                b.principal,
                b.host,
                b.operation,
                b.permission_type,
            )
            for b in stale
        ]
        futures = self._admin.delete_acls(filters, request_timeout=self._timeout)
        for fut in futures.values():
            try:
                fut.result()
            except KafkaException as exc:
                raise LogUnavailableError(
                    f"Kafka at {self._kafka.bootstrap} did not delete ACLs: {exc}"
                ) from exc
        gone = {str(b) for b in stale}
        deadline = time.monotonic() + self._timeout
        while gone & set(self._described(None)):  # as apply: until the broker has it
            if time.monotonic() > deadline:
                raise LogUnavailableError(
                    f"Kafka at {self._kafka.bootstrap} still lists deleted ACLs "
                    f"after {self._timeout:.0f}s"
                )
            time.sleep(0.05)
        return sorted(gone)

    def existing(self, user: str | None = None) -> list[str]:
        """Every ALLOW/DENY binding on the cluster (of ``User:<user>``), described."""
        return sorted(self._described(user))

    def _described(self, user: str | None) -> list[str]:
        return [str(b) for b in self._bindings(user)]

    def _bindings(self, user: str | None) -> list[AclBinding]:
        # None matches anything (the stubs say str; librdkafka takes NULL).
        anything: Any = None
        flt = AclBindingFilter(
            ResourceType.ANY,
            anything,
            ResourcePatternType.ANY,
            anything if user is None else f"User:{user}",
            anything,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        try:
            found = self._admin.describe_acls(flt, request_timeout=self._timeout).result()
        except KafkaException as exc:
            raise LogUnavailableError(
                f"Kafka at {self._kafka.bootstrap} did not list its ACLs: {exc}"
            ) from exc
        return list(found)
