"""Rule engines on SentinelNet's rule shapes: compile time and evaluation cost.

Run: ``.venv/bin/python -m bench.rule_engines [--repeat 7] [--number 20000]``

Engines:
- ``cel`` -- common-expression-language (Rust ``cel-interpreter`` via PyO3),
  untyped: no declarations, unknown names fail at evaluation time;
- ``cxp`` -- cel-expr-python (Google's C++ cel-cpp), type-checked against
  declared activation variables, so unknown attributes fail at compile time;
- ``py`` -- a hand-written Python lambda per shape: the floor, for ratios.

For each shape it prints the median of ``--repeat`` runs: compile µs, and
evaluation µs per rule (a) passing a fresh dict each call and (b) reusing an
activation built once per action -- (b) is what the evaluator does, since every
policy in scope reads the same action. Activation build cost is reported once.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import cel
import cel_expr_python.cel as cxp

ACTION: dict[str, Any] = {
    "action": "payments.transfer",
    "actor": "agent:billing-7",
    "subject": "acct:1234",
    "resource": "prod/ledger/eu",
    "context": {
        "amount": 25000,
        "currency": "EUR",
        "riskScore": 0.42,
        "country": "FR",
        "tags": ["batch", "nightly"],
    },
    "eventType": "kernelAction",
    "ts": 1_767_225_600_000,
}

SHAPES: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "eq+threshold": (
        'action == "payments.transfer" && context.amount > 10000',
        lambda a: a["action"] == "payments.transfer" and a["context"]["amount"] > 10000,
    ),
    "in-list+startsWith": (
        'action in ["iam.grant", "iam.revoke", "payments.transfer"] && !actor.startsWith("svc:")',
        lambda a: (
            a["action"] in ["iam.grant", "iam.revoke", "payments.transfer"]
            and not a["actor"].startswith("svc:")
        ),
    ),
    "null+matches": (
        'resource != null && resource.matches("^prod/.*")',
        lambda a: a["resource"] is not None and a["resource"].startswith("prod/"),
    ),
    "double+in": (
        'context.riskScore >= 0.8 || context.country in ["KP", "IR", "SY"]',
        lambda a: a["context"]["riskScore"] >= 0.8 or a["context"]["country"] in ["KP", "IR", "SY"],
    ),
    "5-clause": (
        'subject.startsWith("acct:") && context.amount > 1000 && context.currency == "EUR"'
        ' && !("manual" in context.tags) && eventType == "kernelAction"',
        lambda a: (
            a["subject"].startswith("acct:")
            and a["context"]["amount"] > 1000
            and a["context"]["currency"] == "EUR"
            and "manual" not in a["context"]["tags"]
            and a["eventType"] == "kernelAction"
        ),
    ),
}


def cxp_env() -> Any:
    t = cxp.Type
    return cxp.NewEnv(
        variables={
            "action": t.STRING,
            "actor": t.STRING,
            "subject": t.STRING,
            "resource": t.DYN,
            "context": t.Map(t.STRING, t.DYN),
            "eventType": t.STRING,
            "ts": t.INT,
        }
    )


def median_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    runs = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e6


def decision_us(env: Any, shapes: list[str], number: int, repeat: int) -> tuple[float, float]:
    """One action against 100 rules cycling ``shapes``: build the activation, run all."""
    srcs = [SHAPES[shapes[i % len(shapes)]][0] for i in range(100)]
    p_cel = [cel.compile(s) for s in srcs]
    p_cxp = [env.compile(s) for s in srcs]

    def run_cel() -> None:
        ctx = cel.Context(ACTION)
        for p in p_cel:
            p.execute(ctx)

    def run_cxp() -> None:
        act = env.Activation(ACTION)
        for p in p_cxp:
            p.eval(act).value()

    return median_us(run_cel, number, repeat), median_us(run_cxp, number, repeat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=20000)
    args = ap.parse_args()
    n, r = args.number, args.repeat
    cn = max(n // 20, 100)
    env = cxp_env()
    cel_ctx = cel.Context(ACTION)
    cxp_act = env.Activation(ACTION)

    print(f"median of {r} runs; eval x{n}, compile x{cn}; µs per call\n")
    header = (
        f"{'shape':<20} {'cel compile':>11} {'cxp compile':>11} "
        f"{'cel eval':>9} {'cxp eval':>9} {'cel ctx':>8} {'cxp act':>8} {'py':>6} "
        f"{'cel/cxp(act)':>12}"
    )
    print(header)
    print("-" * len(header))
    totals = {"cel": 0.0, "cxp": 0.0}
    for name, (src, py) in SHAPES.items():
        p_cel = cel.compile(src)
        p_cxp = env.compile(src)
        assert p_cel.execute(ACTION) == p_cxp.eval(data=ACTION).value() == py(ACTION), name
        c_cel = median_us(lambda src=src: cel.compile(src), cn, r)  # type: ignore[misc]
        c_cxp = median_us(lambda src=src: env.compile(src), cn, r)  # type: ignore[misc]
        e_cel = median_us(lambda p=p_cel: p.execute(ACTION), n, r)  # type: ignore[misc]
        e_cxp = median_us(lambda p=p_cxp: p.eval(data=ACTION).value(), n, r)  # type: ignore[misc]
        a_cel = median_us(lambda p=p_cel: p.execute(cel_ctx), n, r)  # type: ignore[misc]
        a_cxp = median_us(lambda p=p_cxp: p.eval(cxp_act).value(), n, r)  # type: ignore[misc]
        e_py = median_us(lambda f=py: f(ACTION), n, r)  # type: ignore[misc]
        totals["cel"] += a_cel
        totals["cxp"] += a_cxp
        print(
            f"{name:<20} {c_cel:>11.1f} {c_cxp:>11.1f} {e_cel:>9.2f} {e_cxp:>9.2f} "
            f"{a_cel:>8.2f} {a_cxp:>8.2f} {e_py:>6.2f} {a_cel / a_cxp:>12.2f}"
        )
    for label, shapes in (
        ("no regex", [k for k in SHAPES if k != "null+matches"]),
        ("1 in 5 regex", list(SHAPES)),
    ):
        d_cel, d_cxp = decision_us(env, shapes, n // 100, r)
        print(
            f"decision, 100 rules ({label}), activation built per action: "
            f"cel {d_cel:.1f} µs, cxp {d_cxp:.1f} µs (cel/cxp {d_cel / d_cxp:.2f})"
        )
    build_cel = median_us(lambda: cel.Context(ACTION), n, r)
    build_cxp = median_us(lambda: env.Activation(ACTION), n, r)
    print(f"\nactivation build per action: cel Context {build_cel:.2f} µs, cxp {build_cxp:.2f} µs")
    print(
        f"sum over the {len(SHAPES)} shapes with a shared activation: "
        f"cel {totals['cel']:.2f} µs, cxp {totals['cxp']:.2f} µs "
        f"(cel/cxp {totals['cel'] / totals['cxp']:.2f})"
    )
    missing = dict(ACTION, context={})
    p_cel = cel.compile("context.amount > 10")
    try:
        p_cel.execute(missing)
        cel_err = "no error"
    except Exception as exc:
        cel_err = f"raises {type(exc).__name__}"
    v = env.compile("context.amount > 10").eval(data=missing)
    print(f"missing attribute: cel {cel_err}; cxp returns a {v.type().name()} value")
    try:
        env.compile("colour == 'red'")
        cxp_check = "accepted"
    except RuntimeError:
        cxp_check = "rejected at compile time"
    try:
        cel.compile("colour == 'red'")
        cel_check = "accepted at compile time"
    except ValueError:
        cel_check = "rejected"
    print(f"undeclared attribute 'colour': cel {cel_check}; cxp {cxp_check}")


if __name__ == "__main__":
    main()
