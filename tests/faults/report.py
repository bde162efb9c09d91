"""The run's figures as a table, and its verdict (the reasons it failed, or none)."""

from __future__ import annotations

import statistics
from collections import Counter

from tests.faults.run import SCALED, RunResult
from tests.faults.schedule import WORKERS

__all__ = ["table", "verdict"]


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}s"


def _median(xs: list[float | None]) -> str:
    got = [x for x in xs if x is not None]
    never = len(xs) - len(got)
    if not got:
        return f"never (x{never})" if never else "-"
    text = f"{statistics.median(got):.1f}s (n={len(got)}, max {max(got):.1f}s)"
    return text + (f", never x{never}" if never else "")


def verdict(r: RunResult) -> list[str]:
    """Why the run failed; empty when every promise held."""
    why: list[str] = []
    led = r.ledger
    if led is None:
        why.append("the end checks did not run")
    else:
        if led.missing:
            why.append(f"{led.missing} missing")
        if led.duplicated:
            why.append(f"{led.duplicated} duplicated")
    for name, (code, tail) in r.verify.items():
        if code != 0:
            why.append(f"`kernel {name}` exited {code}: {tail}")
    if r.aborts == 0:
        why.append("no transactional runner completed an abort/rewind and went on")
    zero = [e for e in r.exits if not e.asked and e.code == 0]
    if zero:
        who = Counter(f"{e.worker}#{e.instance}" for e in zero)
        why.append(f"{len(zero)} exits with code 0 nobody asked for ({dict(who)})")
    if r.final_drain_s is None:
        why.append(f"not drained within {r.plan.drain_deadline_s:.0f}s after the last fault")
    why += sharing_verdict(r)
    if r.ignored_sigterm:
        why.append(f"still running 40s after SIGTERM (killed): {', '.join(r.ignored_sigterm)}")
    why += [f"harness: {e}" for e in r.harness_errors]
    if r.plan.enforce_recovery:
        why += recovery_verdict(r)
    return why


def sharing_verdict(r: RunResult) -> list[str]:
    """Both instances of every scaled worker did work; every auditor verified, none failed."""
    why: list[str] = []
    if r.ledger is None:
        return why  # the run did not get that far; its first reason says why
    for w in SCALED:
        idle = [i for i in ("0", "1") if r.processed.get(f"{w}#{i}", 0) <= 0]
        if idle:
            why.append(f"{w}: instance {', '.join(idle)} finished no record (no load shared)")
    if not r.verifications:
        why.append("no auditor reported a verification round")
    for who, counts in sorted(r.verifications.items()):
        if counts.get("failed", 0):
            why.append(f"{who} reported {counts['failed']} failed verification rounds")
        elif not counts.get("ok", 0):
            why.append(f"{who} never completed a verification round")
    return why


def recovery_verdict(r: RunResult) -> list[str]:
    """Recovery figures past the plan's bounds (broker restart to processing, kill -9 to served)."""
    why: list[str] = []
    broker_bound, kill_bound = r.plan.broker_bound_s, r.plan.kill_bound_s
    for kind, v in r.broker_recovery.items():
        if v is None or v > broker_bound:
            why.append(
                f"{kind}: not every worker processing again within {broker_bound:.0f}s ({_s(v)})"
            )
    for worker, xs in r.recovery.items():
        got = [x for x in xs if x is not None]
        if len(got) < len(xs):
            why.append(
                f"kill -9 of {worker}: partitions never served again ({len(xs) - len(got)}x)"
            )
        elif got and statistics.median(got) > kill_bound:
            why.append(
                f"kill -9 of {worker}: median {statistics.median(got):.1f}s > {kill_bound:.0f}s"
            )
    return why


def table(r: RunResult) -> str:
    kills = Counter(f.target for f in r.faults if f.fault.kind == "kill9" and f.done)
    skipped = sum(1 for f in r.faults if f.fault.kind == "kill9" and not f.done)
    broker = Counter(f.fault.kind for f in r.faults if f.fault.kind.startswith("broker"))
    pg = [f for f in r.faults if f.fault.kind == "pg-outage"]
    codes = Counter((e.code, "asked" if e.asked else "UNASKED") for e in r.exits)
    unasked = [e for e in r.exits if not e.asked]
    led = r.ledger
    rows: list[tuple[str, str]] = [
        (
            "plan",
            f"{r.plan.name}: {r.plan.events} events at {r.plan.rate:g}/s, "
            f"sync checks at {r.plan.check_rate:g}/s, seed {r.plan.seed}, wall {r.wall_s:.0f}s",
        ),
        (
            "instances",
            "kernel run --instance N"
            if r.instance_flag
            else "KERNEL_INSTANCE_ID only (no --instance flag on this branch)",
        ),
        (
            "kills done",
            ", ".join(f"{w} {kills.get(w, 0)}" for w in WORKERS)
            + f" (total {sum(kills.values())}; {skipped} found it down for 20 s)",
        ),
        (
            "broker restarts",
            f"kill -9 {broker.get('broker-kill9', 0)}, graceful {broker.get('broker-graceful', 0)}",
        ),
        ("postgres outage", ", ".join(f"{f.ended - f.started:.1f}s" for f in pg) or "none"),
    ]
    for kind in ("broker-kill9", "broker-graceful"):
        if kind in r.broker_blame:
            per = ", ".join(f"{w} {_s(v)}" for w, v in r.broker_blame[kind].items())
            rows.append((f"{kind} -> all processing", f"{_s(r.broker_recovery[kind])} ({per})"))
    for worker in [*WORKERS, *(f"{w} (scale-in)" for w in SCALED)]:
        xs, near = r.recovery.get(worker, []), r.not_counted.get(worker, 0)
        if xs or near:
            note = f"; {near} right after a broker/Postgres fault not counted" if near else ""
            rows.append((f"kill -9 {worker} -> served", _median(xs) + note))
    if r.processed:
        per = ", ".join(
            f"{w} {r.processed.get(f'{w}#0', 0)}/{r.processed.get(f'{w}#1', 0)}" for w in SCALED
        )
        rows.append(("records finished #0/#1", per))
    if r.verifications:
        rows.append(("auditors (rounds)", ", ".join(
            f"{k}: ok {v.get('ok', 0)}, failed {v.get('failed', 0)}"
            for k, v in sorted(r.verifications.items())
        )))  # fmt: skip
    drains: dict[str, list[float | None]] = {}
    for f in r.faults:
        label = f.fault.kind if f.fault.kind != "kill9" else f"kill9 {f.target}"
        if f.probes_acked:
            drains.setdefault(label, []).append(f.drain_s)
    for label, xs in drains.items():
        rows.append((f"drain after {label}", _median(xs)))
    rows.append(("drain after last fault", _s(r.final_drain_s)))
    if led is not None:
        rows += [
            (
                "missing / duplicated",
                f"{led.missing} / {led.duplicated} (missing: not in the "
                "tables or not on the log when checked, after the drain)",
            ),
            ("ledger", ", ".join(f"{k}={v}" for k, v in led.summary().items())),
        ]
    if r.checks is not None:
        c = r.checks
        rows.append(
            (
                "sync checks",
                f"200 x{len(c.ok)}, 503 x{c.unavailable}, "
                f"other {c.other or 0}, connection errors x{c.connection_errors}",
            )
        )
    rows.append(
        ("publish failures", f"{r.publish_failures} batches (uncertain, never republished)")
    )
    for name, (code, tail) in r.verify.items():
        rows.append((f"kernel {name}", f"exit {code}: {tail[:160]}"))
    rows += [
        ("abort/rewind path",
         f"{r.aborts} aborts completed (kernel_transactions_total{{result=\"abort\"}}: "
         f"{r.aborts_by or '-'}); log: 'aborting transaction' x{r.abort_lines}, "
         f"'abort failed' x{r.abort_failed_lines}; projector retries x{r.projector_retries}"),
        ("supervisor starts", ", ".join(f"{k} {v}" for k, v in sorted(r.starts.items()))),
        ("exit codes seen",
         ", ".join(f"{c} {a} x{n}" for (c, a), n in sorted(codes.items())) or "none"),
        ("final SIGTERM", ", ".join(f"{k} exit {c} in {t:.1f}s" for k, (c, t) in
                                    sorted(r.term.items())) or "-"),
        ("unasked exits", f"{len(unasked)} (code 0: {sum(1 for e in unasked if e.code == 0)})"),
    ]  # fmt: skip
    seen: set[tuple[str, int]] = set()
    for e in unasked:  # one line per worker and code: the cause as the worker logged it
        if (e.worker, e.code) not in seen:
            seen.add((e.worker, e.code))
            rows.append((f"  {e.worker}#{e.instance} exit {e.code}",
                         f"after {e.uptime_s:.1f}s: {e.last_line[:200]}"))  # fmt: skip
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in rows]
    why = verdict(r)
    if not r.plan.enforce_recovery:
        late = recovery_verdict(r)
        lines.append(
            "  recovery bounds".ljust(width + 4)
            + "figures only in this plan"
            + (": " + "; ".join(late) if late else " (all within)")
        )
    lines.append("  VERDICT".ljust(width + 4) + ("PASS" if not why else "FAIL"))
    lines += [f"    - {w}" for w in why]
    return "fault suite figures\n" + "\n".join(lines)
