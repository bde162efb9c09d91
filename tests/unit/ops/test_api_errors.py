"""How the API answers errors: 4xx for the request's fault, 503 for a dependency, 500 logged."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import APIRouter, Query

from ops.http.app import create_app
from schemas.errors import ConfigError, LogUnavailableError, StoreUnavailableError, ValidationError
from tests import identity


def app_raising() -> httpx.AsyncClient:
    router = APIRouter()

    @router.get("/invalid")
    async def invalid() -> None:
        raise ValidationError("bad", field="actor")

    @router.get("/store")
    async def store() -> None:
        raise StoreUnavailableError("Postgres at secret-host did not answer")

    @router.get("/log")
    async def log() -> None:
        raise LogUnavailableError("Kafka did not answer")

    @router.get("/config")
    async def config() -> None:
        raise ConfigError("misconfigured")

    @router.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug with a secret in it")

    @router.get("/typed")
    async def typed(limit: int = Query(1, ge=1, le=10)) -> dict[str, int]:
        return {"limit": limit}

    app = create_app([router], gate=identity.gate(every_route=True))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://kernel", headers=identity.AUTH)


def get(*paths: str) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with app_raising() as c:
            return [await c.get(p) for p in paths]

    return asyncio.run(go())


def test_a_validation_error_is_422_naming_the_field() -> None:
    (r,) = get("/invalid")
    assert r.status_code == 422
    assert r.json() == {"error": "invalid request", "field": "actor", "reason": "bad"}


def test_frameworks_validation_is_422_naming_the_parameter_without_echoing_it() -> None:
    huge, word = get("/typed?limit=" + "9" * 50, "/typed?limit=%00abc")
    for r in (huge, word):
        assert r.status_code == 422
        body = r.json()
        assert body["field"] == "limit" and body["reason"]
        assert body["detail"][0]["loc"] == ["query", "limit"]
    assert "9" * 50 not in huge.text and "abc" not in word.text


def test_a_dependency_down_is_503_with_retry_after_and_no_internals() -> None:
    store, log = get("/store", "/log")
    assert (store.status_code, log.status_code) == (503, 503)
    assert store.headers["retry-after"] == log.headers["retry-after"] == "1"
    assert (store.json()["dependency"], log.json()["dependency"]) == ("postgres", "kafka")
    assert "secret-host" not in store.text


def test_a_server_fault_is_500_logged_with_its_cause(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ops.http.errors"):
        bug, config = get("/bug", "/config")
    assert (bug.status_code, config.status_code) == (500, 500)
    assert bug.json()["error"] == "internal error"
    assert "secret" not in bug.text  # the cause is in the log, not the answer
    logged = [r for r in caplog.records if r.name == "ops.http.errors"]
    assert any(r.exc_info and "a bug with a secret" in str(r.exc_info[1]) for r in logged)
