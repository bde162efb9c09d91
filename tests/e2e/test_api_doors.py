"""Every route x every role x every kind of identity, at a real ``kernel api`` over mutual TLS.

The expected outcome of each request is derived from :data:`WHO_MAY`, a table
written here from the access policy as documented (docs and issue 11), not
from :mod:`ops.http.access`: a change to the gate's rules that this table does
not make fails here. Outcomes:

- ``allowed``: past the door (any answer but 401/403; never 5xx);
- ``401``: no identity, or a revoked token -- even beside a role's good client
  certificate (``WWW-Authenticate`` set);
- ``403``: an identity without a role the route needs;
- ``handshake``: a client certificate of another CA, or expired, is refused
  by TLS before any HTTP (whatever else the request carries).

Each role knocks twice: with its bearer token and with its client certificate
(``cert:spiffe://kernel/<role>`` in the roles file). One server, one
keep-alive connection per identity.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time

from tests.certs import Issued
from tests.e2e.doors import Doors

ROLES = (
    "producer",
    "checker",
    "auditor",
    "policy-author",
    "approver",
    "operator",
    "security-admin",
)
EVERYONE = frozenset(ROLES)
OPEN = None  # no identity needed
NOBODY: frozenset[str] = frozenset()  # no role may

POLICY_READERS = frozenset({"policy-author", "approver", "auditor", "operator"})
WHO_MAY: dict[tuple[str, str], frozenset[str] | None] = {
    ("GET", "/health"): OPEN,
    ("POST", "/sentinel/check"): frozenset({"checker"}),
    ("POST", "/events"): frozenset({"producer"}),
    ("GET", "/sentinel/explain/{policy_check_id}"): frozenset({"checker", "auditor"}),
    ("GET", "/policies"): POLICY_READERS,
    ("GET", "/policies/{policy_id}"): POLICY_READERS,
    ("GET", "/audit/events"): frozenset({"auditor"}),
    ("GET", "/audit/chains"): frozenset({"auditor"}),
    # k-of-n approvals (issue 12.3): the approvers list requests and submit signatures
    ("GET", "/approvals/requests"): frozenset({"approver"}),
    ("GET", "/approvals/requests/{request_id}"): frozenset({"approver"}),
    ("POST", "/approvals/requests/{request_id}/approvals"): frozenset({"approver"}),
    # simulation reports (issue 12.1): who writes policies and who audits them
    ("GET", "/sentinel/simulations"): frozenset({"policy-author", "auditor"}),
    ("GET", "/sentinel/simulations/{simulation_id}"): frozenset({"policy-author", "auditor"}),
    ("GET", "/metrics"): frozenset({"operator"}),
    ("GET", "/ready"): frozenset({"operator"}),
    ("GET", "/openapi.json"): EVERYONE,
    ("GET", "/docs"): EVERYONE,
    ("GET", "/docs/oauth2-redirect"): EVERYONE,
    ("GET", "/redoc"): EVERYONE,
    # not routes, under no rule: refused to everyone ...
    ("GET", "/admin"): NOBODY,
    ("POST", "/admin/keys"): NOBODY,
    # ... but another method of a rule's path (or under its prefix) is for the rule's
    # roles to be told 405 (or 404)
    ("DELETE", "/audit/chains"): frozenset({"auditor"}),
    ("POST", "/audit/keys"): frozenset({"auditor"}),
    ("GET", "/sentinel/check"): frozenset({"checker"}),
}
NOT_READY = ("GET", "/ready")  # 503 is its answer "not ready": this deployment runs no workers
CONCRETE = {
    "{policy_check_id}": "6f1d0c3e-6a53-4b8e-9f7e-0d7f2b8c1a11",
    "{policy_id}": "deny-big",
    "{request_id}": "6f1d0c3e-6a53-4b8e-9f7e-0d7f2b8c1a12",
    "{simulation_id}": "6f1d0c3e-6a53-4b8e-9f7e-0d7f2b8c1a13",
}


def expected(route: tuple[str, str], who: str) -> str:
    """The outcome the table says ``who`` gets at ``route``."""
    if who in ("wrong-ca", "expired"):
        return "handshake"
    roles = WHO_MAY[route]
    if roles is OPEN:
        return "allowed"
    if who in ("none", "revoked") or who.startswith("cert+revoked:"):
        return "401"
    role = who.split(":", 1)[1]
    return "allowed" if role in roles else "403"


IDENTITIES = [
    "none",
    "revoked",
    "wrong-ca",
    "expired",
    *(f"token:{r}" for r in ROLES),
    *(f"cert:{r}" for r in ROLES),
    *(f"cert+revoked:{r}" for r in ROLES),
]


def _concrete(path: str) -> str:
    for template, value in CONCRETE.items():
        path = path.replace(template, value)
    return path


class Knocker:
    """One identity's keep-alive connection (reopened when the server closes it)."""

    def __init__(self, doors: Doors, cert: Issued | None, token: str | None) -> None:
        self.doors = doors
        self.context = doors.context(cert)
        self.headers = {} if token is None else {"authorization": f"Bearer {token}"}
        self.conn: http.client.HTTPSConnection | None = None

    def knock(self, method: str, path: str) -> tuple[str, int | None, dict[str, str]]:
        body = b"{}" if method == "POST" else None
        headers = {**self.headers, "content-type": "application/json"}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.doors.port, context=self.context, timeout=30
                )
            try:
                self.conn.request(method, path, body, headers)
                r = self.conn.getresponse()
                r.read()
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                self.close()
                return "handshake", None, {}
            except http.client.RemoteDisconnected:
                self.close()
                if attempt:
                    raise
                continue
            if r.getheader("connection", "").lower() == "close":
                self.close()
            outcome = str(r.status) if r.status in (401, 403) else "allowed"
            return outcome, r.status, {k.lower(): v for k, v in r.getheaders()}
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _knocker(doors: Doors, who: str) -> Knocker:
    if who == "none":
        return Knocker(doors, None, None)
    if who == "revoked":
        return Knocker(doors, None, doors.tokens["revoked"])
    if who in ("wrong-ca", "expired"):  # with a valid token too: TLS refuses first
        return Knocker(doors, doors.certs[who], doors.tokens["auditor"])
    kind, role = who.split(":", 1)
    if kind == "cert+revoked":
        return Knocker(doors, doors.certs[role], doors.tokens["revoked"])
    if kind == "token":
        return Knocker(doors, None, doors.tokens[role])
    return Knocker(doors, doors.certs[role], None)


def test_every_route_role_and_identity_gets_exactly_what_the_table_says(doors: Doors) -> None:
    started = time.monotonic()
    wrong: list[str] = []
    sent = 0
    for who in IDENTITIES:
        knocker = _knocker(doors, who)
        try:
            for route in WHO_MAY:
                method, template = route
                outcome, status, headers = knocker.knock(method, _concrete(template))
                sent += 1
                want = expected(route, who)
                if outcome != want:
                    wrong.append(f"{method} {template} as {who}: {outcome} ({status}), want {want}")
                if status is not None and status >= 500 and (status, route) != (503, NOT_READY):
                    wrong.append(f"{method} {template} as {who}: {status}")
                if status == 401 and "bearer" not in headers.get("www-authenticate", "").lower():
                    wrong.append(f"{method} {template} as {who}: 401 without WWW-Authenticate")
        finally:
            knocker.close()
    assert not wrong, "\n".join(wrong)
    assert sent == len(IDENTITIES) * len(WHO_MAY)
    print(f"\n{sent} requests, {time.monotonic() - started:.1f} s")


def test_the_table_names_every_operation_the_document_publishes(doors: Doors) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", doors.port, context=doors.context())
    try:
        conn.request("GET", "/openapi.json", headers=_knocker(doors, "token:auditor").headers)
        doc = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    published = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert published <= set(WHO_MAY), published - set(WHO_MAY)
    for (method, path), roles in WHO_MAY.items():
        if (method, path) in published:  # the document says who may, as the table does
            op = doc["paths"][path][method.lower()]
            if roles is OPEN:
                assert op["security"] == [], path
            else:
                assert sorted(op["x-kernel-roles"]) == sorted(roles), path
    # the limits and errors it enforces
    ops = {(m.upper(), p): op for p, by in doc["paths"].items() for m, op in by.items()}
    check = ops["POST", "/sentinel/check"]["requestBody"]["content"]["application/json"]
    action = check["schema"]["properties"]["action"]
    assert (action["minLength"], action["maxLength"]) == (1, 512)
    assert check["schema"]["additionalProperties"] is False
    assert "65536 bytes" in ops["POST", "/sentinel/check"]["requestBody"]["description"]
    assert "8388608 bytes" in ops["POST", "/events"]["requestBody"]["description"]
    events = ops["POST", "/events"]["requestBody"]["content"]["application/json"]["schema"]
    assert events["oneOf"][1]["properties"]["events"]["maxItems"] == 500
    for route in [("GET", "/audit/events"), ("GET", "/policies/{policy_id}")]:
        assert {"401", "403", "422", "503"} <= set(ops[route]["responses"]), route
    assert {"400", "413", "415", "422", "503"} <= set(ops["POST", "/events"]["responses"])
    error = ops["GET", "/audit/events"]["responses"]["422"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_a_refused_handshake_leaves_the_server_serving(doors: Doors) -> None:
    """A refused handshake is the TLS layer's, before the app: nothing of it is a 5xx or a
    traceback (the fixture checks the log at the end), and the server still serves."""
    for who in ("wrong-ca", "expired", "none"):
        knocker = _knocker(doors, who)
        try:
            outcome, status, _ = knocker.knock("GET", "/health")
        finally:
            knocker.close()
        assert (outcome, status) == (("allowed", 200) if who == "none" else ("handshake", None))


def _post(doors: Doors, role: str, path: str, body: object) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPSConnection("127.0.0.1", doors.port, context=doors.context())
    try:
        headers = {"authorization": f"Bearer {doors.tokens[role]}"}
        headers["content-type"] = "application/json"
        conn.request("POST", path, json.dumps(body), headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_an_event_whose_context_is_not_an_object_is_refused_naming_it(doors: Doors) -> None:
    """Found by schemathesis: POST /events published ``"context": [null, null]`` (200),
    which the rules then read as an empty context; the check refuses it (422)."""
    one = {"eventType": "kernelAction", "subject": "s", "body": {"action": "a"}}
    for context, where in (([None, None], ""), ("x", ""), (3, "events[1].")):
        bad = {**one, "body": {"action": "a", "context": context}}
        body: object = {"events": [one, bad]} if where else bad
        status, answer = _post(doors, "producer", "/events", body)
        assert (status, answer["field"]) == (422, f"{where}body.context"), answer
    assert (
        _post(doors, "producer", "/events", {**one, "body": {"action": "a", "context": {}}})[0]
        == 200
    )
    status, answer = _post(doors, "checker", "/sentinel/check", {"action": "a", "context": []})
    assert (status, answer["field"]) == (422, "context")


def test_an_event_id_that_is_not_a_uuid_is_refused_not_replaced(doors: Doors) -> None:
    """Found by schemathesis: ``"eventId": 0`` (or false, or "") was read as no id and
    published under a random one -- a producer's retry then published the event twice."""
    one = {"eventType": "kernelAction", "subject": "s", "body": {"action": "a"}}
    for bad in (0, False, "", [], {}):
        status, answer = _post(doors, "producer", "/events", {**one, "eventId": bad})
        assert (status, answer["field"]) == (422, "eventId"), (bad, answer)
    status, answer = _post(doors, "producer", "/events", {"events": [one, {**one, "eventId": 0}]})
    assert (status, answer["field"]) == (422, "events[1].eventId"), answer
    for fine in (None, "6F1D0C3E-6A53-4B8E-9F7E-0D7F2B8C1A12"):  # null: the server makes one
        assert _post(doors, "producer", "/events", {**one, "eventId": fine})[0] == 200, fine
