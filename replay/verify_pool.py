"""Decode and check chain links in a pool of processes: the CPU-bound half of replay.

Replay is bound by Ed25519 (60-100 us a signature with PyNaCl) plus the Avro
decode and JCS of each link, all of which depend on nothing but the link and
the signers' keys. :class:`LinkChecker` does that work for a batch of raw
chain-topic records: decode, checks 3-5 of :mod:`replay.verify`
(:func:`~replay.verify.link_failure`: hash format, JCS + SHA-256, signature,
query copies) and the row's COPY line, in the text format and with exactly
the values :meth:`projections.audit.AuditProjection.write` copies. It returns
one entry per record, in order: a :data:`~replay.verify.CheckedLink`, or the
record's offset when it is anything else (undecodable here, another event
type, a payload that is not an object): the caller handles those the
in-process way, so odd records behave exactly as they always have.

What a link cannot tell about itself -- seq continuity, linkage to the
previous hash, checkpoint pins -- stays with the caller, in log order
(:meth:`~replay.verify.ChainVerifier.feed_checked`).

:class:`VerifyPool` runs batches on ``workers`` processes (``forkserver``:
the replaying process has Kafka and Postgres threads and sockets that a
plain ``fork`` would copy mid-flight), or in the calling process when
``workers <= 1`` -- the same :class:`LinkChecker` either way, so both paths
give the same results by construction (and ``tests/unit/test_replay_pool.py``
checks it). Workers decode with the schema catalog only: a Confluent-framed
record (schema registry) comes back as an offset and is decoded by the caller.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any

from projections.audit import EVENT_COLUMNS, event_row
from replay.link_decode import LinkDecoder
from replay.verify import AuditRow, CheckedLink, link_failure
from schemas.catalog import SchemaCatalog
from schemas.codec import EventCodec
from schemas.errors import KernelError
from schemas.events import parse_ts
from streams.chain.signing import Verifier

__all__ = ["COPY_COLUMNS", "CheckedBatch", "LinkChecker", "VerifyPool", "audit_row", "copy_line"]

# The columns of the COPY lines: AuditProjection.write's.
COPY_COLUMNS = EVENT_COLUMNS

# Per record, in order: a checked link, or the offset of a record for the caller.
# With the COPY text of the links (one line each, in order).
CheckedBatch = tuple[list[CheckedLink | int], bytes]

# seq, source_partition and source_offset are integers, every other column text
_COLUMN_TYPES = (str, str, int, *[str] * 9, int, int)
_NEEDS_ESCAPE = re.compile("[\b\n\v\f\r\\\\]")  # and tabs inside a field
_ESCAPES = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\\": "\\\\",
}
_ESCAPE = re.compile("[\b\t\n\v\f\r\\\\]")


def _escape(field: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group()], field)


def audit_row(body: Mapping[str, Any]) -> AuditRow:
    """The verifier's view of an auditRecord body (raises on a malformed one)."""
    p = body["payload"]
    return AuditRow(
        str(p.get("eventId")),
        body["chain"],
        body["seq"],
        str(p.get("eventType")),
        p,
        body["prevHash"],
        body["hash"],
        body["signature"],
        body["signerId"],
        parse_ts(p["ts"]) if isinstance(p.get("ts"), str) else -1,
        p.get("metadata", {}),
    )


def copy_line(body: Mapping[str, Any]) -> str | None:
    """The COPY text line AuditProjection.write would send; None if not plain str/int."""
    row = event_row(body)
    if tuple(map(type, row)) != _COLUMN_TYPES:
        return None
    fields = [v if type(v) is str else str(v) for v in row]
    line = "\t".join(fields)
    if "\x00" in line:
        return None  # Postgres text cannot hold it: let the projector's own path say so
    if line.count("\t") != len(fields) - 1 or _NEEDS_ESCAPE.search(line):
        line = "\t".join(map(_escape, fields))
    return line + "\n"


class LinkChecker:
    """Everything replay does to one chain link that needs no other link."""

    def __init__(self, schemas: SchemaCatalog, verifiers: Mapping[str, Verifier]) -> None:
        self._codec = EventCodec(schemas)
        self._links = LinkDecoder(schemas)
        self._verifiers = dict(verifiers)

    def check(self, offsets: list[int], values: list[bytes]) -> CheckedBatch:
        out: list[CheckedLink | int] = []
        lines: list[str] = []
        for offset, data in zip(offsets, values, strict=True):
            body = self._links.decode(data) or self._body(data)
            if body is None:
                out.append(offset)
                continue
            try:
                row = audit_row(body)
                line = copy_line(body)
            except (KernelError, KeyError, TypeError, AttributeError, ValueError):
                line = None
            if line is None:
                out.append(offset)
                continue
            reason = link_failure(row, self._verifiers)
            out.append((row.chain, row.seq, row.id, row.prev_hash, row.hash, reason, row.signer_id))
            lines.append(line)
        return out, "".join(lines).encode()

    def _body(self, data: bytes) -> dict[str, Any] | None:
        try:
            event = self._codec.decode(data)
        except KernelError:
            return None
        return event.body if event.event_type == "auditRecord" else None


_worker: LinkChecker | None = None


def _start_worker(schemas: SchemaCatalog, keys: dict[str, bytes]) -> None:
    global _worker  # noqa: PLW0603 -- one checker per worker process, built once
    _worker = LinkChecker(schemas, {k: Verifier(v) for k, v in keys.items()})


def _check_in_worker(offsets: list[int], values: list[bytes]) -> CheckedBatch:
    assert _worker is not None, "worker not initialised"
    return _worker.check(offsets, values)


class VerifyPool:
    """Checks batches on ``workers`` processes, or inline when ``workers <= 1``."""

    def __init__(
        self, schemas: SchemaCatalog, verifiers: Mapping[str, Verifier], workers: int
    ) -> None:
        self.workers = max(workers, 1)
        self._inline: LinkChecker | None = None
        self._executor: Executor | None = None
        if self.workers == 1:
            self._inline = LinkChecker(schemas, verifiers)
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(schemas, {k: v.public_key for k, v in verifiers.items()}),
            )
            for _ in range(self.workers):  # start them all now, not at the first batches
                self._executor.submit(_check_in_worker, [], [])

    def submit(self, offsets: list[int], values: list[bytes]) -> Future[CheckedBatch]:
        if self._executor is not None:
            return self._executor.submit(_check_in_worker, offsets, values)
        assert self._inline is not None
        done: Future[CheckedBatch] = Future()
        done.set_result(self._inline.check(offsets, values))
        return done

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
