"""Who may call which route: identities, roles, and deny by default.

A request's identity is, in this order:

- a client certificate the TLS layer verified against ``KERNEL_API_CLIENT_CA``
  (mutual TLS): ``cert:<name>``, the name being the certificate's first URI
  SAN (e.g. a SPIFFE id), else its first DNS SAN, else its subject CN; its
  roles come from ``KERNEL_ROLES_FILE`` (``{"identities": {"cert:...": [roles]}}``);
- else a bearer token (``Authorization: Bearer kt_...``, :mod:`ops.http.tokens`):
  ``token:<name>``, with the roles stored with the token.

Every credential a request presents must hold: a bearer token that is unknown,
expired or revoked is a 401 even beside a good client certificate.

:data:`RULES` names the roles that may call each route; a route no rule
names is refused to everyone, and only ``/health`` is open. No identity is a
401 with ``WWW-Authenticate``; an identity without the role is a 403 naming the
roles that would do; both are access events on the log (:mod:`ops.http.access_log`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from ops.http.tokens import ROLES, TokenStore
from schemas.errors import ConfigError

__all__ = ["OPEN", "RULES", "Gate", "Principal", "Refusal", "RoleMap", "required_roles"]

OPEN: frozenset[str] = frozenset()
"""No identity needed."""
ANY: frozenset[str] = frozenset(ROLES)
"""Any authenticated principal (the API's own documentation)."""

RULES: tuple[tuple[str, str, frozenset[str]], ...] = (
    # (method, path or prefix ending in "/", roles that may)
    ("GET", "/health", OPEN),
    ("POST", "/sentinel/check", frozenset({"checker"})),
    ("POST", "/events", frozenset({"producer"})),
    ("GET", "/sentinel/explain/", frozenset({"checker", "auditor"})),
    ("GET", "/policies", frozenset({"policy-author", "approver", "auditor", "operator"})),
    ("GET", "/policies/", frozenset({"policy-author", "approver", "auditor", "operator"})),
    ("GET", "/audit/", frozenset({"auditor"})),
    # k-of-n approvals (issue 12.3): the signature counts; the caller is recorded as submitter
    ("GET", "/approvals/", frozenset({"approver"})),
    ("POST", "/approvals/", frozenset({"approver"})),
    ("GET", "/sentinel/simulations", frozenset({"policy-author", "auditor"})),
    ("GET", "/sentinel/simulations/", frozenset({"policy-author", "auditor"})),
    ("GET", "/metrics", frozenset({"operator"})),
    ("GET", "/ready", frozenset({"operator"})),
    ("GET", "/openapi.json", ANY),
    ("GET", "/docs", ANY),
    ("GET", "/docs/", ANY),
    ("GET", "/redoc", ANY),
)


Rules = Sequence[tuple[str, str, frozenset[str]]]


def required_roles(method: str, path: str, rules: Rules = RULES) -> frozenset[str] | None:
    """The roles that may call ``method path`` (empty: open); None: no rule, refused."""
    method = "GET" if method == "HEAD" else method
    other: frozenset[str] | None = None
    for rule_method, rule_path, roles in rules:
        if path == rule_path or (rule_path.endswith("/") and path.startswith(rule_path)):
            if rule_method == method:
                return roles
            # a route of another method: who may call it is told it is the wrong method
            other = (other or frozenset()) | roles
    return other


@dataclass(frozen=True)
class Principal:
    name: str  # "cert:<id>" or "token:<name>"
    roles: frozenset[str]
    method: str  # "mtls" | "token"


@dataclass(frozen=True)
class Refusal:
    status: int  # 401 | 403
    reason: str
    principal: Principal | None = None


class RoleMap:
    """Roles of certificate identities, from ``KERNEL_ROLES_FILE``."""

    def __init__(self, identities: Mapping[str, frozenset[str]] | None = None) -> None:
        self.identities = dict(identities or {})

    @classmethod
    def load(cls, path: Path | None) -> RoleMap:
        if path is None:
            return cls()
        try:
            raw = json.loads(path.read_text())
            table = raw["identities"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"cannot read the roles file {path}: {exc}; expected "
                '{"identities": {"cert:<name>": ["role", ...]}}'
            ) from exc
        out: dict[str, frozenset[str]] = {}
        for name, roles in table.items():
            unknown = [r for r in roles if r not in ROLES]
            if unknown:
                raise ConfigError(
                    f"roles file {path}: {name} has unknown role(s) {', '.join(unknown)}; "
                    f"roles: {', '.join(ROLES)}"
                )
            out[str(name)] = frozenset(roles)
        return cls(out)

    def roles_of(self, name: str) -> frozenset[str]:
        return self.identities.get(name, frozenset())


@lru_cache(maxsize=1024)
def certificate_name(pem: str) -> str | None:
    """``cert:<first URI SAN | first DNS SAN | subject CN>`` of a PEM certificate."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for kind in (x509.UniformResourceIdentifier, x509.DNSName):
            found = san.get_values_for_type(kind)
            if found:
                return f"cert:{found[0]}"
    except x509.ExtensionNotFound:
        pass
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"cert:{cns[0].value!s}" if cns else None


class Gate:
    """Authenticate a request's ASGI scope and authorise it against :data:`RULES`."""

    def __init__(
        self, tokens: TokenStore | None, roles: RoleMap | None = None, rules: Rules = RULES
    ) -> None:
        self.tokens = tokens
        self.roles = roles or RoleMap()
        self.rules = rules

    def principal(self, scope: Mapping[str, Any]) -> Principal | Refusal | None:
        """The caller; a :class:`Refusal` for credentials that do not hold; None: none given.

        Every credential presented must hold: a bad ``Authorization`` header is a 401
        even on a connection with a good client certificate (which is then the identity).
        """
        tls = (scope.get("extensions") or {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or ()
        bearer = self._bearer(scope)
        if isinstance(bearer, Refusal):
            return bearer
        if chain:
            name = certificate_name(chain[0])
            if name is None:
                return Refusal(401, "the client certificate names no identity (no SAN, no CN)")
            return Principal(name, self.roles.roles_of(name), "mtls")
        return bearer

    def _bearer(self, scope: Mapping[str, Any]) -> Principal | Refusal | None:
        for key, value in scope.get("headers") or ():
            if key == b"authorization":
                scheme, _, credential = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not credential.strip():
                    return Refusal(401, "the Authorization header is not 'Bearer <token>'")
                record = None if self.tokens is None else self.tokens.verify(credential.strip())
                if record is None:
                    return Refusal(401, "the bearer token is unknown, expired or revoked")
                return Principal(f"token:{record.name}", frozenset(record.roles), "token")
        return None

    def admit(self, scope: Mapping[str, Any]) -> Principal | Refusal | None:
        """The principal allowed to make this request; None for an open route called
        anonymously; a :class:`Refusal` otherwise."""
        roles = required_roles(scope["method"], scope["path"], self.rules)
        found = self.principal(scope)
        if roles == OPEN:
            return found if isinstance(found, Principal) else None
        if isinstance(found, Refusal):
            return found
        if found is None:
            return Refusal(401, "authentication required: a client certificate or a bearer token")
        if roles is None:
            return Refusal(403, f"no role may {scope['method']} {scope['path']}", found)
        if not roles & found.roles:
            needed = ", ".join(sorted(roles))
            return Refusal(
                403, f"{found.name} lacks a role for this route (one of: {needed})", found
            )
        return found
