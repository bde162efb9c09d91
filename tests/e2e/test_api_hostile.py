"""Hostile requests to every route of a real ``kernel api``: a 4xx naming the parameter, never 5xx.

The API runs as an operator runs it (``kernel api``, uvicorn over a socket) on
a deployment with data (events chained and projected, so cursors and positions
are real). hypothesis generates each request with one parameter made hostile
-- NUL, lone surrogates and bytes that are not UTF-8 (percent-encoded, as they
arrive on the wire), huge numbers, forged cursors -- or a body of random
bytes, deep JSON, a wrong content type. Every answer must be below 500, JSON,
and, when it refuses the request, name the parameter it refused. The server's
log must hold no traceback at the end.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.http.app import create_app
from ops.http.audit import audit_router
from ops.http.sentinel_explain import explain_router
from ops.stack import LocalStack
from projections.migrate import migrate
from schemas.events import new_event
from streams.chain.keys import generate_key
from tests import identity
from tests.conftest import fresh_database
from tests.e2e.conftest import settings_env
from tests.e2e.test_api_workers import _free_port, _wait_up

HOSTILE = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Api:
    port: int
    cursor: str  # a real nextCursor
    position: str  # a real topic/partition@offset, projected


def _request(
    api: Api,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    try:
        conn.request(method, path, body, {**identity.AUTH, **(headers or {})})
        r = conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def _deploy(kernel: Kernel, tmp: Path) -> tuple[Kernel, str, str]:
    """Keys, a migrated database, events chained and projected: a real cursor and position."""
    migrate(kernel.settings.database_url)
    key = generate_key(tmp / "keys", "hostile-signer")
    kernel = Kernel(replace(kernel.settings, signing_key=key, signer_id="hostile-signer"))
    events = [
        new_event("kernelAction", "svc", f"acct-{i % 2}", {"action": "a", "context": {"i": i}})
        for i in range(4)
    ]
    positions = kernel.producer().publish_batch(events)
    for runner in (kernel.chain_signer(), kernel.audit_projector()):
        try:
            runner.run_until_idle(idle_s=1.0)
        finally:
            runner.close()
    app = create_app([audit_router(kernel.database())], gate=identity.gate())

    async def first_page() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://k", headers=identity.AUTH
        ) as c:
            return (await c.get("/audit/events?limit=1")).json()  # type: ignore[no-any-return]

    page = asyncio.run(first_page())
    assert page["nextCursor"], page
    return kernel, page["nextCursor"], str(positions[0])


@pytest.fixture(scope="module")
def api(
    stack: LocalStack, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """One server for every test here: its own topics and database, data in both."""
    settings = replace(base_settings, topic_prefix=f"t{uuid.uuid4().hex[:12]}.")
    with fresh_database(base_settings.database_url) as url:
        kernel = Kernel(replace(settings, postgres_url=url))
        kernel.topic_admin().ensure()
        kernel, cursor, position = _deploy(kernel, tmp_path_factory.mktemp("hostile"))
        port = _free_port()
        log = tmp_path_factory.mktemp("hostile-log") / "api.log"
        with log.open("w") as sink:  # a file, not a pipe: a pipe nobody reads fills and blocks
            server = subprocess.Popen(
                [str(Path(sys.executable).with_name("kernel")), "api", "--port", str(port)],
                env=settings_env(kernel.settings),
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                _wait_up(port, server)
                yield Api(port, cursor, position)
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(timeout=60)
        output = log.read_text()
        assert "Traceback" not in output, output[-4000:]


# -- hostile values -------------------------------------------------------------


def _slash(value: str | bytes) -> bool:
    return (b"/" if isinstance(value, bytes) else "/") in value  # type: ignore[operator]


def _enc(value: str | bytes) -> str:
    """Percent-encoded as it travels: text as UTF-8 (lone surrogates too), bytes as they are."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote(raw, safe="")


_any_text = st.text(st.characters(codec=None), max_size=60)  # surrogates and NUL included
_nul_text = st.builds(lambda a, b: f"{a}\x00{b}", _any_text, _any_text)
_surrogate_text = st.builds(
    lambda a, s, b: f"{a}{s}{b}", _any_text, st.characters(categories=["Cs"]), _any_text
)
_huge_numbers = st.integers(min_value=2**31 - 2).map(str) | st.integers(max_value=0).map(str)
hostile = st.one_of(
    _any_text,
    _nul_text,
    _surrogate_text,
    st.binary(max_size=60),
    _huge_numbers,
    st.sampled_from(["", " ", "-1", "1e999", "NaN", "0x10", "9" * 5000, "a" * 20_000]),
)


def _forged_cursor(real: str) -> st.SearchStrategy[str]:
    def cursor_of(value: Any) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")

    ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
    return st.one_of(
        st.builds(lambda t, c, s: cursor_of([t, c, s]), ints, _any_text.filter(_utf8), ints),
        st.builds(cursor_of, st.lists(ints | st.text(), max_size=4)),
        st.integers(0, len(real) - 1).map(lambda i: real[:i] + "!" + real[i + 1 :]),
        st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    )


def _utf8(s: str) -> bool:
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _assert_answered(status: int, body: Any, field: str | None) -> None:
    assert status < 500, (status, body)
    assert isinstance(body, dict), body
    if status in (400, 413, 415, 422):
        assert body.get("error") == "invalid request", body
        assert body.get("reason"), body
        if field is not None:
            assert body.get("field") == field, (field, body)


# -- the routes ------------------------------------------------------------------

AUDIT_PARAMS = (
    "eventType",
    "actor",
    "subject",
    "chain",
    "from",
    "to",
    "limit",
    "cursor",
    "after",
    "wait_ms",
)


@HOSTILE
@given(name=st.sampled_from(AUDIT_PARAMS), value=hostile, data=st.data())
def test_audit_events_answers_4xx_naming_the_parameter(
    api: Api, name: str, value: str | bytes, data: st.DataObject
) -> None:
    if name == "cursor":
        value = data.draw(st.one_of(st.just(value), _forged_cursor(api.cursor)))
    if name == "after":
        value = data.draw(
            st.one_of(
                st.just(value),
                st.builds(
                    lambda v: f"{api.position.split('@')[0]}@{v}", st.just(value) | _huge_numbers
                ),
            )
        )
    status, body = _request(api, "GET", f"/audit/events?{name}={_enc(value)}&wait_ms=0")
    if status == 504:  # read-your-writes past wait_ms: the documented answer, not a fault
        assert name == "after" and body["error"] == "not yet projected", body
        return
    # Text filters that are text match nothing (200); only the refused are 4xx.
    _assert_answered(status, body, name)


@HOSTILE
@given(value=hostile)
def test_a_real_cursor_and_position_still_work_beside_hostile_filters(
    api: Api, value: str | bytes
) -> None:
    status, body = _request(
        api,
        "GET",
        f"/audit/events?cursor={api.cursor}&after={_enc(api.position)}&actor={_enc(value)}",
    )
    _assert_answered(status, body, "actor")
    if status == 200:
        assert body["events"] == [] or all(e["event"]["actor"] for e in body["events"])


@HOSTILE
@given(
    query=st.lists(st.tuples(hostile, hostile), max_size=4),
    path=st.sampled_from(["/audit/chains", "/policies"]),
)
def test_parameterless_routes_ignore_any_query(
    api: Api, query: list[tuple[Any, Any]], path: str
) -> None:
    qs = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in query)
    target = f"{path}?{qs}"
    status, body = _request(api, "GET", target)
    if len(target) > 65_400:  # at the server's HTTP parser's 64 KiB: refused, as JSON
        if len(target) > 65_536 or status != 200:
            assert (status, body["field"]) == (400, "request"), (status, body)
        return
    assert status == 200, (status, body)
    if path == "/audit/chains":
        assert sum(c["length"] for c in body["chains"]) == 4


@HOSTILE
@given(value=hostile)
def test_policies_by_id(api: Api, value: str | bytes) -> None:
    if value in ("", b""):
        value = "x"
    status, body = _request(api, "GET", f"/policies/{_enc(value)}")
    if status == 307 and _slash(value):
        return  # "/policies/<a>/" is the collection's URL with a slash: a redirect, no error
    _assert_answered(status, body, "policyId")
    assert status in (404, 422), (status, body)


@HOSTILE
@given(
    check_id=hostile | st.uuids().map(str),
    wait_ms=st.none() | hostile | st.integers(0, 20).map(str),
)
def test_explain(api: Api, check_id: str | bytes, wait_ms: str | bytes | None) -> None:
    if check_id in ("", b""):
        check_id = "x"
    query = "" if wait_ms is None else f"?wait_ms={_enc(wait_ms)}"
    status, body = _request(api, "GET", f"/sentinel/explain/{_enc(check_id)}{query}")
    if status in (307, 404) and _slash(check_id):
        return  # the decoded path has another segment: the router's redirect or not found
    assert status in (404, 422), (status, body)
    _assert_answered(status, body, None)
    if status == 422:
        assert body["field"] in ("policyCheckId", "wait_ms"), body


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()  # integers of any size, lone surrogates escaped


def _deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        inner = b"[" * depth + b"]" * depth
    else:
        inner = b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"action": "a", "context": {"x": ' + inner + b"}}"


_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(_deep, st.integers(1, 20_000), st.sampled_from(["array", "object"])),
    _any_text.map(
        lambda s: orjson.dumps({"action": "a", "actor": "x"}).replace(
            b'"x"', json.dumps(s).encode()
        )
    ),
    st.dictionaries(
        st.sampled_from(["action", "actor", "context", "requestId", "subject", "junk"]),
        st.none() | st.integers() | _any_text.filter(_utf8) | st.lists(st.integers(), max_size=3),
    ).map(_json_bytes),
    st.sampled_from([b"", b" ", b"{}", b"null", b'{"action": "a"}' + b"\xff", b"\xef\xbb\xbf{}"]),
)
_content_types = st.sampled_from(
    [None, "application/json", "application/json; charset=utf-8", "text/plain",
     "application/x-www-form-urlencoded", "application/json; charset=latin-1", "",
     "application/problem+json", "application/json; charset=",
     'APPLICATION/JSON;CHARSET="UTF-8"']
)  # fmt: skip


@HOSTILE
@given(body=_bodies, content_type=_content_types)
def test_check_framing(api: Api, body: bytes, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    status, answer = _request(api, "POST", "/sentinel/check", body, headers)
    assert status in (200, 400, 413, 415, 422), (status, answer)
    _assert_answered(status, answer, None)
    if status == 415:
        assert answer["field"] == "content-type"
    if status == 200:
        assert answer["policyCheckId"] and answer["decision"] == "allow"


NUL_CURSOR = orjson.dumps([1, "c\x00", 1])
FAR_CURSOR = orjson.dumps([2**62, "c", 1])  # a timestamp Postgres cannot hold


def test_known_500s_of_issue_9_are_4xx(api: Api) -> None:
    """The requests issue 9 saw answered 500, each one by name."""
    cases = [
        ("GET", "/audit/events?actor=a%00b", None, (422, "actor")),
        ("GET", "/audit/events?eventType=%00", None, (422, "eventType")),
        (
            "GET",
            "/audit/events?cursor=" + _enc(base64.urlsafe_b64encode(NUL_CURSOR)),
            None,
            (422, "cursor"),
        ),
        (
            "GET",
            "/audit/events?cursor=" + _enc(base64.urlsafe_b64encode(FAR_CURSOR)),
            None,
            (422, "cursor"),
        ),
        ("GET", "/audit/events?after=t/1@99999999999999999999999", None, (422, "after")),
        ("GET", "/policies/a%00b", None, (422, "policyId")),
        ("GET", "/sentinel/explain/%00", None, (422, "policyCheckId")),
        ("POST", "/sentinel/check", b'{"action": "\xff"}', (400, None)),
        ("POST", "/sentinel/check", _deep(995, "array"), (422, "context.x" + "[0]" * 29)),
        ("POST", "/sentinel/check", b'{"action": "a"}', (415, "content-type")),
    ]
    for method, path, body, (want, field) in cases:
        headers = (
            {"content-type": "text/plain"} if want == 415 else {"content-type": "application/json"}
        )
        status, answer = _request(api, method, path, body, headers)
        assert status == want, (path, body, status, answer)
        assert answer["field"] == field, (path, answer)


def test_a_database_that_is_down_is_503_not_500(kernel: Kernel) -> None:
    down = Kernel(replace(kernel.settings, postgres_url="postgresql://kernel@127.0.0.1:1/none"))
    app = create_app(
        [audit_router(down.database()), explain_router(down.database())], gate=identity.gate()
    )

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://k", headers=identity.AUTH
        ) as c:
            return [
                await c.get(p)
                for p in ("/audit/events", "/audit/chains", "/policies", "/policies/p",
                          f"/sentinel/explain/{uuid.uuid4()}")
            ]  # fmt: skip

    for r in asyncio.run(go()):
        assert r.status_code == 503, (r.request.url, r.text)
        assert r.headers["retry-after"] == "1"
        assert r.json()["dependency"] == "postgres"


def test_a_request_line_over_the_parsers_limit_is_a_json_400(api: Api) -> None:
    status, body = _request(api, "GET", "/audit/chains?=" + "a" * 80_000)
    assert status == 400, (status, body)
    assert body["field"] == "request" and "64 KiB" in body["reason"]
