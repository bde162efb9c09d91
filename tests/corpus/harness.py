"""Run the corpus against the real workers and judge the end state.

Each class is one *phase*: a valid action through the SDK, the class's
injections, then valid actions on every actions partition (raw) and through
the SDK (and a valid sync check for HTTP classes). The harness polls the
dead-letter topic and the projections until every record of the phase is
accounted for -- or a worker process exits, or the deadline passes. A worker
death is attributed to the phase's class; a deployment that lost a worker or
stalled is *poisoned* (the bad record is still on its topic), so it is
finished (end checks, ``audit-verify``, ``replay audit --verify-only``) and
the next class gets a fresh deployment. A correct Kernel runs the whole corpus
in one deployment.

Judgement, per record (see :class:`tests.corpus.cases.Expect`): dead-lettered
(a dead letter naming its topic/partition/offset, with a reason, and no chain
link), refused at the door (4xx; a ``ValidationError`` from the SDK; ``kernel
publish`` exiting non-zero with a message naming the line and no traceback),
processed (one ``audit_events`` row for its position and, for an action, one
``policy_checks`` row deciding it), or not: *unhandled* (a 5xx, a traceback,
a record neither dead-lettered nor processed, one accepted then
dead-lettered), *lost* (valid, never processed) or *duplicated*.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ops.config import Settings
from schemas.errors import KernelError, LogUnavailableError, StoreUnavailableError
from schemas.positions import LogPosition
from tests import identity
from tests.corpus.cases import Case, Expect, Http, Publish, Raw, Sdk, check_body, valid_actions
from tests.corpus.deployment import Death, Deployment
from tests.corpus.observe import DeadLetters, Position, Projections, Snapshot
from tests.corpus.raw import chain_of, encode_valid
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate

__all__ = ["ClassResult", "CorpusRun", "DeploymentResult"]

_LINE = re.compile(r"^line (\d+): (\w+) (\S+) -> (.+)/(\d+)@(\d+)$", re.M)


@dataclass
class ClassResult:
    cls: str
    tried: int = 0
    dead_lettered: int = 0
    refused: int = 0
    processed: int = 0
    crashes: int = 0
    unhandled: int = 0
    lost: int = 0
    duplicated: int = 0
    valid_tried: int = 0  # the valid records interleaved around this class
    valid_ok: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.unhandled or self.lost or self.duplicated)


@dataclass
class DeploymentResult:
    classes: list[str]
    poisoned_by: str | None
    deaths: list[Death]
    audit_verify: tuple[int, str]
    replay_verify: tuple[int, str]
    undecodable_dead_letters: list[str]

    @property
    def ok(self) -> bool:
        return (
            not self.deaths
            and self.audit_verify[0] == 0
            and self.replay_verify[0] == 0
            and not self.undecodable_dead_letters
        )


# -- what an injection left to judge ------------------------------------------------
@dataclass
class _Item:
    cls: str
    expect: Expect
    kind: str  # raw | accepted | check | dup | refused | unhandled
    positions: tuple[Position, ...] = ()
    is_action: bool = False
    check_id: str = ""
    note: str = ""
    forged_chain: str | None = None  # a hand-made link/checkpoint: projected if its chain shows
    canary: bool = False  # valid input interleaved around the class


def _pos(p: LogPosition) -> Position:
    return (p.topic, p.partition, p.offset)


def _judge(item: _Item, snap: Snapshot, dlq: DeadLetters) -> tuple[str, str] | None:
    """(verdict, note) or None while still pending."""
    if item.kind == "refused":
        if item.expect is Expect.VALID:
            return "unhandled", f"valid input refused: {item.note}"
        return "refused", ""
    if item.kind == "unhandled":
        return "unhandled", item.note
    if item.kind == "check":
        row = snap.checks_by_id.get(item.check_id)
        if row is None:
            return None
        event_id, rows = row
        chained = snap.audit_by_id[event_id]
        if rows > 1 or chained > 1:
            return "duplicated", f"check {item.check_id}: {rows} rows, chained {chained}x"
        return ("processed", "") if chained == 1 else None
    if item.kind == "dup":
        chained = [snap.audit_by_source[p] for p in item.positions]
        decided = sum(snap.checks_by_action[p] for p in item.positions)
        if sum(chained) > 1 or decided > 1:
            return "duplicated", f"same eventId chained {sum(chained)}x, decided {decided}x"
        rest = [p for p, n in zip(item.positions, chained, strict=True) if n == 0]
        if sum(chained) == 1 and decided == 1 and all(dlq.by_source.get(p) for p in rest):
            return "dup-ok", ""
        return None
    (pos,) = item.positions
    letters = dlq.by_source.get(pos, [])
    chained = snap.audit_by_source[pos]
    if item.forged_chain is not None:
        chained += snap.chains[item.forged_chain]
    decided = snap.checks_by_action[pos]
    if letters and not all(d.reason.strip() for d in letters):
        return "unhandled", "dead letter without a reason"
    if item.kind == "accepted" and letters:
        return "unhandled", f"accepted at the door, then dead-lettered: {letters[0].reason[:120]}"
    if letters:
        if chained:
            return "unhandled", f"dead-lettered ({letters[0].processor}) and also chained"
        if item.expect is Expect.VALID:
            return "unhandled", f"valid record dead-lettered: {letters[0].reason[:120]}"
        return "dead_lettered", ""
    if chained > 1 or decided > 1:
        return "duplicated", f"chained {chained}x, decided {decided}x"
    if item.expect is Expect.BAD:
        return ("unhandled", "chained, not dead-lettered") if chained else None
    if chained == 1 and (decided == 1 or not item.is_action):
        return "processed", ""
    return None


def _final(item: _Item) -> tuple[str, str]:
    """The verdict of an item still pending when its deployment ended."""
    if item.expect is Expect.BAD:
        return "unhandled", "neither dead-lettered nor refused (nor did anything else happen)"
    if item.kind == "raw" and item.expect is Expect.EITHER:
        return "unhandled", "neither dead-lettered nor processed"
    return "lost", f"{item.kind} {item.positions or item.check_id} never fully processed"


# -- the run ----------------------------------------------------------------------------
class CorpusRun:
    def __init__(
        self,
        base: Settings,
        work_dir: Path,
        *,
        settle_s: float = 45.0,
        first_settle_s: float | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.base = base
        self.work_dir = work_dir
        self.settle_s = settle_s
        self.first_settle_s = settle_s + 30 if first_settle_s is None else first_settle_s
        self.log = log
        self.results: dict[str, ClassResult] = {}
        self.deployments: list[DeploymentResult] = []
        self._n = 0

    def run(self, cases: Iterable[Case]) -> None:
        phases: dict[str, list[Case]] = {}
        for case in cases:
            phases.setdefault(case.cls, []).append(case)
        dep: _Live | None = None
        try:
            for cls, group in phases.items():
                if dep is None:
                    dep = self._deploy()
                poisoned = dep.phase(
                    cls, group, self.first_settle_s if dep.fresh else self.settle_s
                )
                dep.fresh = False
                if poisoned:
                    self._finish(dep, poisoned_by=cls)
                    dep = None
        finally:
            if dep is not None:
                self._finish(dep, poisoned_by=None)

    def _deploy(self) -> _Live:
        self._n += 1
        dep = Deployment(self.base, self.work_dir / f"deployment-{self._n}")
        try:
            dep.kernel.producer().publish_batch(activate(DENY_BIG))
            dep.start()
        except BaseException:
            dep.close()
            raise
        return _Live(dep, self)

    def _finish(self, live: _Live, poisoned_by: str | None) -> None:
        dep = live.dep
        try:
            live.evaluate(final=True)
            self.log(f"[corpus] end checks of {dep.work_dir.name} ({', '.join(live.classes)})")
            rc_v, out_v, err_v = dep.cli("audit-verify", "--signers", str(dep.signers))
            rc_r, out_r, err_r = dep.cli(
                "replay", "audit", "--verify-only", "--signers", str(dep.signers), "--workers", "0"
            )
            self.deployments.append(
                DeploymentResult(
                    classes=list(live.classes),
                    poisoned_by=poisoned_by,
                    deaths=live.deaths,
                    audit_verify=(rc_v, (out_v + err_v)[-3000:]),
                    replay_verify=(rc_r, (out_r + err_r)[-3000:]),
                    undecodable_dead_letters=list(live.dlq.undecodable),
                )
            )
        finally:
            live.dlq.close()
            live.producer.close()
            dep.close()

    def result(self, cls: str) -> ClassResult:
        return self.results.setdefault(cls, ClassResult(cls))


class _Live:
    """A deployment being fed, and every item injected into it."""

    def __init__(self, dep: Deployment, run: CorpusRun) -> None:
        self.dep = dep
        self.run = run
        self.fresh = True
        self.items: list[_Item] = []
        self.classes: list[str] = []
        self.deaths: list[Death] = []
        self.dlq = DeadLetters(dep.settings.kafka_bootstrap, dep.kernel.names.dlq)
        self.projections = Projections(dep.settings.database_url)
        self.producer = dep.kernel.producer()
        self._canary = 0

    # -- one phase ------------------------------------------------------------------
    def phase(self, cls: str, cases: list[Case], settle_s: float) -> bool:
        """Inject one class between valid input; True when the deployment is poisoned."""
        self.classes.append(cls)
        start = len(self.items)
        self._canaries(cls, http=False)
        for case in cases:
            self.run.result(cls).tried += case.tried
            self._inject(case)
        self._canaries(cls, http=any(isinstance(c.injection, Http) for c in cases))
        mine = self.items[start:]
        deadline = time.monotonic() + settle_s
        t0 = time.monotonic()
        while True:
            dead = self.dep.deaths()
            if dead:
                self.deaths = dead
                self.run.result(cls).crashes += len(dead)
                for d in dead:
                    self.run.result(cls).notes.append(
                        f"{d.worker} exited rc={d.returncode}: {_last_line(d.log_tail)}"
                    )
                self.run.log(f"[corpus] {cls}: worker(s) died: {[d.worker for d in dead]}")
                return True
            pending = self._pending(mine)
            if not pending:
                self.run.log(f"[corpus] {cls}: settled in {time.monotonic() - t0:.1f}s")
                return False
            if time.monotonic() > deadline:
                self.run.result(cls).notes.append(
                    f"stalled: {len(pending)} record(s) not accounted for after {settle_s:.0f}s"
                )
                self.run.log(f"[corpus] {cls}: stalled ({len(pending)} pending)")
                return True
            time.sleep(0.3)

    def _pending(self, items: list[_Item]) -> list[_Item]:
        self.dlq.poll()
        snap = self.projections.snapshot()
        return [i for i in items if _judge(i, snap, self.dlq) is None]

    def evaluate(self, *, final: bool) -> None:
        self.dlq.poll()
        snap = self.projections.snapshot()
        for item in self.items:
            verdict = _judge(item, snap, self.dlq) or (_final(item) if final else None)
            if verdict is None:
                continue
            kind, note = verdict
            r = self.run.result(item.cls)
            if item.canary:
                # A valid record is processed, lost or duplicated; nothing else.
                kind = {"processed": "valid_ok", "unhandled": "lost"}.get(kind, kind)
            if kind == "dup-ok":
                r.processed += 1
                r.dead_lettered += 1
                continue
            setattr(r, kind, getattr(r, kind) + 1)
            if note and len(r.notes) < 6:
                r.notes.append(note)

    # -- injections --------------------------------------------------------------------
    def _add(self, cls: str, expect: Expect, kind: str, **kw: object) -> None:
        self.items.append(_Item(cls, expect, kind, **kw))  # type: ignore[arg-type]

    def _canaries(self, cls: str, *, http: bool) -> None:
        """Valid input around a class: on every actions partition, via the SDK and raw,
        and a sync check for HTTP classes; judged in the class's row (valid ok/lost/dup)."""
        self._canary += 1
        r = self.run.result(cls)
        (event,) = valid_actions(1, f"sdk{self._canary}")
        r.valid_tried += 1
        pos = self.producer.publish(event)
        self._add(
            cls, Expect.VALID, "accepted", positions=(_pos(pos),), is_action=True, canary=True
        )
        for partition, event in enumerate(valid_actions(3, f"raw{self._canary}")):
            r.valid_tried += 1
            (p,) = self.dep.produce_raw("actions", (encode_valid(event),), b"k", partition)
            self._add(
                cls, Expect.VALID, "accepted", positions=(_pos(p),), is_action=True, canary=True
            )
        if http:
            r.valid_tried += 1
            status, body = self._http(Http("POST", "/sentinel/check", check_body(self._canary)))
            if status == 200:
                check_id = orjson.loads(body)["policyCheckId"]
                self._add(cls, Expect.VALID, "check", check_id=check_id, canary=True)
            else:
                self._add(
                    cls,
                    Expect.VALID,
                    "unhandled",
                    canary=True,
                    note=f"valid check answered {status}: {body[:200]!r}",
                )

    def _inject(self, case: Case) -> None:
        inj = case.injection
        if isinstance(inj, Raw):
            positions = self.dep.produce_raw(inj.topic, inj.values, inj.key, inj.partition)
            is_action = inj.topic == "actions"
            if case.expect is Expect.DUPLICATE:
                self._add(
                    case.cls,
                    case.expect,
                    "dup",
                    positions=tuple(map(_pos, positions)),
                    is_action=is_action,
                )
                return
            for p, value in zip(positions, inj.values, strict=True):
                self._add(
                    case.cls,
                    case.expect,
                    "raw",
                    positions=(_pos(p),),
                    is_action=is_action,
                    forged_chain=chain_of(value),
                )
        elif isinstance(inj, Sdk):
            self._sdk(case, inj)
        elif isinstance(inj, Publish):
            self._publish(case, inj)
        else:
            self._http_case(case, inj)

    def _sdk(self, case: Case, inj: Sdk) -> None:
        accepted: list[Position] = []
        for event in inj.events:
            try:
                accepted.append(_pos(self.producer.publish(event)))
            except (LogUnavailableError, StoreUnavailableError) as exc:
                self._add(
                    case.cls,
                    case.expect,
                    "unhandled",
                    note=f"SDK: infrastructure error for a data problem: {str(exc)[:200]}",
                )
            except KernelError as exc:
                self._add(case.cls, case.expect, "refused", note=str(exc)[:200])
            except Exception as exc:
                self._add(
                    case.cls,
                    case.expect,
                    "unhandled",
                    note=f"SDK raised {type(exc).__name__}: {str(exc)[:200]}",
                )
        if case.expect is Expect.DUPLICATE and len(accepted) == 2:
            self._add(case.cls, case.expect, "dup", positions=tuple(accepted), is_action=True)
            return
        for p in accepted:
            self._add(case.cls, case.expect, "accepted", positions=(p,), is_action=True)

    def _publish(self, case: Case, inj: Publish) -> None:
        path = self.dep.work_dir / f"publish-{len(self.items)}.jsonl"
        path.write_bytes(inj.data)
        rc, out, err = self.dep.cli("publish", "-v", str(path))
        if "Traceback" in out + err:
            self._add(
                case.cls,
                case.expect,
                "unhandled",
                note=f"kernel publish printed a traceback: {_last_line(err)}",
            )
            return
        if rc != 0:
            if re.search(r"\bline \d+", err):
                self._add(case.cls, case.expect, "refused", note=_last_line(err, first=True))
            else:
                self._add(
                    case.cls,
                    case.expect,
                    "unhandled",
                    note=f"publish exited {rc} without naming a line: {_last_line(err)}",
                )
            return
        published = _LINE.findall(out)
        if case.expect is Expect.VALID and len(published) != 1:
            self._add(
                case.cls,
                case.expect,
                "unhandled",
                note=f"one line published as {len(published)} events",
            )
        if not published:
            self._add(case.cls, case.expect, "unhandled", note=f"exit 0, nothing published: {out}")
        for _line, event_type, _id, topic, part, off in published:
            self._add(
                case.cls,
                case.expect,
                "accepted",
                positions=((topic, int(part), int(off)),),
                is_action=event_type == "kernelAction",
            )

    def _http_case(self, case: Case, inj: Http) -> None:
        status, body = self._http(inj)
        if 400 <= status < 500:
            self._add(case.cls, case.expect, "refused", note=f"{status}")
        elif status == 200 and inj.path == "/sentinel/check" and case.expect is not Expect.BAD:
            self._add(case.cls, case.expect, "check", check_id=orjson.loads(body)["policyCheckId"])
        else:
            self._add(
                case.cls,
                case.expect,
                "unhandled",
                note=f"{inj.method} {inj.path[:60]} answered {status}: {body[:160]!r}",
            )

    def _http(self, req: Http) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.dep.api_port, timeout=60)
        try:
            conn.request(req.method, req.path, req.body, {**identity.AUTH, **req.headers})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}".encode()
        finally:
            conn.close()


def _last_line(text: str, *, first: bool = False) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "(no output)"
    return (lines[0] if first else lines[-1])[:240]
