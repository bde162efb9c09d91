"""One input contract: what an event may be, at every door and in every decoder.

An event that a door accepts must never fail later, when a worker derives a
record from it (a decision, a chain link, a dead letter) or re-encodes it.
So the limits here are chosen with headroom under Kafka's own record limit
(``KERNEL_MAX_RECORD_BYTES``): a chain link is the event's JSON plus about a
kilobyte, and a derived record nests the event two or three levels deeper.

* size: the event's JSON serialisation at most ``max_event_bytes``; derived
  records (:data:`DERIVED_TYPES`) at most ``max_record_bytes``;
* depth: containers nested at most ``max_depth`` deep, counting the event
  object itself as 1 (``body`` is 2, ``body.context`` 3); derived records get
  :data:`DERIVED_DEPTH` more;
* strings at most ``max_string_bytes`` of UTF-8, names (actor, subject,
  action, resource, requestId) at most ``max_name_bytes``; arrays and objects
  at most ``max_array_items`` / ``max_object_members``;
* I-JSON (:mod:`schemas.ijson`): no NUL, no lone surrogate, integers within
  +/-(2^53-1), finite floats; ids are canonical lowercase UUIDs;
* ``ts`` not before ``oldest_ts_ms`` (2000-01-01) and not more than
  ``future_skew_ms`` after the reference: *now* at a door, the record's Kafka
  timestamp inside a worker (so a replay decides exactly as the first run).

The walk over a value is one recursive pass; when it finds a violation it
unwinds with a private exception that collects the path on the way out, so
the common case builds no path strings. Decoders call :meth:`json_field` on
each ``kernel-json`` text: canonical text (what our writer emits) is checked
with a handful of C-level string scans and walked only when those cannot
prove it within the limits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from schemas.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from schemas.events import Event

__all__ = [
    "DERIVED_DEPTH",
    "DERIVED_TYPES",
    "NEWEST_TS_MS",
    "OLDEST_TS_MS",
    "RECORD_HEADROOM",
    "InputContract",
    "LimitError",
    "default_contract",
]

OLDEST_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
NEWEST_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last RFC 3339 can name
# Records Kernel derives from an event: they embed it, so they get more room.
DERIVED_TYPES = frozenset({"auditRecord", "chainCheckpoint", "deadLetter", "policyCheck"})
DERIVED_DEPTH = 8
RECORD_HEADROOM = 16 * 1024  # max_event_bytes + this must fit in max_record_bytes
# JSON of an Avro record is at most this many times its encoded size, plus the
# field names (a control character escapes to 6 bytes; see check_event).
_JSON_PER_AVRO_BYTE = 6
_JSON_NAMES_BYTES = 2048
_NAME_FIELDS = frozenset({"action", "resource", "requestId"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_MAX_SAFE_INTEGER = 2**53 - 1
# What could be a number past 2^53 in canonical text: a number token (after
# ':', ',' or '[') with an exponent, or with 16 digits before its point; only then
# is the walk needed (the same text inside a string costs a walk, nothing more).
# orjson writes such a float as "1e+16" or "9007199254740994.0": the substring
# test ahead of the regex skips it for almost every record.
_BIG_NUMBER = re.compile(r"[:,\[]-?[0-9]+(?:\.[0-9]+)?[eE]|[:,\[]-?[0-9]{16}")


def _maybe_big_number(text: str) -> bool:
    hint = "e+" in text or "e-" in text or ".0," in text or ".0]" in text or ".0}" in text
    return hint and _BIG_NUMBER.search(text) is not None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUL = "NUL (U+0000) is not accepted: Postgres text cannot store it; remove or escape it"


class LimitError(ValidationError):
    """A value is over one of the contract's limits (HTTP 422, not 400)."""


class _Limits(Protocol):
    """The Settings fields the contract is built from (ops.config; no import upward)."""

    @property
    def max_event_bytes(self) -> int: ...
    @property
    def max_record_bytes(self) -> int: ...
    @property
    def max_json_depth(self) -> int: ...
    @property
    def max_string_bytes(self) -> int: ...
    @property
    def max_array_items(self) -> int: ...
    @property
    def ts_future_skew_s(self) -> int: ...


class _ViolationError(Exception):
    """Raised deep in a walk; each level adds its key on the way out."""

    def __init__(self, reason: str, *, limit: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.limit = limit
        self.path: list[str | int] = []

    def error(self, prefix: str) -> ValidationError:
        path = prefix
        for part in reversed(self.path):
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path = f"{path}.{part}" if path else part
        kind = LimitError if self.limit else ValidationError
        return kind(self.reason, field=path or None)


@dataclass(frozen=True, slots=True)
class InputContract:
    max_event_bytes: int = 256 * 1024
    max_record_bytes: int = 1_000_000
    max_depth: int = 32
    max_string_bytes: int = 64 * 1024
    max_array_items: int = 10_000
    max_object_members: int = 10_000
    max_name_bytes: int = 512
    future_skew_ms: int = 3_600_000
    oldest_ts_ms: int = OLDEST_TS_MS

    def __post_init__(self) -> None:
        if self.max_event_bytes + RECORD_HEADROOM > self.max_record_bytes:
            raise ConfigError(
                f"KERNEL_MAX_EVENT_BYTES ({self.max_event_bytes}) leaves no room for the records "
                f"derived from an event: it must be at least {RECORD_HEADROOM} below "
                f"KERNEL_MAX_RECORD_BYTES ({self.max_record_bytes})"
            )
        for name in ("max_depth", "max_string_bytes", "max_array_items", "max_object_members"):
            if getattr(self, name) < 1:
                raise ConfigError(f"the input contract's {name} must be positive")
        if self.future_skew_ms < 0:
            raise ConfigError("KERNEL_TS_FUTURE_SKEW_S must not be negative")

    @classmethod
    def from_settings(cls, settings: _Limits) -> InputContract:
        return cls(
            max_event_bytes=settings.max_event_bytes,
            max_record_bytes=settings.max_record_bytes,
            max_depth=settings.max_json_depth,
            max_string_bytes=settings.max_string_bytes,
            max_array_items=settings.max_array_items,
            max_object_members=settings.max_array_items,
            future_skew_ms=settings.ts_future_skew_s * 1000,
        )

    # -- values -----------------------------------------------------------
    def check_value(self, value: Any, field: str = "", *, depth: int = 1) -> None:
        """Raise ValidationError naming the path of the first violation in ``value``.

        ``depth`` is the depth ``value`` itself sits at if it is a container.
        """
        try:
            self._walk(value, depth, self.max_depth)
        except _ViolationError as v:
            raise v.error(field) from None

    def json_field(self, text: str, field: str, *, depth: int, derived: bool = False) -> Any:
        """Parse one ``kernel-json`` text read from a record, under the contract.

        Our writer emits canonical JSON (sorted keys, no whitespace), so
        ``dumps_canonical(loads(text)) == text`` proves there was no duplicate
        key (orjson silently keeps the last); only other text takes the strict
        parse. Canonical text then passes on string scans alone when it is too
        short, too flat and too plain to break a limit.
        """
        max_depth = self.max_depth + (DERIVED_DEPTH if derived else 0)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc):  # orjson stops at 1024 levels
                raise LimitError(f"too deep: nested over {max_depth} levels", field=field) from None
            raise ValidationError(f"not I-JSON: {exc}", field=field) from None
        try:
            # STRICT_INTEGER: an integer beyond 2^53 fails the dump, so needs the walk.
            canonical = orjson.dumps(value, option=_CANONICAL) == text.encode()
        except orjson.JSONEncodeError:
            canonical = False
        if not canonical:
            return self._strict(text, value, field, depth, max_depth)
        n = len(text)
        if (
            (n <= self.max_string_bytes if text.isascii() else 4 * n <= self.max_string_bytes)
            and n < self._flat_chars
            and depth + text.count("{") + text.count("[") - 1 <= max_depth
            and "\\u0000" not in text
            and not _maybe_big_number(text)
        ):
            return value
        try:
            self._walk(value, depth, max_depth)
        except _ViolationError as v:
            raise v.error(field) from None
        return value

    @property
    def _flat_chars(self) -> int:
        # Each array item or object member takes two characters at least.
        return 2 * min(self.max_array_items, self.max_object_members)

    def _strict(self, text: str, value: Any, field: str, depth: int, max_depth: int) -> Any:
        from schemas.ijson import strict_loads  # noqa: PLC0415 - ijson imports this module

        try:
            self._walk(value, depth, max_depth)  # bounds the depth before the recursive parse
            strict = strict_loads(text)
            self._walk(strict, depth, max_depth)  # exact numbers: orjson reads 2^64 as a float
        except _ViolationError as v:
            raise v.error(field) from None
        except ValidationError as exc:
            # The strict parser knows the duplicate key, not the path to it.
            reason = f"{exc.reason} in this field" if exc.field else exc.reason
            raise ValidationError(reason, field=field) from None
        return strict

    def _walk(self, value: Any, depth: int, max_depth: int) -> None:
        t = type(value)
        if t is str:
            self._string(value, self.max_string_bytes)
        elif t is dict:
            if depth > max_depth:
                raise _ViolationError(f"too deep: nested over {max_depth} levels", limit=True)
            if len(value) > self.max_object_members:
                raise _ViolationError(
                    f"{len(value)} members, over the limit of {self.max_object_members}",
                    limit=True,
                )
            for key, item in value.items():
                if type(key) is not str:
                    raise _ViolationError("object keys must be strings")
                self._string(key, self.max_string_bytes)  # blamed on the object, not the key
                try:
                    self._walk(item, depth + 1, max_depth)
                except _ViolationError as v:
                    v.path.append(key)
                    raise
        elif t is list or t is tuple:
            if depth > max_depth:
                raise _ViolationError(f"too deep: nested over {max_depth} levels", limit=True)
            if len(value) > self.max_array_items:
                raise _ViolationError(
                    f"{len(value)} items, over the limit of {self.max_array_items}", limit=True
                )
            for i, item in enumerate(value):
                try:
                    self._walk(item, depth + 1, max_depth)
                except _ViolationError as v:
                    v.path.append(i)
                    raise
        elif t is int:
            if not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
                raise _ViolationError(
                    f"integer {value} is outside the I-JSON range +/-(2^53-1); send it as a string"
                )
        elif t is float:
            if not math.isfinite(value):
                raise _ViolationError(f"{value} is not an I-JSON number")
            if not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
                # Postgres jsonb keeps it as an exact integer, which has no RFC 8785
                # form: the stored row could no longer be verified.
                raise _ViolationError(
                    f"number {value!r} is outside the I-JSON range +/-(2^53-1); send it as a string"
                )
        elif value is None or t is bool or t is bytes:
            return  # bytes: an Avro bytes field, base64 in the JSON mapping
        elif isinstance(value, str | int | float | dict | list | tuple):
            self._walk(_plain(value), depth, max_depth)  # a subclass: check as its base type
        else:
            raise _ViolationError(f"{type(value).__name__} is not a JSON value")

    @staticmethod
    def _string(s: str, limit: int) -> None:
        if "\x00" in s:
            raise _ViolationError(_NUL)
        if s.isascii():
            if len(s) > limit:
                raise _ViolationError(
                    f"string of {len(s)} bytes, over the limit of {limit}", limit=True
                )
            return
        try:
            size = len(s.encode())
        except UnicodeEncodeError:
            raise _ViolationError("string holds a lone surrogate") from None
        if size > limit:
            raise _ViolationError(f"string of {size} bytes, over the limit of {limit}", limit=True)

    # -- events -----------------------------------------------------------
    def check_event(
        self,
        event: Event,
        *,
        log_ts_ms: int | None = None,
        now_ms: int | None = None,
        encoded_bytes: int | None = None,
        checked: frozenset[str] = frozenset(),
    ) -> None:
        """Raise ValidationError (``field`` set where one is to blame) unless ``event`` fits.

        ``log_ts_ms`` (the record's Kafka timestamp) or else ``now_ms`` is the
        reference of the future bound; with neither only the fixed bounds
        apply. ``encoded_bytes`` (the Avro record's size) spares the JSON
        serialisation when it alone proves the size; ``checked`` names body
        fields the caller has already put through :meth:`json_field`.
        """
        derived = event.event_type in DERIVED_TYPES
        if type(event.event_id) is not str or not _UUID.fullmatch(event.event_id):
            raise ValidationError(
                f"{event.event_id!r} is not a UUID in canonical lowercase form", field="eventId"
            )
        reference = log_ts_ms if log_ts_ms is not None else now_ms
        ts = event.ts_ms
        # Inline fast paths for the common case; the methods explain a failure.
        if (
            type(ts) is not int
            or not self.oldest_ts_ms <= ts <= NEWEST_TS_MS
            or (reference is not None and ts > reference + self.future_skew_ms)
        ):
            self.check_ts(ts, reference)
        limit = self.max_name_bytes
        actor, subject = event.actor, event.subject
        if not (
            type(actor) is str
            and type(subject) is str
            and actor.isascii()
            and subject.isascii()
            and len(actor) <= limit
            and len(subject) <= limit
            and "\x00" not in actor
            and "\x00" not in subject
        ):
            self._name(actor, "actor")
            self._name(subject, "subject")
        uuid_fields = _TYPES.get(event.event_type)
        if uuid_fields is None:
            self._name(event.event_type, "eventType")
            uuid_fields = _uuid_fields(event.event_type)
        if event.metadata:
            try:
                self._walk(event.metadata, 2, self.max_depth)
            except _ViolationError as v:
                raise v.error("metadata") from None
        self._body(event, checked, derived, uuid_fields)
        if event.event_type == "auditRecord":
            _link_payload(event.body.get("payload"))
        limit = self.max_record_bytes if derived else self.max_event_bytes
        if encoded_bytes is None or _JSON_PER_AVRO_BYTE * encoded_bytes + _JSON_NAMES_BYTES > limit:
            self._size(event, limit, derived)

    def _body(
        self, event: Event, checked: frozenset[str], derived: bool, uuid_fields: tuple[str, ...]
    ) -> None:
        max_depth = self.max_depth + (DERIVED_DEPTH if derived else 0)
        body = event.body
        if type(body) is not dict:
            raise ValidationError("must be an object", field="body")
        plain = self.max_string_bytes
        names = self.max_name_bytes
        for name, value in body.items():
            t = type(value)
            if t is str:  # the common case first, decided without a call
                if (
                    value.isascii()
                    and len(value) <= (names if name in _NAME_FIELDS else plain)
                    and "\x00" not in value
                ):
                    continue
                if name in _NAME_FIELDS:
                    self._name(value, f"body.{name}")
                    continue
            elif t is int:
                if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
                    continue
            elif value is None or t is bool or t is bytes or name in checked:
                continue
            try:
                self._walk(value, 3, max_depth)
            except _ViolationError as v:
                raise v.error(f"body.{name}") from None
        for name in uuid_fields:
            value = body.get(name)
            if value is not None and (type(value) is not str or not _UUID.fullmatch(value)):
                raise ValidationError(
                    f"{value!r} is not a UUID in canonical lowercase form", field=f"body.{name}"
                )

    def _name(self, value: Any, field: str) -> None:
        if type(value) is not str:
            raise ValidationError("must be a string", field=field)
        if value.isascii() and len(value) <= self.max_name_bytes and "\x00" not in value:
            return
        try:
            self._string(value, self.max_name_bytes)
        except _ViolationError as v:
            raise v.error(field) from None

    def _size(self, event: Event, limit: int, derived: bool) -> None:
        try:
            size = len(orjson.dumps(event.to_json()))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValidationError(f"not representable as JSON: {exc}") from None
        if size > limit:
            variable = "KERNEL_MAX_RECORD_BYTES" if derived else "KERNEL_MAX_EVENT_BYTES"
            raise LimitError(
                f"the event is {size} bytes as JSON, over the limit of {limit} ({variable})"
            )

    def check_ts(self, ts_ms: int, reference_ms: int | None = None) -> None:
        """``ts_ms`` within [oldest, reference + skew] (and RFC 3339's year 9999)."""
        if type(ts_ms) is not int:
            raise ValidationError("must be an integer of milliseconds", field="ts")
        if ts_ms < self.oldest_ts_ms:
            raise ValidationError(
                f"{_show_ts(ts_ms)} is before the oldest accepted time, "
                f"{_show_ts(self.oldest_ts_ms)}",
                field="ts",
            )
        if ts_ms > NEWEST_TS_MS:
            raise ValidationError(f"{_show_ts(ts_ms)} is after the year 9999", field="ts")
        if reference_ms is not None and ts_ms > reference_ms + self.future_skew_ms:
            raise ValidationError(
                f"{_show_ts(ts_ms)} is more than {self.future_skew_ms // 1000} s after "
                f"{_show_ts(reference_ms)} (KERNEL_TS_FUTURE_SKEW_S)",
                field="ts",
            )


_PAYLOAD_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _link_payload(payload: Any) -> None:
    """A chain link's payload has what its ``audit_events`` row is made of.

    The projector copies ``eventId`` (a uuid column), ``eventType``, ``ts`` (a
    timestamptz) and ``metadata`` out of the payload; a link whose payload
    cannot give them (a record forged onto the chain topic) is refused here, so
    the projector dead-letters it and replay skips it by the same rule.
    """
    if type(payload) is not dict:
        raise ValidationError("must be the audited event as a JSON object", field="body.payload")
    event_id = payload.get("eventId")
    if type(event_id) is not str or not _UUID.fullmatch(event_id):
        raise ValidationError(
            f"{event_id!r} is not a UUID in canonical lowercase form",
            field="body.payload.eventId",
        )
    if type(payload.get("eventType")) is not str or not payload["eventType"]:
        raise ValidationError("must be a non-empty string", field="body.payload.eventType")
    ts = payload.get("ts")
    if type(ts) is not str or not _PAYLOAD_TS.fullmatch(ts):
        raise ValidationError(
            "must be an RFC 3339 UTC timestamp with milliseconds", field="body.payload.ts"
        )
    metadata = payload.get("metadata", {})
    if type(metadata) is not dict or not all(type(v) is str for v in metadata.values()):
        raise ValidationError("must be an object of strings", field="body.payload.metadata")


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return dict(value)
    return list(value)


def _show_ts(ms: int) -> str:
    try:
        return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:23] + "Z"
    except OverflowError:
        return f"{ms} ms since 1970"


_TYPES: dict[str, tuple[str, ...]] = {}  # known event type -> its body's uuid fields


def _uuid_fields(event_type: str) -> tuple[str, ...]:
    from schemas.catalog import catalog  # noqa: PLC0415 - once per event type

    cat = catalog()
    if event_type not in cat.event_types:
        return ()
    fields = cat.newest(event_type).raw["fields"][-1]["type"]["fields"]
    found = tuple(
        f["name"]
        for f in fields
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "uuid"
    )
    _TYPES[event_type] = found
    return found


_DEFAULT = InputContract()


def default_contract() -> InputContract:
    """The contract with every limit at its documented default."""
    return _DEFAULT
