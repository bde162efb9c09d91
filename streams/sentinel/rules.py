"""Policy rules: CEL, type-checked against the kernel action and compiled once.

The engine is cel-expr-python (Google's cel-cpp); ``docs/decisions/0003`` has
the measurements behind the choice. A rule is compiled in an environment that
declares exactly the attributes of a kernel action::

    action: string   actor: string   subject: string   resource: dyn (string|null)
    context: map(string, dyn)   eventType: string   ts: int (epoch ms)

so the checker rejects, at create time, a rule that names anything else
(``colour == "red"``), applies the wrong operator (``action > 3``), or is not
a boolean expression. CEL has no I/O, no loops without bounds and no side
effects, and no custom functions are registered: a rule is sandboxed by
construction. Values inside ``context`` are dynamic, so some errors (a missing
key, ``"x" > 1``) can only happen at evaluation; they come back as
:class:`RuleOutcome` errors, never exceptions, and the evaluator fails closed.

Evidence needs *which* values a rule read. cel-expr-python exposes no parse
tree, so :func:`read_paths` is a conservative static analysis over the rule's
tokens: every chain ``root(.field | ["key"])*`` whose root is an activation
variable, stopping before a method call. It may over-report (a comprehension
variable shadowing ``action``) but never misses an attribute the rule reads.

**Batches.** A call into the engine costs a few microseconds whatever the rule,
so :func:`compile_batch` compiles several rules as one CEL list literal
``[(r1), (r2), ...]`` and a :class:`RuleBatch` evaluates them in one call. CEL
is pure and a list's elements are evaluated independently, so a batch that
yields a list of booleans gives each rule's own result. When it does not -- one
rule errored (the whole list is then an error) or returned a non-boolean --
:meth:`RuleBatch.matches` returns None and the caller evaluates each rule on
its own, so error isolation and the per-rule error text are exactly those of
:meth:`CompiledRule.evaluate`.

**Literal regexes.** cel-cpp compiles the pattern of ``matches`` on every call
(~5 µs, against ~0.1 µs for ``startsWith``); this binding offers no way to
precompile it. In a batch program only, ``s.matches("<pattern>")`` whose
pattern is a plain literal with at most ``^`` in front, ``.*`` or ``$`` behind
is written as the string test that is the same RE2 partial match:
``^lit`` / ``^lit.*`` -> ``startsWith``, ``lit$`` -> ``endsWith``, ``lit`` /
``lit.*`` -> ``contains``. The three are, like ``matches``, string methods
with no other overload, so a receiver that is not a string errors either way
and the batch falls back to the rule's own program, whose error text is
reported. Any other pattern is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import cel_expr_python.cel as cxp

from schemas.events import Event
from streams.sentinel.errors import RuleError

__all__ = [
    "BATCH_MAX_CHARS",
    "MISSING",
    "ROOTS",
    "Activation",
    "AttrPath",
    "CompiledRule",
    "RuleBatch",
    "RuleOutcome",
    "batch_source",
    "compile_batch",
    "compile_rule",
    "format_path",
    "read_paths",
    "read_values",
    "uncompilable_rule",
]

AttrPath = tuple[str, ...]
ROOTS = ("action", "actor", "subject", "resource", "context", "claimedActor", "eventType", "ts")
MISSING: Any = object()  # read() of an absent attribute
# cel-cpp refuses expressions over 100,000 code points; a batch stays well below.
BATCH_MAX_CHARS = 50_000


@cache
def _env() -> Any:
    t = cxp.Type
    return cxp.NewEnv(
        variables={
            "action": t.STRING,
            "actor": t.STRING,
            "subject": t.STRING,
            "resource": t.DYN,  # string or null; a wrapper type would refuse plain strings
            "context": t.Map(t.STRING, t.DYN),
            "claimedActor": t.DYN,  # string or null: an actor the caller claimed, unverified
            "eventType": t.STRING,
            "ts": t.INT,
        }
    )


class Activation:
    """One action's attributes, converted for the engine once and shared by every rule."""

    __slots__ = ("_at", "_native", "_reads", "values")

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self._native: Any = None
        # read_values() per path tuple: policies sharing a rule shape share the lookup
        self._reads: dict[tuple[AttrPath, ...], tuple[dict[str, Any], tuple[str, ...]]] = {}
        # (formatted path, value or MISSING) per path: path tuples overlap
        self._at: dict[AttrPath, tuple[str, Any]] = {}

    @classmethod
    def of_event(cls, event: Event) -> Activation:
        body = event.body
        context = body.get("context")
        return cls(
            {
                "action": body.get("action", event.event_type),
                "actor": event.actor,
                "subject": event.subject,
                "resource": body.get("resource"),
                "context": context if isinstance(context, dict) else {},
                "claimedActor": event.metadata.get("claimedActor"),
                "eventType": event.event_type,
                "ts": event.ts_ms,
            }
        )

    @property
    def native(self) -> Any:
        if self._native is None:
            self._native = _env().Activation(self.values)
        return self._native

    def read(self, path: AttrPath) -> Any:
        """The value at ``path``, or the module's missing sentinel."""
        value: Any = self.values
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return MISSING
            value = value[key]
        return value

    def values_at(self, paths: tuple[AttrPath, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """:func:`read_values` of ``paths``, memoised: the result is shared, do not mutate."""
        found = self._reads.get(paths)
        if found is None:
            at = self._at
            present: dict[str, Any] = {}
            missing: list[str] = []
            for path in paths:
                known = at.get(path)
                if known is None:
                    known = at[path] = (format_path(path), self.read(path))
                name, value = known
                if value is MISSING:
                    missing.append(name)
                else:
                    present[name] = value
            found = self._reads[paths] = (present, tuple(missing))
        return found


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    matched: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    source: str
    paths: tuple[AttrPath, ...]
    _expr: Any

    def evaluate(self, activation: Activation) -> RuleOutcome:
        try:
            result = self._expr.eval(activation.native)
            value = result.value()
        except Exception as exc:  # the engine's errors are data here: fail closed upstream
            return RuleOutcome(False, f"{type(exc).__name__}: {exc}")
        if isinstance(value, bool):
            return RuleOutcome(value)
        if result.type().name() == "ERROR":
            return RuleOutcome(False, str(value))
        return RuleOutcome(False, f"rule returned {type(value).__name__}, not a boolean")

    def values_read(self, activation: Activation) -> tuple[dict[str, Any], list[str]]:
        """The attribute values this rule read from ``activation``, and those absent."""
        return read_values(self.paths, activation)


MATCHED = RuleOutcome(True)
NOT_MATCHED = RuleOutcome(False)


class RuleBatch:
    """Several compiled rules evaluated in one engine call (see the module docstring)."""

    __slots__ = ("_expr", "size")

    def __init__(self, expr: Any, size: int) -> None:
        self._expr = expr
        self.size = size

    def matches(self, activation: Activation) -> list[bool] | None:
        """Each rule's boolean result, or None if any rule errored or was not boolean."""
        try:
            values = self._expr.eval(activation.native).plain_value()
        except Exception:  # the per-rule path reports it
            return None
        if type(values) is not list or len(values) != self.size:
            return None  # an error value (a string), or not our list
        if not set(map(type, values)) <= {bool}:
            return None
        return values

    def outcomes(self, activation: Activation) -> list[RuleOutcome] | None:
        found = self.matches(activation)
        if found is None:
            return None
        return [MATCHED if v else NOT_MATCHED for v in found]


def compile_batch(rules: Iterable[CompiledRule]) -> RuleBatch | None:
    """One program over ``rules``; None if a rule cannot take part or it does not compile.

    None is never an error: the caller evaluates those rules one by one.
    """
    parts = []
    for rule in rules:
        if isinstance(rule._expr, _Uncompilable):
            return None
        # each rule in its own parentheses, closed on a new line so a trailing
        # ``//`` comment cannot swallow the separator
        parts.append(f"({batch_source(rule.source)}\n)")
    source = "[" + ",\n".join(parts) + "]"
    if not parts or len(source) > BATCH_MAX_CHARS:
        return None
    try:
        expr = _env().compile(source)
    except RuntimeError:
        return None
    if not expr.return_type().name().startswith("LIST"):
        return None
    return RuleBatch(expr, len(parts))


_REGEX_META = frozenset("\\.^$|?*+()[]{}")


def _string_test(pattern: str) -> tuple[str, str] | None:
    """The string method and text equal to a partial match of ``pattern``, if any."""
    method = "contains"
    if pattern.startswith("^"):
        method, pattern = "startsWith", pattern[1:]
    if pattern.endswith(".*"):
        pattern = pattern[:-2]
    elif pattern.endswith("$") and method == "contains":
        method, pattern = "endsWith", pattern[:-1]
    if _REGEX_META.intersection(pattern):
        return None
    return method, pattern


@lru_cache(maxsize=8192)
def batch_source(source: str) -> str:
    """``source`` with literal-pattern ``matches`` calls as string tests (module docstring)."""
    toks = [
        (m.lastgroup, m.group(), m.start(), m.end())
        for m in _TOKEN.finditer(source)
        if m.lastgroup != "ws"
    ]
    out = []
    done = 0
    for i in range(1, len(toks) - 3):
        kind, text, start, _ = toks[i]
        if kind != "ident" or text != "matches" or toks[i - 1][1] != ".":
            continue
        if toks[i + 1][1] != "(" or toks[i + 2][0] != "str" or toks[i + 3][1] != ")":
            continue
        pattern = _literal_key(toks[i + 2][1])
        test = None if pattern is None else _string_test(pattern)
        if test is None:
            continue
        method, literal = test
        quote = '"' if '"' not in literal else "'"
        if quote in literal or "\n" in literal:
            continue
        out.append(source[done:start])
        out.append(f"{method}({quote}{literal}{quote})")
        done = toks[i + 3][3]
    out.append(source[done:])
    return "".join(out)


def read_values(
    paths: Iterable[AttrPath], activation: Activation
) -> tuple[dict[str, Any], list[str]]:
    """The values at ``paths`` (by formatted path), and the paths that are absent."""
    present: dict[str, Any] = {}
    missing: list[str] = []
    for path in paths:
        value = activation.read(path)
        if value is MISSING:
            missing.append(format_path(path))
        else:
            present[format_path(path)] = value
    return present, missing


class _Uncompilable:
    """Stands in for a live rule that no longer compiles: every evaluation errors."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def eval(self, activation: Any) -> Any:
        raise RuleError(f"the rule does not compile: {self.reason}")


def uncompilable_rule(source: str, reason: str) -> CompiledRule:
    """A rule that always errors, so its policy fails closed instead of vanishing."""
    return CompiledRule(source, read_paths(source), _Uncompilable(reason))


_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")
_LOCATION = re.compile(r"<input>:(\d+):(\d+): (.*)")


@lru_cache(maxsize=8192)
def compile_rule(source: str) -> CompiledRule:
    """Check and compile ``source``; :class:`RuleError` says what is wrong and where.

    Cached by source text: a policy version's rule is compiled once however
    often the registry is rebuilt.
    """
    try:
        expr = _env().compile(source)
    except RuntimeError as exc:
        raise RuleError(_explain(str(exc))) from None
    kind = expr.return_type().name()
    if kind not in ("BOOL", "DYN"):
        raise RuleError(f"a rule must be a boolean expression; this one is {kind.lower()}")
    return CompiledRule(source, read_paths(source), expr)


def _explain(message: str) -> str:
    undeclared = _UNDECLARED.search(message)
    if undeclared:
        return (
            f"the rule reads {undeclared.group(1)!r}, which a kernel action does not have; "
            f"a rule can read {', '.join(ROOTS)} (context.<key> for action attributes)"
        )
    where = _LOCATION.search(message)
    if where:
        line, col, reason = where.groups()
        return f"line {line}, column {col}: {reason.strip()}"
    return message.splitlines()[0] if message else "the rule does not compile"


_TOKEN = re.compile(
    r"""(?P<ws>\s+|//[^\n]*)
      | (?P<str>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''
                |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
      | (?P<num>\d[\w.]*)
      | (?P<ident>[A-Za-z_]\w*)
      | (?P<op>\?\.|.)""",
    re.VERBOSE,
)


def _tokens(source: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup or "op"
        if kind != "ws":
            out.append((kind, m.group()))
    return out


def _literal_key(text: str) -> str | None:
    """The value of a plain (non-raw, non-bytes, escape-free) string literal."""
    if text[0] in "\"'" and len(text) >= 2 and "\\" not in text and text[:3] not in ('"""', "'''"):
        return text[1:-1]
    return None


def read_paths(source: str) -> tuple[AttrPath, ...]:
    """The attribute paths a rule reads, in order of first appearance."""
    toks = _tokens(source)
    found: dict[AttrPath, None] = {}
    for i, (kind, text) in enumerate(toks):
        if kind != "ident" or text not in ROOTS:
            continue
        if i > 0 and toks[i - 1][1] in (".", "?."):
            continue  # a field or method named like a root, not the root itself
        path = [text]
        j = i + 1
        while j < len(toks):
            if (
                toks[j][1] == "."
                and j + 1 < len(toks)
                and toks[j + 1][0] == "ident"
                and not (j + 2 < len(toks) and toks[j + 2][1] == "(")
            ):
                path.append(toks[j + 1][1])
                j += 2
            elif (
                toks[j][1] == "["
                and j + 2 < len(toks)
                and toks[j + 1][0] == "str"
                and toks[j + 2][1] == "]"
                and (key := _literal_key(toks[j + 1][1])) is not None
            ):
                path.append(key)
                j += 3
            else:
                break
        found[tuple(path)] = None
    return tuple(found)


_IDENT = re.compile(r"[A-Za-z_]\w*")


@lru_cache(maxsize=65536)
def format_path(path: AttrPath) -> str:
    """``("context", "amount")`` -> ``context.amount``; odd keys as ``context["a b"]``."""
    out = path[0]
    for key in path[1:]:
        out += f".{key}" if _IDENT.fullmatch(key) else '["' + key.replace('"', '\\"') + '"]'
    return out
