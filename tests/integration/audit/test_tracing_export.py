"""Spans exported over OTLP to a real collector: Jaeger, read back from its query API.

One action published by ``kernel publish`` is followed through ``kernel run
sentinel``, ``kernel run signer`` and ``kernel run audit-projector``, each a
process of its own on the test stack with OTEL_EXPORTER_OTLP_ENDPOINT set, and
Jaeger must hold ONE trace with a span of each, each the child of the one before:
the producer's PRODUCER span -> the sentinel's span of the action -> the
signer's span of the policyCheck it emitted -> the projector's span of the
chain link the signer emitted.

Jaeger (all-in-one, in-memory storage) is built by ops/install.sh into
~/.cache/kernel (KERNEL_TEST_JAEGER names another binary); here it runs with a
config of its own on free ports: OTLP over HTTP and the query API only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ops.bootstrap import Kernel
from tests.e2e.conftest import settings_env
from tests.ports import free_port

KERNEL = str(Path(sys.executable).with_name("kernel"))
JAEGER_VERSION = "1.76.0"  # keep in step with ops/install.sh
T = TypeVar("T")


def jaeger_binary() -> Path:
    if os.environ.get("KERNEL_TEST_JAEGER"):
        return Path(os.environ["KERNEL_TEST_JAEGER"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kernel" / f"jaeger-{JAEGER_VERSION}" / "jaeger"


def _until(check: Callable[[], T | None], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError):
        return None


_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics: {{level: none}}
    logs: {{level: warn}}
extensions:
  jaeger_storage:
    backends:
      memstore: {{memory: {{max_traces: 10000}}}}
  jaeger_query:
    enable_tracing: false
    storage: {{traces: memstore}}
    http: {{endpoint: "127.0.0.1:{query}"}}
    grpc: {{endpoint: "127.0.0.1:{query_grpc}"}}
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{otlp}"}}
exporters:
  jaeger_storage_exporter: {{trace_storage: memstore}}
"""


class Jaeger:
    def __init__(self, query_url: str, otlp_url: str) -> None:
        self.query_url = query_url
        self.otlp_url = otlp_url

    def traces(self, service: str) -> list[dict[str, Any]]:
        found = _get(f"{self.query_url}/api/traces?service={service}&limit=100")
        return list(found["data"] or []) if found else []


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    binary = jaeger_binary()
    assert binary.exists(), f"no Jaeger at {binary}: ops/install.sh builds it"
    query, query_grpc, otlp = free_port(), free_port(), free_port()
    config = tmp_path / "jaeger.yaml"
    config.write_text(_CONFIG.format(query=query, query_grpc=query_grpc, otlp=otlp))
    with (tmp_path / "jaeger.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(binary), "--config", f"file:{config}"], stdout=log, stderr=log, cwd=tmp_path
        )
    try:
        found = Jaeger(f"http://127.0.0.1:{query}", f"http://127.0.0.1:{otlp}")
        _until(lambda: _get(f"{found.query_url}/api/services"), "Jaeger's query API", 20)
        yield found
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _action_line() -> str:
    return json.dumps(
        {
            "eventType": "kernelAction",
            "actor": "svc",
            "subject": "acct-traced",
            "body": {"action": "payments.transfer", "context": {"amount": 1}},
        }
    )


def _spans_by_service(trace: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        service = trace["processes"][span["processID"]]["serviceName"]
        out.setdefault(service, []).append(span)
    return out


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


STAGES = ("kernel-cli", "kernel-sentinel", "kernel-signer", "kernel-audit-projector")


def _chain(trace: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A span of each stage, each the child of the one before (projector last), or None."""
    by_service = _spans_by_service(trace)
    for last in by_service.get(STAGES[-1], []):
        chain = [last]
        while len(chain) < len(STAGES):
            parent = _parent(chain[-1])
            stage = STAGES[len(STAGES) - 1 - len(chain)]
            found = [s for s in by_service.get(stage, []) if s["spanID"] == parent]
            if not found:
                break
            chain.append(found[0])
        if len(chain) == len(STAGES):
            return chain[::-1]
    return None


def _complete(jaeger: Jaeger) -> dict[str, Any] | None:
    """The projector's trace once it holds the whole chain of spans (all exported)."""
    for trace in jaeger.traces(STAGES[-1]):
        if _chain(trace) is not None:
            return trace
    return None


def test_one_trace_follows_an_action_from_its_producer_into_postgres(
    audit_kernel: Kernel, jaeger: Jaeger, tmp_path: Path
) -> None:
    kernel = audit_kernel
    kernel.topic_admin().ensure()
    env = settings_env(kernel.settings)
    env.update(
        KERNEL_STATE_DIR=str(tmp_path),
        KERNEL_SIGNING_KEY=str(kernel.settings.signing_key),
        KERNEL_SIGNER_ID=kernel.settings.signer_id,
        KERNEL_METRICS_PORT="0",
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_url,
        OTEL_BSP_SCHEDULE_DELAY="200",  # export within 0.2 s, not the default 5 s
    )
    env.pop("KERNEL_TRACING", None)  # on by default once spans are exported
    workers: list[subprocess.Popen[bytes]] = []
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        for name in ("sentinel", "signer", "audit-projector"):
            with (logs / f"{name}.log").open("wb") as log:
                workers.append(
                    subprocess.Popen([KERNEL, "run", name], env=env, stdout=log, stderr=log)
                )
        src = tmp_path / "action.jsonl"
        src.write_text(_action_line() + "\n")
        published = subprocess.run(
            [KERNEL, "publish", str(src)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        try:
            trace = _until(lambda: _complete(jaeger), "a trace through all four stages", 25)
        except AssertionError:
            for path in sorted(logs.iterdir()):
                print(f"--- {path.name}\n{path.read_text()[-3000:]}")
            raise
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert {s["traceID"] for s in trace["spans"]} == {trace["traceID"]}  # one trace
    sent, sentinel, signer, projector = _chain(trace) or []
    assert _parent(sent) is None  # the producer started the trace
    by_service = _spans_by_service(trace)
    assert len(by_service["kernel-cli"]) == len(by_service["kernel-sentinel"]) == 1
    # The signer also signs the action itself (a child of the producer's span).
    assert sorted(_parent(s) or "" for s in by_service["kernel-signer"]) == sorted(
        [sent["spanID"], sentinel["spanID"]]
    )
    assert signer["operationName"].endswith(".policy-checks")
    assert projector["operationName"].endswith(".audit.chain")
    kinds = {s["spanID"]: _tag(s, "span.kind") for s in trace["spans"]}
    assert kinds[sent["spanID"]] == "producer"
    assert {kinds[s["spanID"]] for s in trace["spans"] if s is not sent} == {"consumer"}
    assert all(p.returncode == 0 for p in workers)  # SIGTERM: clean exits


def _tag(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)
