from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.bootstrap import Kernel
from ops.cli import main
from tests.e2e.conftest import KernelCLI
from tests.integration.core.test_producer import read_all


def _line(i: int, subject: str = "acct-1", **body: object) -> str:
    return json.dumps(
        {
            "eventType": "kernelAction",
            "actor": "svc",
            "subject": subject,
            "body": {"action": f"act{i}", "context": {"i": i}, **body},
        }
    )


def test_publish_file_lands_records_with_the_right_schema(
    cli: KernelCLI, kernel: Kernel, tmp_path: Path
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(_line(i) for i in range(5)) + "\n\n")
    done = cli("publish", str(src))
    assert done.returncode == 0, done.stderr
    assert "published 5 events" in done.stdout
    assert f"-> {kernel.names.actions}/" in done.stdout
    records = read_all(kernel, kernel.names.actions)
    assert [e.body["action"] for _, e, _ in records] == [f"act{i}" for i in range(5)]


def test_publish_from_stdin(cli: KernelCLI, kernel: Kernel) -> None:
    done = cli("publish", "-", input=_line(1) + "\n" + _line(2) + "\n")
    assert done.returncode == 0, done.stderr
    assert len(read_all(kernel, kernel.names.actions)) == 2


def test_atomic_publish_of_a_file_with_bad_lines_publishes_nothing(
    cli: KernelCLI, kernel: Kernel, tmp_path: Path
) -> None:
    lines = [
        _line(0),
        "{not json",
        json.dumps({"eventType": "kernelAction", "actor": "a", "subject": "s", "body": {}}),
        _line(3, n=2**60),
        json.dumps({"eventType": "mystery", "actor": "a", "subject": "s", "body": {}}),
        _line(5, action=17),
        _line(6),
    ]
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines))
    done = cli("publish", str(src))
    assert done.returncode == 2
    err = done.stderr
    assert "line 2: malformed JSON" in err
    assert "line 3, field body.action: required field is missing" in err
    assert "line 4, field body.n: integer 1152921504606846976 is outside" in err
    assert "line 5, field eventType: unknown event type 'mystery'" in err
    assert "line 6, field body.action: expected string, got int" in err
    assert "nothing published" in err
    assert read_all(kernel, kernel.names.actions) == []


def test_non_ijson_number_names_its_path(cli: KernelCLI, tmp_path: Path) -> None:
    src = tmp_path / "big.jsonl"
    src.write_text(_line(0).replace('"i": 0', '"i": 9007199254740993'))
    done = cli("publish", str(src))
    assert done.returncode == 2
    assert "line 1, field body.context.i: integer 9007199254740993 is outside" in done.stderr


def test_skip_invalid_publishes_good_lines_and_writes_rejects(
    cli: KernelCLI, kernel: Kernel, tmp_path: Path
) -> None:
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join([_line(0), "[1, 2", _line(2)]))
    rejects = tmp_path / "rejects.jsonl"
    done = cli("publish", str(src), "--skip-invalid", "--rejects", str(rejects))
    assert done.returncode == 0, done.stderr
    assert "published 2 events" in done.stdout
    rows = [orjson.loads(x) for x in rejects.read_text().splitlines()]
    assert rows == [{"line": 2, "field": None, "reason": rows[0]["reason"], "text": "[1, 2"}]
    assert "malformed JSON" in rows[0]["reason"]
    assert len(read_all(kernel, kernel.names.actions)) == 2


def test_oversized_event_is_rejected(cli: KernelCLI, kernel: Kernel, tmp_path: Path) -> None:
    src = tmp_path / "big.jsonl"
    src.write_text(_line(0).replace('{"i": 0}', '{"blob": "%s"}' % ("r" * 5000)))
    done = cli("publish", str(src), extra_env={"KERNEL_MAX_EVENT_BYTES": "1024"})
    assert done.returncode == 2
    assert "line 1: the event is 5" in done.stderr
    assert "over the limit of 1024 (KERNEL_MAX_EVENT_BYTES)" in done.stderr
    assert read_all(kernel, kernel.names.actions) == []


def test_unreachable_kafka_is_a_clear_bounded_error(cli: KernelCLI, tmp_path: Path) -> None:
    src = tmp_path / "one.jsonl"
    src.write_text(_line(0))
    done = cli(
        "publish",
        str(src),
        extra_env={"KERNEL_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KERNEL_PUBLISH_TIMEOUT_S": "3"},
        timeout=60,
    )
    assert done.returncode == 2
    assert "did not answer" in done.stderr or "did not acknowledge" in done.stderr


# -- issue 9: hostile files get a line-and-field message, never a traceback --------
def test_invalid_utf8_is_a_line_and_byte_not_a_traceback(cli: KernelCLI, tmp_path: Path) -> None:
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(
        _line(0).encode() + b"\n" + _line(1).replace("act1", "caf\xe9").encode("latin-1")
    )
    done = cli("publish", str(src))
    assert done.returncode == 2
    assert "rejected line 2: not valid UTF-8 at byte" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_nesting_of_1000_names_line_and_field(cli: KernelCLI, tmp_path: Path) -> None:
    src = tmp_path / "deep.jsonl"
    src.write_text(_line(0).replace('{"i": 0}', '{"a": ' + "[" * 1000 + "]" * 1000 + "}"))
    done = cli("publish", str(src))
    assert done.returncode == 2
    assert "rejected line 1, field body.context.a[0][0]" in done.stderr
    assert "too deep: nested over 32 levels" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_raw_u2028_inside_a_string_does_not_split_the_line(
    cli: KernelCLI, kernel: Kernel, tmp_path: Path
) -> None:
    src = tmp_path / "seps.jsonl"
    src.write_text(_line(0).replace('"i": 0', '"t": "a\u2028b\u0085c"') + "\n" + _line(1) + "\n")
    done = cli("publish", str(src))
    assert done.returncode == 0, done.stderr
    records = read_all(kernel, kernel.names.actions)
    assert [e.body["context"] for _, e, _ in records] == [{"t": "a\u2028b\u0085c"}, {"i": 1}]


def test_an_event_between_kafkas_limit_and_1_mib_is_a_line_message(
    cli: KernelCLI, kernel: Kernel, tmp_path: Path
) -> None:
    blobs = ", ".join(f'"k{i}": "{"x" * 60_000}"' for i in range(17))  # ~1,020,000 bytes
    src = tmp_path / "huge.jsonl"
    src.write_text(_line(0).replace('"i": 0', blobs))
    done = cli("publish", str(src))
    assert done.returncode == 2
    assert "rejected line 1: the event is 10" in done.stderr
    assert "KERNEL_MAX_EVENT_BYTES" in done.stderr
    assert "transaction failed" not in done.stderr
    assert read_all(kernel, kernel.names.actions) == []


_hostile_line = st.one_of(
    st.binary(max_size=60),
    st.integers(0, 3000).map(lambda d: b"[" * d + b"]" * d),
    st.integers(0, 3000).map(lambda d: _line(0).replace('{"i": 0}', "[" * d + "]" * d).encode()),
    st.text(max_size=30).map(
        lambda t: _line(0).replace('"i": 0', json.dumps({"t": t})[1:-1]).encode()
    ),
    st.sampled_from(
        [
            b"\xff\xfe",
            b'{"a": "\xed\xa0\x80"}',
            b'"\\ud800"',
            b"1e400",
            b"\x00",
            b"\xe2\x80\xa8",
            b'{"eventType": "kernelAction", "eventType": "x"}',
            b"9" * 5000,
        ]
    ),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_hostile_line, max_size=6), bad_at=st.integers(0, 6))
def test_hostile_files_exit_2_with_a_line_for_each_reject_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[bytes], bad_at: int
) -> None:
    # One line is surely bad, so the atomic publish refuses before it needs Kafka.
    lines.insert(min(bad_at, len(lines)), b"{not json")
    src = tmp_path / "hostile.jsonl"
    src.write_bytes(b"\n".join(lines))
    capsys.readouterr()
    code = main(["publish", str(src)])  # in-process: any exception fails the test
    out, err = capsys.readouterr()
    assert code == 2
    rejected = [x for x in err.splitlines() if x.startswith("rejected line ")]
    assert rejected and all(x.split()[2].rstrip(":,").isdigit() for x in rejected)
    assert "Traceback" not in out + err
