"""Tokens stored as hashes, the route rules, the gate's answers, the access log's budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.http.access import ANY, OPEN, RULES, Gate, Principal, Refusal, RoleMap, required_roles
from ops.http.access_log import Bucket
from ops.http.tokens import ROLES, TokenStore
from schemas.errors import ConfigError


def _scope(method: str, path: str, token: str | None = None) -> dict[str, Any]:
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    return {"type": "http", "method": method, "path": path, "headers": headers}


def test_a_token_is_never_stored_only_its_hash(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token, record = store.create("ci", ["producer"])
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text and token.split("_")[-1] not in text
    assert record.sha256 in text
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert store.verify(token) == record


def test_revoked_expired_unknown_and_altered_tokens_verify_as_nothing(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    live, _ = store.create("a", ["checker"])
    short, rec = store.create("b", ["checker"], ttl_s=60)
    assert store.verify(short, now=rec.created_at + 30) is not None
    assert store.verify(short, now=rec.created_at + 61) is None  # expired
    assert store.verify(live[:-1] + ("A" if live[-1] != "A" else "B")) is None  # altered
    assert store.verify("kt_00000000_" + "x" * 43) is None  # unknown id
    assert store.verify("not-a-token") is None
    store.revoke("a")
    fresh = TokenStore(tmp_path / "tokens.json")  # what a running API rereads
    assert fresh.verify(live) is None


def test_token_creation_refuses_unknown_roles_and_duplicate_names(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(ConfigError, match="unknown role"):
        store.create("x", ["root"])
    store.create("x", ["auditor"])
    with pytest.raises(ConfigError, match="exists"):
        store.create("x", ["auditor"])


def test_health_alone_is_open_and_an_unknown_route_is_refused_to_everyone() -> None:
    assert required_roles("GET", "/health") == OPEN
    assert [r for m, p, r in RULES if r == OPEN] == [OPEN]
    assert required_roles("GET", "/admin/secret") is None
    assert required_roles("DELETE", "/nowhere") is None
    # another method of a known route: its roles, so routing can answer 405
    assert required_roles("GET", "/sentinel/check") == frozenset({"checker"})


@given(st.text(min_size=1, max_size=40).map(lambda s: "/" + s))
def test_no_path_outside_the_rules_is_ever_open(path: str) -> None:
    roles = required_roles("GET", path)
    assert roles != OPEN or path == "/health"


def test_the_gate_answers_401_403_or_the_principal(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    auditor, _ = store.create("aud", ["auditor"])
    gate = Gate(store)
    assert gate.admit(_scope("GET", "/health")) is None
    none = gate.admit(_scope("GET", "/audit/chains"))
    assert isinstance(none, Refusal) and none.status == 401
    bad = gate.admit(_scope("GET", "/audit/chains", "kt_deadbeef_nope"))
    assert isinstance(bad, Refusal) and bad.status == 401
    ok = gate.admit(_scope("GET", "/audit/chains", auditor))
    assert ok == Principal("token:aud", frozenset({"auditor"}), "token")
    wrong = gate.admit(_scope("POST", "/sentinel/check", auditor))
    assert isinstance(wrong, Refusal) and wrong.status == 403 and wrong.principal == ok
    assert "checker" in wrong.reason
    basic = gate.admit(
        {**_scope("GET", "/audit/chains"), "headers": [(b"authorization", b"Basic x")]}
    )
    assert isinstance(basic, Refusal) and basic.status == 401


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reaches_exactly_the_routes_its_rules_name(tmp_path: Path, role: str) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token, _ = store.create(f"holder-{role}", [role])
    gate = Gate(store)
    for method, path, roles in RULES:
        concrete = path + "x" if path.endswith("/") else path
        admitted = gate.admit(_scope(method, concrete, token))
        if roles == OPEN or role in roles:
            assert isinstance(admitted, Principal), (role, method, path, admitted)
        else:
            assert isinstance(admitted, Refusal) and admitted.status == 403, (role, path)


def test_the_roles_file_maps_certificate_identities(tmp_path: Path) -> None:
    path = tmp_path / "roles.json"
    path.write_text(json.dumps({"identities": {"cert:spiffe://k/p": ["producer"]}}))
    assert RoleMap.load(path).roles_of("cert:spiffe://k/p") == frozenset({"producer"})
    path.write_text(json.dumps({"identities": {"cert:x": ["superuser"]}}))
    with pytest.raises(ConfigError, match="unknown role"):
        RoleMap.load(path)
    path.write_text("{")
    with pytest.raises(ConfigError, match="roles file"):
        RoleMap.load(path)


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = Bucket(rate=2.0, burst=5.0)
    assert sum(bucket.take(0.0) for _ in range(20)) == 5
    assert sum(bucket.take(1.0) for _ in range(20)) == 2  # one second refills two
    assert frozenset(ROLES) == ANY


def test_tokens_cli_writes_a_token_file_once_and_revokes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ops.cli import main

    tokens = tmp_path / "tokens.json"
    monkeypatch.setenv("KERNEL_TOKENS_FILE", str(tokens))
    monkeypatch.setenv("KERNEL_STATE_DIR", str(tmp_path))
    out = tmp_path / "auth" / "prom.token"
    argv = ["tokens", "create", "prom", "--role", "operator", "--out", str(out), "--if-missing"]
    assert main(argv) == 0
    first = out.read_text().strip()
    assert out.stat().st_mode & 0o777 == 0o600
    assert TokenStore(tokens).verify(first) is not None
    assert main(argv) == 0  # again: kept, not a second token
    assert out.read_text().strip() == first
    assert len(TokenStore(tokens).records()) == 1
    assert main(["tokens", "revoke", "prom"]) == 0
    assert TokenStore(tokens).verify(first) is None
    capsys.readouterr()
    assert main(["tokens", "list", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["state"] == "revoked" and first not in json.dumps(row)
