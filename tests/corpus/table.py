"""The corpus's counts table: one row per class, then one line per deployment."""

from __future__ import annotations

from collections.abc import Iterable

from tests.corpus.harness import ClassResult, DeploymentResult

__all__ = ["render"]

_COLUMNS = (
    ("class", "cls"),
    ("tried", "tried"),
    ("dead-lettered", "dead_lettered"),
    ("refused at door", "refused"),
    ("processed", "processed"),
    ("crashes", "crashes"),
    ("unhandled", "unhandled"),
    ("interleaved ok", "valid_ok"),
    ("of", "valid_tried"),
    ("valid lost", "lost"),  # interleaved valid records, and records a door accepted
    ("valid duplicated", "duplicated"),
)


def render(results: Iterable[ClassResult], deployments: Iterable[DeploymentResult]) -> str:
    rows = list(results)
    table = [[h for h, _ in _COLUMNS]] + [[str(getattr(r, a)) for _, a in _COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    lines = []
    for n, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells) + ("" if n == 0 or rows[n - 1].ok else "  FAIL"))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    total = [sum(getattr(r, a) for r in rows) for _, a in _COLUMNS[1:]]
    lines.append(
        "  ".join(
            ["total".ljust(widths[0])]
            + [str(t).rjust(w) for t, w in zip(total, widths[1:], strict=True)]
        )
    )
    for r in rows:
        for note in r.notes[:4]:
            lines.append(f"  {r.cls}: {note}")
    for n, d in enumerate(deployments, 1):
        verdict = "ok" if d.ok else "FAIL"
        lines.append(
            f"deployment {n} [{verdict}]: classes {len(d.classes)}"
            + (f", poisoned by {d.poisoned_by}" if d.poisoned_by else "")
            + f"; deaths {[(x.worker, x.returncode) for x in d.deaths]}"
            + f"; audit-verify rc={d.audit_verify[0]}; replay --verify-only rc={d.replay_verify[0]}"
            + (
                f"; {len(d.undecodable_dead_letters)} undecodable dead letters"
                if d.undecodable_dead_letters
                else ""
            )
        )
        for label, (rc, out) in (("audit-verify", d.audit_verify), ("replay", d.replay_verify)):
            if rc:
                said = [x for x in out.strip().splitlines() if x.strip()]
                why = [x for x in said if "FAIL" in x or "differ" in x.lower() or "rror" in x]
                for x in (why or said[-1:])[:4]:
                    lines.append(f"    {label}: {x[:300]}")
    return "\n".join(lines)
