"""The bad-input corpus against the real workers: nothing a record or request holds stops Kernel.

Short form (default suite): every class of issue 9 with a few records, and a
few hypothesis-generated records per input. Full form (``-m slow``, ``make
test-corpus``): many hypothesis examples. Either way one table is printed
(class, tried, dead-lettered, refused, processed, crashes, unhandled, lost,
duplicated) and the test fails on any crash, unhandled record, lost or
duplicated valid event, failing ``audit-verify`` / ``replay --verify-only`` or
undecodable dead letter. ``KERNEL_CORPUS_CLASSES=a,b`` runs only those classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.config import Settings
from ops.stack import LocalStack
from tests.corpus.cases import Case, named_cases
from tests.corpus.generators import generated_cases
from tests.corpus.harness import CorpusRun
from tests.corpus.table import render


def _select(cases: list[Case]) -> list[Case]:
    wanted = {c for c in os.environ.get("KERNEL_CORPUS_CLASSES", "").split(",") if c}
    return [c for c in cases if not wanted or c.cls in wanted]


def max_event_bytes(settings: Settings) -> int:
    """The input contract's event size limit, wherever this build keeps it."""
    try:
        from schemas.contract import InputContract  # type: ignore[import-not-found]

        return int(InputContract.from_settings(settings).max_event_bytes)
    except ImportError:
        return settings.max_event_bytes


def _run(base: Settings, tmp_path: Path, cases: list[Case]) -> None:
    settle = float(os.environ.get("KERNEL_CORPUS_SETTLE_S", "45"))
    run = CorpusRun(base, tmp_path, settle_s=settle)
    try:
        run.run(_select(cases))
    finally:
        table = render(run.results.values(), run.deployments)
        (tmp_path / "corpus-table.txt").write_text(table)
        print("\n" + table)
    failing = [r.cls for r in run.results.values() if not r.ok]
    bad_deployments = [n for n, d in enumerate(run.deployments, 1) if not d.ok]
    assert not failing and not bad_deployments, (
        f"classes failing: {failing}; deployments failing end checks: {bad_deployments}\n{table}"
    )


@pytest.mark.timeout(1800)
def test_corpus_short(stack: LocalStack, base_settings: Settings, tmp_path: Path) -> None:
    cases = named_cases(max_event_bytes(base_settings)) + generated_cases(examples=3)
    _run(base_settings, tmp_path, cases)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_corpus_full(stack: LocalStack, base_settings: Settings, tmp_path: Path) -> None:
    cases = named_cases(max_event_bytes(base_settings)) + generated_cases(examples=60)
    _run(base_settings, tmp_path, cases)
