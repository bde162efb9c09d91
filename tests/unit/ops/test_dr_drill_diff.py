"""The drill's first difference between two key-ordered fingerprint streams, against a reference."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from ops.dr_drill import first_difference

COLUMNS = ["a", "b"]
rows = st.dictionaries(
    st.text(max_size=4), st.tuples(st.sampled_from("xyz"), st.sampled_from("xyz")), max_size=8
)


def stream(table: dict[str, tuple[str, str]]) -> Iterator[tuple[str, str, list[str]]]:
    return iter([(k, "".join(cols), list(cols)) for k, cols in sorted(table.items())])


def reference(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> str | None:
    for k in sorted(set(before) | set(after)):
        if k not in after:
            return f"row {k} is in live but not in the rebuild (not on the log)"
        if k not in before:
            return f"row {k} is in the rebuild but was missing from live"
        if before[k] != after[k]:
            changed = [c for c, x, y in zip(COLUMNS, before[k], after[k], strict=True) if x != y]
            return f"row {k} differs in {', '.join(changed)}"
    return None


@given(before=rows, after=rows)
def test_first_difference_is_the_first_key_where_the_tables_part(
    before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]
) -> None:
    assert first_difference(COLUMNS, stream(before), stream(after)) == reference(before, after)


@given(table=rows)
def test_equal_tables_have_no_difference(table: dict[str, tuple[str, str]]) -> None:
    assert first_difference(COLUMNS, stream(table), stream(table)) is None
