"""``kernel run`` as a supervisor sees it: deaths exit non-zero, SIGTERM exits 0.

Real subprocesses on the test stack (uuid topics). Deadlines are generous and
polled: the machine is shared and a Kafka round trip has no tight bound.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ops.bootstrap import Kernel
from streams.chain.keys import generate_key
from tests.e2e.conftest import settings_env
from tests.integration.core.test_producer import _actions, read_all

KERNEL = str(Path(sys.executable).with_name("kernel"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(kernel: Kernel, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = settings_env(kernel.settings)
    env["KERNEL_STATE_DIR"] = str(tmp_path / "state")
    env["KERNEL_METRICS_PORT"] = "0"
    env.update(extra)
    return env


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KERNEL, "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _death_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " died: " in line]


def test_production_mode_refusing_the_local_key_exits_non_zero_with_one_line(
    kernel: Kernel, tmp_path: Path
) -> None:
    key = generate_key(tmp_path / "keys", "s1")
    env = _env(kernel, tmp_path, KERNEL_ENV="production", KERNEL_SIGNING_KEY=str(key))
    done = _run(env, "signer")
    assert done.returncode == 1, done.stderr
    lines = _death_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    record = json.loads(lines[0])
    assert "worker signer (instance 0) died: ConfigError" in record["msg"]
    assert "KERNEL_ENV=production refuses local signing keys" in record["msg"]
    assert "ConfigError" in record["exc"]  # the traceback rides in the same line


def test_one_dead_worker_of_two_stops_the_other_and_exits_non_zero(
    kernel: Kernel, tmp_path: Path
) -> None:
    # No key anywhere: signer and checkpointer both die; the missing key is named.
    env = _env(kernel, tmp_path, KERNEL_INSTANCE_ID="3")
    started = time.monotonic()
    done = _run(env, "signer", "checkpointer")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 60
    lines = _death_lines(done.stderr)
    assert lines, done.stderr
    assert all("(instance 3)" in line and "no signing key at" in line for line in lines)


def test_an_unknown_instance_id_is_refused_in_one_line(kernel: Kernel, tmp_path: Path) -> None:
    done = _run(_env(kernel, tmp_path), "signer", "--instance", "a b")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "kernel run: error: KERNEL_INSTANCE_ID must be 1-64 letters, digits, '-', '_' or '.', "
        "got 'a b'"
    ]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_sigterm_stops_a_healthy_signer_with_exit_0_and_sigusr1_dumps_its_threads(
    kernel: Kernel, tmp_path: Path
) -> None:
    key = generate_key(tmp_path / "keys", "s1")
    port = _free_port()
    env = _env(
        kernel, tmp_path, KERNEL_SIGNING_KEY=str(key), KERNEL_SIGNER_ID="s1",
        KERNEL_METRICS_PORT=str(port),
    )  # fmt: skip
    log = tmp_path / "signer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [KERNEL, "run", "signer", "--instance", "7"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 90
        status, body = 0, ""
        while time.monotonic() < deadline and proc.poll() is None:
            status, body = _get(f"http://127.0.0.1:{port}/health")
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200, (status, body, log.read_text())
        health = json.loads(body)
        assert health["healthy"] is True
        assert health["instance"] == "7"
        assert [w["worker"] for w in health["workers"]] == ["signer"]
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert 'kernel_worker_heartbeat_timestamp_seconds{instance="7",worker="signer"}' in metrics
        # SIGUSR1: every thread's stack on stderr, and the worker goes on (a stall's diagnosis)
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "(most recent call first)" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "(most recent call first)" in log.read_text() and proc.poll() is None
        assert _get(f"http://127.0.0.1:{port}/health")[0] == 200
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert code == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_signer_instances_share_the_group_without_fencing_each_other(
    kernel: Kernel, tmp_path: Path
) -> None:
    from confluent_kafka.admin import AdminClient

    key = generate_key(tmp_path / "keys", "s1")
    procs: list[tuple[subprocess.Popen[bytes], Path, int]] = []
    try:
        for instance in ("1", "2"):
            port = _free_port()
            env = _env(
                kernel, tmp_path, KERNEL_SIGNING_KEY=str(key), KERNEL_SIGNER_ID="s1",
                KERNEL_METRICS_PORT=str(port),
            )  # fmt: skip
            log = tmp_path / f"signer-{instance}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [KERNEL, "run", "signer", "--instance", instance],
                    env=env, stdout=out, stderr=out,
                )  # fmt: skip
            procs.append((proc, log, port))
        group = f"{kernel.settings.topic_prefix}chain-signer"
        admin = AdminClient({"bootstrap.servers": kernel.settings.kafka_bootstrap})
        deadline, members = time.monotonic() + 90, 0
        while time.monotonic() < deadline and members < 2:
            time.sleep(1)
            assert all(p.poll() is None for p, _, _ in procs), [
                log.read_text() for _, log, _ in procs
            ]
            found = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
            members = len(found.members)
        assert members == 2
        # Traffic on every partition: an instance fenced by the other's transactional
        # id dies on its next transaction.
        events = [e for i in range(6) for e in _actions(10, f"acct-{i}")]
        kernel.producer().publish_batch(events)
        chained, deadline = 0, time.monotonic() + 90
        while chained < len(events) and time.monotonic() < deadline:
            time.sleep(1)
            chained = len(read_all(kernel, kernel.names.chain))
        assert chained == len(events)
        for proc, log, port in procs:
            assert proc.poll() is None, log.read_text()
            assert _get(f"http://127.0.0.1:{port}/health")[0] == 200
    finally:
        for proc, _, _ in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc, _, _ in procs]
    assert codes == [0, 0], [log.read_text() for _, log, _ in procs]


# A worker whose body hangs and never polls (what a client call that ignores
# its timeout looks like): the real `kernel run` process, signals and HTTP, with
# only the worker's body replaced.
_STUCK = (
    "import sys, time\n"
    "from ops.commands import run\n"
    "from ops.workers import Worker\n"
    "class Hang:\n"
    "    def run(self, should_stop): time.sleep(3600)\n"
    "    def close(self): pass\n"
    "run.workers = lambda: {'signer': Worker('signer', 'hangs', lambda k: Hang())}\n"
    "from ops.cli import main\n"
    "sys.exit(main(['run', 'signer']))\n"
)


def test_a_worker_stuck_past_sigterm_exits_1_naming_it_and_health_says_why(
    kernel: Kernel, tmp_path: Path
) -> None:
    port = _free_port()
    env = _env(kernel, tmp_path, KERNEL_METRICS_PORT=str(port))
    log = tmp_path / "stuck.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _STUCK], env=env, stdout=out, stderr=out)
    try:
        deadline, status, body = time.monotonic() + 60, 0, ""
        while status == 0 and time.monotonic() < deadline:
            status, body = _get(f"http://127.0.0.1:{port}/health")
            time.sleep(0.3)
        assert status == 503, (status, body, log.read_text())
        assert "signer: never beat" in json.loads(body)["reason"]
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = proc.wait(timeout=60)
        assert code == 1, log.read_text()
        assert time.monotonic() - signalled < 25  # the 10 s stop bound, with slack
        assert "worker(s) signer (instance 0) did not stop within 10s" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_signer_without_a_broker_keeps_beating_and_stops_at_once_on_sigterm(
    kernel: Kernel, tmp_path: Path
) -> None:
    # No broker at this address: init_transactions retries under its deadline,
    # ticking the heartbeat, and a SIGTERM ends it within the stop bound.
    key = generate_key(tmp_path / "keys", "s1")
    port = _free_port()
    env = _env(
        kernel, tmp_path, KERNEL_SIGNING_KEY=str(key), KERNEL_SIGNER_ID="s1",
        KERNEL_METRICS_PORT=str(port), KERNEL_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}",
    )  # fmt: skip
    log = tmp_path / "nobroker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([KERNEL, "run", "signer"], env=env, stdout=out, stderr=out)
    try:
        deadline, status, body = time.monotonic() + 60, 0, ""
        while time.monotonic() < deadline:
            status, body = _get(f"http://127.0.0.1:{port}/health")
            if status == 200 and json.loads(body)["workers"][0].get("alive"):
                break
            time.sleep(0.3)
        assert status == 200, (status, body, log.read_text())
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert time.monotonic() - signalled < 25  # the 10 s stop bound, with slack
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
