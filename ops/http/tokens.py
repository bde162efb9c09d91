"""Bearer tokens, stored only as hashes (``kernel tokens create|revoke|list``).

A token is ``kt_<id>_<secret>``: ``id`` (8 hex) names its record, ``secret``
(32 random bytes, URL-safe base64) is what proves it. The token file keeps,
per token, its name, roles, expiry, whether it is revoked and the SHA-256 of
the whole token -- never the token: a stolen file lets nobody in. A 256-bit
random secret needs no slow hash (nothing to brute-force); the comparison is
constant-time. The API rereads the file when it changes, so a revocation
takes effect within a second, without a restart.

The file (``KERNEL_TOKENS_FILE``, default ``<state dir>/tokens.json``) is
written atomically with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from schemas.errors import ConfigError

__all__ = ["ROLES", "TokenRecord", "TokenStore"]

ROLES = (
    "producer",
    "checker",
    "auditor",
    "policy-author",
    "approver",
    "operator",
    "security-admin",
)
"""Every role a principal can hold; :mod:`ops.http.access` says what each may do."""

_PREFIX = "kt_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    roles: tuple[str, ...]
    sha256: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def valid(self, now: float) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass
class TokenStore:
    path: Path
    _records: dict[str, TokenRecord] = field(default_factory=dict)
    _stamp: tuple[int, int] | None = None
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the API's side --------------------------------------------------------
    def verify(self, token: str, now: float | None = None) -> TokenRecord | None:
        """The token's record if it is one of ours, unexpired and not revoked."""
        if not token.startswith(_PREFIX) or len(token) > 200:
            return None
        token_id = token[len(_PREFIX) : len(_PREFIX) + 8]
        record = self._current().get(token_id)
        if record is None or not hmac.compare_digest(record.sha256, _digest(token)):
            return None
        return record if record.valid(time.time() if now is None else now) else None

    def _current(self) -> dict[str, TokenRecord]:
        now = time.monotonic()
        if now - self._checked < 1.0:
            return self._records
        with self._lock:
            self._checked = now
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._records, self._stamp = {}, None
                return self._records
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._records, self._stamp = self._read(), stamp
        return self._records

    # -- the CLI's side --------------------------------------------------------
    def create(
        self, name: str, roles: Iterable[str], *, ttl_s: float | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token (returned once, never stored) and its record."""
        wanted = tuple(dict.fromkeys(roles))
        unknown = [r for r in wanted if r not in ROLES]
        if unknown or not wanted:
            raise ConfigError(
                f"unknown role(s) {', '.join(unknown) or '(none given)'}; roles: {', '.join(ROLES)}"
            )
        records = self._read()
        if any(r.name == name and r.revoked_at is None for r in records.values()):
            raise ConfigError(f"a token named {name!r} exists; revoke it first")
        token_id = secrets.token_hex(4)
        while token_id in records:
            token_id = secrets.token_hex(4)
        token = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        record = TokenRecord(
            token_id, name, wanted, _digest(token), now, None if ttl_s is None else now + ttl_s
        )
        records[token_id] = record
        self._write(records)
        return token, record

    def revoke(self, name_or_id: str) -> TokenRecord:
        records = self._read()
        live = [
            r for r in records.values() if r.revoked_at is None and name_or_id in (r.name, r.id)
        ]
        if not live:
            raise ConfigError(f"no live token named or with id {name_or_id!r}")
        now = time.time()
        for r in live:
            records[r.id] = replace(r, revoked_at=now)
        self._write(records)
        return records[live[0].id]

    def records(self) -> list[TokenRecord]:
        return sorted(self._read().values(), key=lambda r: r.created_at)

    # -- the file --------------------------------------------------------------
    def _read(self) -> dict[str, TokenRecord]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the token file {self.path}: {exc}") from exc
        try:
            return {
                r["id"]: TokenRecord(**{**r, "roles": tuple(r["roles"])}) for r in raw["tokens"]
            }
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"the token file {self.path} is malformed: {exc}") from exc

    def _write(self, records: dict[str, TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"tokens": [asdict(r) for r in sorted(records.values(), key=lambda r: r.id)]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(doc, out, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
