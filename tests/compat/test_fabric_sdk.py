#!/usr/bin/env python3
"""Compatibility suite: the unmodified ``signalwire-sdk==3.7.5`` against a running Tessera.

Every row of ``docs/fabric-api.md`` §12 is exercised through the real SDK, with the §13
resolutions treated as decisions. Checks the SDK cannot express (Bearer auth, requests
without credentials, malformed bodies) use plain ``requests``.

Environment (all required):
    TESSERA_HOST          ``127.0.0.1:PORT`` of a running ``tessera serve``. The SDK only
                          speaks plain http to loopback names, so it must be 127.0.0.1.
    TESSERA_BIN           path of the ``tessera`` binary, used to create fixtures.
    TESSERA_DATABASE_URL  the database that server uses, e.g. ``sqlite:///tmp/x/tessera.db``.
    TESSERA_MASTER_KEY    passed through to the admin CLI with the rest of the environment.

Run: ``python tests/compat/test_fabric_sdk.py`` (exits non-zero on any failure).
"""

import base64
import json
import os
import subprocess
import time
import unittest
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, NamedTuple

import requests
from signalwire.rest import RestClient, SignalWireRestError

# Filled in by setUpModule so that merely importing the file (py_compile, IDEs) needs no env.
HOST = BIN = DATABASE_URL = BASE_URL = ""

# A suffix that keeps names unique when the suite runs twice against the same database.
RUN = uuid.uuid4().hex[:8]

UNAUTHORIZED = {"error": "Unauthorized"}
NOT_FOUND = {"error": "Not Found"}
BAD_REQUEST = {"error": "Bad Request"}
ZERO_UUID = "00000000-0000-0000-0000-000000000000"

# §9: an error item always carries exactly these keys (attribute may be null).
ERROR_ITEM_KEYS = {"type", "code", "message", "attribute", "url"}
# §6.1: the inner subscriber object emits every profile key (region is optional).
SUBSCRIBER_KEYS = {"id", "email", "first_name", "last_name", "display_name", "job_title",
                   "timezone", "country", "company_name"}
RESOURCE_KEYS = {"id", "project_id", "display_name", "type", "created_at", "updated_at"}
ADDRESS_KEYS = {"id", "name", "display_name", "type", "cover_url", "preview_url", "locked",
                "channels", "created_at"}

# A TestCase used only for its assert methods, so module-level helpers (which also run
# inside setUpClass, where there is no test instance) report failures the unittest way.
T = unittest.TestCase()
T.maxDiff = None

# ---------------------------------------------------------------------------------------
# Wire recording. Every HTTP response -- from SDK clients and from raw requests -- passes
# through this hook. That is how the suite sees the exact status of a *successful* SDK
# call (the SDK returns only the parsed body) and checks X-Request-Id on every response.
# ---------------------------------------------------------------------------------------
WIRE: list[requests.Response] = []
_checked_upto = 0  # WIRE index up to which X-Request-Id has been verified


def _record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    WIRE.append(response)


def unchecked_responses_without_request_id() -> list[str]:
    """Responses since the previous call that lack X-Request-Id, described for a message."""
    global _checked_upto
    fresh = WIRE[_checked_upto:]
    _checked_upto = len(WIRE)
    return [f"{r.request.method} {r.url} -> {r.status_code}"
            for r in fresh if not r.headers.get("X-Request-Id")]


# trust_env=False: no ~/.netrc credentials or proxies sneak into the "no auth" checks.
RAW = requests.Session()
RAW.trust_env = False
RAW.hooks["response"].append(_record)


def sdk_client(project_id: str, token: str) -> RestClient:
    """A real SDK client whose responses are recorded in WIRE."""
    client = RestClient(project=project_id, token=token, host=HOST)
    client._http._session.hooks["response"].append(_record)
    return client


# ---------------------------------------------------------------------------------------
# Fixtures through the admin CLI: each command prints one JSON object on stdout.
# ---------------------------------------------------------------------------------------
def admin(*args: str) -> dict:
    cmd = [BIN, "admin", *args, "--database", DATABASE_URL]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(f"{' '.join(cmd)} did not print one JSON object: {proc.stdout!r}") from exc


class Project(NamedTuple):
    id: str
    token: str
    client: RestClient

    @property
    def basic(self) -> tuple[str, str]:
        return (self.id, self.token)


def new_project(label: str) -> Project:
    out = admin("project", "create", "--name", f"compat-{label}-{RUN}")
    return Project(out["project_id"], out["api_token"], sdk_client(out["project_id"], out["api_token"]))


def new_embed(project: Project, *address_ids: str) -> str:
    """A c2c_ widget token for the given addresses."""
    args = ["embed", "create", "--project", project.id]
    for address_id in address_ids:
        args += ["--address", address_id]
    out = admin(*args)
    T.assertTrue(out["token"].startswith("c2c_"), out)
    return out["token"]


# ---------------------------------------------------------------------------------------
# Call helpers and shape assertions.
# ---------------------------------------------------------------------------------------
def ok(status: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an SDK method, assert the HTTP status it got back, return the parsed body."""
    mark = len(WIRE)
    result = fn(*args, **kwargs)
    T.assertGreater(len(WIRE), mark, "the SDK call made no HTTP request")
    last = WIRE[-1]
    T.assertEqual(last.status_code, status, f"{last.request.method} {last.url}: {last.text}")
    return result


def err(status: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> SignalWireRestError:
    """Call an SDK method that must fail with `status`; return the SDK's error."""
    try:
        result = fn(*args, **kwargs)
    except SignalWireRestError as e:
        # status_code is None for transport failures, which also lands here as a mismatch.
        T.assertEqual(e.status_code, status, str(e))
        T.assertTrue(e.request_id, f"no request id exposed by the SDK for {e}")
        content_type = {k.lower(): v for k, v in (e.headers or {}).items()}.get("content-type", "")
        T.assertTrue(content_type.startswith("application/json"), f"content-type {content_type!r}")
        return e
    raise AssertionError(f"expected HTTP {status}, the call succeeded with {result!r}")


def assert_422(body: Any, code: str, attribute: str | None) -> None:
    """§9: a closed {"errors": [...]} envelope containing an item with this code/attribute."""
    T.assertIsInstance(body, dict, body)
    T.assertEqual(set(body), {"errors"}, body)  # no stray "statusCode" (§1.2)
    T.assertTrue(body["errors"], body)
    for item in body["errors"]:
        T.assertEqual(set(item), ERROR_ITEM_KEYS, item)
        T.assertEqual(item["type"], "validation_error", item)
        T.assertIsInstance(item["message"], str)
        T.assertIsInstance(item["url"], str)
    T.assertIn((code, attribute), [(i["code"], i["attribute"]) for i in body["errors"]], body)


def err_422(code: str, attribute: str | None, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    assert_422(err(422, fn, *args, **kwargs).body, code, attribute)


def assert_uuid(value: Any) -> None:
    T.assertIsInstance(value, str)
    uuid.UUID(value)


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def assert_jwe(token: Any, typ: str) -> dict:
    """§10: compact JWE, `dir` + A256GCM, so the encrypted-key part is empty; 12-byte IV and
    16-byte tag. The protected header is plain base64url JSON and `typ` tells SAT from Refresh."""
    T.assertIsInstance(token, str)
    parts = token.split(".")
    T.assertEqual(len(parts), 5, token)
    T.assertEqual(parts[1], "", "encrypted-key part must be empty for alg=dir")
    T.assertEqual(len(parts[2]), 16, "IV must be 12 bytes")
    T.assertEqual(len(parts[4]), 22, "tag must be 16 bytes")
    T.assertTrue(parts[3], "ciphertext must not be empty")
    header = b64url_json(parts[0])
    T.assertEqual(header["alg"], "dir", header)
    T.assertEqual(header["enc"], "A256GCM", header)
    T.assertEqual(header["typ"], typ, header)
    return header


def assert_token_pair(res: Any) -> None:
    T.assertEqual(set(res), {"token", "refresh_token"}, res)
    assert_jwe(res["token"], "SAT")
    assert_jwe(res["refresh_token"], "Refresh")


def assert_envelope(page: Any) -> list:
    """§8: {"data": [...], "links": {"self", "first", ...}}; returns data."""
    T.assertIsInstance(page, dict, page)
    T.assertIsInstance(page.get("data"), list, page)
    T.assertIsInstance(page.get("links"), dict, page)
    T.assertTrue(page["links"].get("self"), page["links"])
    T.assertTrue(page["links"].get("first"), page["links"])
    return page["data"]


def assert_address(address: Any, type_: str) -> None:
    T.assertTrue(ADDRESS_KEYS <= set(address), address)
    assert_uuid(address["id"])
    T.assertEqual(address["type"], type_, address)
    T.assertIsInstance(address["locked"], bool)
    T.assertIsInstance(address["channels"], dict)


def assert_subscriber(res: Any, project_id: str) -> None:
    """§6.1 SubscriberResponse: resource envelope with a nested `subscriber`."""
    T.assertTrue(RESOURCE_KEYS | {"subscriber"} <= set(res), res)
    assert_uuid(res["id"])
    T.assertEqual(res["type"], "subscriber")
    T.assertEqual(res["project_id"], project_id)
    T.assertTrue(res["created_at"].endswith("Z"), res["created_at"])
    T.assertTrue(SUBSCRIBER_KEYS <= set(res["subscriber"]), res["subscriber"])
    assert_uuid(res["subscriber"]["id"])


def subscriber_address(project: Project, subscriber_id: str) -> dict:
    """The one address every subscriber gets (§7), via S6."""
    data = assert_envelope(ok(200, project.client.fabric.subscribers.list_addresses, subscriber_id))
    addresses = [a for a in data if a.get("type") == "subscriber"]
    T.assertEqual(len(addresses), 1, data)
    return addresses[0]


def room_address(project: Project, room_id: str) -> dict:
    """A conference room's address, via the generic A3 endpoint."""
    data = assert_envelope(ok(200, project.client.fabric.resources.list_addresses, room_id))
    addresses = [a for a in data if a.get("type") == "room"]
    T.assertEqual(len(addresses), 1, data)
    return addresses[0]


def new_sat(project: Project, label: str, **kwargs: Any) -> dict:
    reference = f"{label}-{RUN}@example.com"
    res = ok(200, project.client.fabric.tokens.create_subscriber_token, reference=reference, **kwargs)
    T.assertEqual(set(res), {"subscriber_id", "token", "refresh_token"}, res)
    assert_uuid(res["subscriber_id"])
    return res


def new_room(project: Project, label: str) -> dict:
    return ok(201, project.client.fabric.conference_rooms.create,
              name=f"{label}-{RUN}", display_name=f"Room {label}", enable_room_previews=False)


def raw(method: str, path: str, *, basic: tuple[str, str] | None = None,
        bearer: str | None = None, **kwargs: Any) -> requests.Response:
    """A plain HTTP request (for what the SDK cannot send). No credentials unless given."""
    headers = dict(kwargs.pop("headers", {}))
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    response = RAW.request(method, BASE_URL + path, auth=basic, headers=headers, timeout=30, **kwargs)
    if response.status_code != 204:
        T.assertTrue(response.headers.get("Content-Type", "").startswith("application/json"),
                     f"{method} {path}: content-type {response.headers.get('Content-Type')!r}")
    return response


def assert_raw(response: requests.Response, status: int, body: Any = None) -> Any:
    T.assertEqual(response.status_code, status, f"{response.request.method} {response.url}: {response.text}")
    if body is not None:
        T.assertEqual(response.json(), body)
    return response.json() if response.content else None


def iso_in(seconds: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# Module fixtures: project 1 (most tests), its application, and project 2 (isolation).
# ---------------------------------------------------------------------------------------
P1: Project
P2: Project
APP_ID = ""


def setUpModule() -> None:
    global HOST, BIN, DATABASE_URL, BASE_URL, P1, P2, APP_ID
    missing = [v for v in ("TESSERA_HOST", "TESSERA_BIN", "TESSERA_DATABASE_URL") if not os.environ.get(v)]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} (see the module docstring)")
    HOST = os.environ["TESSERA_HOST"]
    BIN = os.environ["TESSERA_BIN"]
    DATABASE_URL = os.environ["TESSERA_DATABASE_URL"]
    BASE_URL = f"http://{HOST}"
    P1 = new_project("p1")
    P2 = new_project("p2")
    APP_ID = admin("application", "create", "--project", P1.id, "--name", f"compat-app-{RUN}")["id"]
    assert_uuid(APP_ID)


class CompatCase(unittest.TestCase):
    """Base class: after each test, every response seen so far must have had X-Request-Id."""

    maxDiff = None

    def tearDown(self) -> None:
        missing = unchecked_responses_without_request_id()
        if missing:
            self.fail("responses without an X-Request-Id header:\n" + "\n".join(missing))


# ---------------------------------------------------------------------------------------
# T1 / T2: subscriber tokens and refresh.
# ---------------------------------------------------------------------------------------
class TestSubscriberTokens(CompatCase):
    def test_create_minimal(self):
        res = new_sat(P1, "alice")
        assert_jwe(res["token"], "SAT")
        assert_jwe(res["refresh_token"], "Refresh")
        # "subscriber now exists": the returned id is accepted by S3 (§13 item 9).
        sub = ok(200, P1.client.fabric.subscribers.get, res["subscriber_id"])
        assert_subscriber(sub, P1.id)
        # §13 item 9: a new subscriber gets email = reference.
        self.assertEqual(sub["subscriber"]["email"], f"alice-{RUN}@example.com")

    def test_profile_fields_are_stored(self):
        # time_zone on the wire maps to the subscriber's `timezone` field.
        res = new_sat(P1, "carol", first_name="A", time_zone="UTC", password="hunter22",
                      expire_at=int(time.time()) + 600, application_id=APP_ID)
        sub = ok(200, P1.client.fabric.subscribers.get, res["subscriber_id"])
        self.assertEqual(sub["subscriber"]["timezone"], "UTC")
        self.assertEqual(sub["subscriber"]["first_name"], "A")

    def test_reference_is_an_upsert_key(self):
        # §13 item 9: same reference (case-insensitively) or the subscriber's own id
        # reaches the same subscriber rather than creating a new one.
        first = new_sat(P1, "dave")
        again = new_sat(P1, "dave", last_name="D")
        self.assertEqual(again["subscriber_id"], first["subscriber_id"])
        self.assertNotEqual(again["token"], first["token"])
        upper = ok(200, P1.client.fabric.tokens.create_subscriber_token,
                   reference=f"DAVE-{RUN}@EXAMPLE.COM")
        self.assertEqual(upper["subscriber_id"], first["subscriber_id"])
        by_id = ok(200, P1.client.fabric.tokens.create_subscriber_token,
                   reference=first["subscriber_id"])
        self.assertEqual(by_id["subscriber_id"], first["subscriber_id"])
        sub = ok(200, P1.client.fabric.subscribers.get, first["subscriber_id"])
        self.assertEqual(sub["subscriber"]["last_name"], "D")

    def test_extras_fingerprint_and_scope_accepted(self):
        res = new_sat(P1, "erin", extras={"fingerprint": "A" * 42 + "_", "scope": "sat:refresh"})
        assert_jwe(res["token"], "SAT")

    def test_empty_reference(self):
        err_422("missing_required_parameter", "reference",
                P1.client.fabric.tokens.create_subscriber_token, reference="")

    def test_expire_at_in_the_past(self):
        # §13 item 4: past values are invalid_parameter on the field that carried them.
        err_422("invalid_parameter", "expire_at",
                P1.client.fabric.tokens.create_subscriber_token,
                reference=f"frank-{RUN}@example.com", expire_at=1)

    def test_refresh_rotates_both_tokens(self):
        tokens = new_sat(P1, "gina")
        for _ in range(2):  # the rotated refresh token must itself be usable
            new = ok(201, P1.client.fabric.tokens.refresh_subscriber_token,
                     refresh_token=tokens["refresh_token"])
            assert_token_pair(new)
            self.assertNotEqual(new["token"], tokens["token"])
            self.assertNotEqual(new["refresh_token"], tokens["refresh_token"])
            tokens = new

    def test_refresh_with_an_access_token(self):
        sat = new_sat(P1, "hank")["token"]
        err_422("not_a_refresh_token", "refresh_token",
                P1.client.fabric.tokens.refresh_subscriber_token, refresh_token=sat)

    def test_refresh_with_a_tampered_token(self):
        rt = new_sat(P1, "ivan")["refresh_token"]
        parts = rt.split(".")
        # Flip one ciphertext character: well-formed, but fails authentication.
        parts[3] = ("B" if parts[3][0] == "A" else "A") + parts[3][1:]
        err_422("token_invalid", "refresh_token",
                P1.client.fabric.tokens.refresh_subscriber_token, refresh_token=".".join(parts))
        # Not even JWE-shaped: §9 allows either catalogue code for this.
        body = err(422, P1.client.fabric.tokens.refresh_subscriber_token, refresh_token="garbage").body
        code = "invalid_token_format" if "invalid_token_format" in str(body) else "token_invalid"
        assert_422(body, code, "refresh_token")

    def test_refresh_with_an_expired_token(self):
        # §12 expects 422 token_expired (attribute refresh_token). An expired refresh token
        # cannot be minted from outside: its 2 h 5 min lifetime runs on the server's clock,
        # and its claims are sealed. Tessera's Rust integration tests cover this row with a
        # manual Clock; it is listed here so the gap stays visible in the report.
        self.skipTest("needs control of the server clock; covered by the Rust integration tests")

    def test_refresh_requires_basic_auth(self):
        # §13 item 3: refresh is a project-level (Basic) operation by default.
        rt = new_sat(P1, "judy")["refresh_token"]
        response = raw("POST", "/api/fabric/subscribers/tokens/refresh", json={"refresh_token": rt})
        assert_raw(response, 401, UNAUTHORIZED)


# ---------------------------------------------------------------------------------------
# T3: guest tokens.
# ---------------------------------------------------------------------------------------
class TestGuestTokens(CompatCase):
    @classmethod
    def setUpClass(cls):
        # Eleven real addresses, so the >10 check cannot be confused with an ownership error.
        cls.addresses = []
        for i in range(11):
            sub = ok(201, P1.client.fabric.subscribers.create, email=f"guest{i}-{RUN}@example.com")
            cls.addresses.append(subscriber_address(P1, sub["id"])["id"])

    def test_guest_token(self):
        res = ok(201, P1.client.fabric.tokens.create_guest_token, allowed_addresses=self.addresses[:1])
        assert_token_pair(res)

    def test_integer_expire_at_24h(self):
        # The SDK's own tooling asks for 24 h, so at least that must be allowed (§13 item 5).
        res = ok(201, P1.client.fabric.tokens.create_guest_token,
                 allowed_addresses=self.addresses[:10], expire_at=int(time.time()) + 86400)
        assert_token_pair(res)

    def test_iso_string_expire_at(self):
        # The SDK docs pass an ISO string; it is forwarded verbatim (§13 item 4). One hour
        # ahead rather than the docs' 2030 so the expiry cap (§13 item 5) cannot interfere.
        res = ok(201, P1.client.fabric.tokens.create_guest_token,
                 allowed_addresses=self.addresses[:1], expire_at=iso_in(3600))
        assert_token_pair(res)

    def test_unparseable_expire_at(self):
        err_422("invalid_parameter", "expire_at", P1.client.fabric.tokens.create_guest_token,
                allowed_addresses=self.addresses[:1], expire_at="tomorrow")

    def test_more_than_ten_addresses(self):
        err_422("allowed_address_limit_exceeded", "allowed_addresses",
                P1.client.fabric.tokens.create_guest_token, allowed_addresses=self.addresses)

    def test_unknown_address(self):
        err_422("must_belong_to_project", "allowed_addresses",
                P1.client.fabric.tokens.create_guest_token, allowed_addresses=[ZERO_UUID])

    def test_empty_address_list(self):
        err_422("missing_required_parameter", "allowed_addresses",
                P1.client.fabric.tokens.create_guest_token, allowed_addresses=[])


# ---------------------------------------------------------------------------------------
# T4: invite tokens (Basic through the SDK, Bearer SAT in TestRawHttp).
# ---------------------------------------------------------------------------------------
class TestInviteTokens(CompatCase):
    @classmethod
    def setUpClass(cls):
        cls.address_id = subscriber_address(P1, new_sat(P1, "kate")["subscriber_id"])["id"]

    def test_invite_token(self):
        res = ok(201, P1.client.fabric.tokens.create_invite_token, address_id=self.address_id)
        self.assertEqual(set(res), {"token"}, res)
        assert_jwe(res["token"], "SAT")

    def test_expires_at_in_the_past(self):
        err_422("invalid_parameter", "expires_at", P1.client.fabric.tokens.create_invite_token,
                address_id=self.address_id, expires_at=1)


# ---------------------------------------------------------------------------------------
# T5: embed (click-to-call) tokens.
# ---------------------------------------------------------------------------------------
class TestEmbedTokens(CompatCase):
    @classmethod
    def setUpClass(cls):
        room = new_room(P1, "embed")
        cls.c2c = new_embed(P1, room_address(P1, room["id"])["id"])

    def test_embed_token(self):
        res = ok(201, P1.client.fabric.tokens.create_embed_token, token=self.c2c)
        self.assertEqual(set(res), {"token"}, res)
        assert_jwe(res["token"], "SAT")

    def test_empty_token(self):
        err_422("missing_required_parameter", "token",
                P1.client.fabric.tokens.create_embed_token, token="")

    def test_unknown_c2c_token(self):
        e = err(404, P1.client.fabric.tokens.create_embed_token, token="c2c_" + uuid.uuid4().hex)
        self.assertEqual(e.body, NOT_FOUND)

    def test_wrong_prefix(self):
        err_422("token_has_invalid_prefix", "token",
                P1.client.fabric.tokens.create_embed_token, token="abc_" + uuid.uuid4().hex)

    def test_no_authorization_header(self):
        # The widget calls this endpoint anonymously (spec: no auth).
        response = raw("POST", "/api/fabric/embeds/tokens", json={"token": self.c2c})
        self.assertNotIn("Authorization", response.request.headers)
        self.assertEqual(set(assert_raw(response, 201)), {"token"})

    def test_authorization_header_is_ignored(self):
        # §13 item 2: the SDK always sends Basic; even wrong credentials must not cause a 401.
        stranger = sdk_client(P1.id, "bad")
        res = ok(201, stranger.fabric.tokens.create_embed_token, token=self.c2c)
        assert_jwe(res["token"], "SAT")


# ---------------------------------------------------------------------------------------
# S1–S6: subscribers CRUD.
# ---------------------------------------------------------------------------------------
class TestSubscribers(CompatCase):
    def create_bob(self, label: str) -> dict:
        res = ok(201, P1.client.fabric.subscribers.create, email=f"{label}-{RUN}@example.com",
                 first_name="Bob", last_name="Builder", job_title="Builder")
        assert_subscriber(res, P1.id)
        self.assertEqual(res["subscriber"]["email"], f"{label}-{RUN}@example.com")
        self.assertEqual(res["subscriber"]["first_name"], "Bob")
        return res

    def test_create_get_update_delete(self):
        bob = self.create_bob("bob")
        got = ok(200, P1.client.fabric.subscribers.get, bob["id"])
        assert_subscriber(got, P1.id)
        self.assertEqual(got["id"], bob["id"])
        self.assertEqual(got["subscriber"], bob["subscriber"])

        # The SDK sends a partial PUT body; it is a merge, not a replacement (§13 item 10).
        updated = ok(200, P1.client.fabric.subscribers.update, bob["id"], display_name="Z")
        self.assertEqual(updated["subscriber"]["display_name"], "Z")
        for field in ("email", "first_name", "last_name", "job_title"):
            self.assertEqual(updated["subscriber"][field], bob["subscriber"][field], field)
        self.assertEqual(ok(200, P1.client.fabric.subscribers.get, bob["id"])["subscriber"],
                         updated["subscriber"])

        self.assertEqual(ok(204, P1.client.fabric.subscribers.delete, bob["id"]), {})
        e = err(404, P1.client.fabric.subscribers.get, bob["id"])
        self.assertEqual(e.body, NOT_FOUND)

    def test_list(self):
        bob = self.create_bob("lister")
        data = assert_envelope(ok(200, P1.client.fabric.subscribers.list))
        for item in data:
            assert_subscriber(item, P1.id)
        self.assertIn(bob["id"], {item["id"] for item in data})

    def test_list_addresses(self):
        bob = self.create_bob("addressed")
        address = subscriber_address(P1, bob["id"])
        assert_address(address, "subscriber")
        # §13 item 15: all three channels, as /private/<name>?channel=<kind>.
        for kind in ("audio", "video", "messaging"):
            channel = address["channels"][kind]
            self.assertTrue(channel.startswith("/private/"), channel)
            self.assertTrue(channel.endswith(f"?channel={kind}"), channel)
        # §13 item 9: the inner subscriber id reaches the same resource.
        self.assertEqual(subscriber_address(P1, bob["subscriber"]["id"])["id"], address["id"])

    def test_create_without_email(self):
        err_422("missing_required_parameter", "email", P1.client.fabric.subscribers.create, email="")

    def test_unknown_id(self):
        for call in (P1.client.fabric.subscribers.get, P1.client.fabric.subscribers.delete,
                     P1.client.fabric.subscribers.list_addresses):
            self.assertEqual(err(404, call, ZERO_UUID).body, NOT_FOUND)
        e = err(404, P1.client.fabric.subscribers.update, ZERO_UUID, display_name="nobody")
        self.assertEqual(e.body, NOT_FOUND)


class TestPagination(CompatCase):
    """In a fresh project, so the listed set must equal exactly what was created."""

    @classmethod
    def setUpClass(cls):
        cls.project = new_project("pages")
        cls.subscribers = {
            ok(201, cls.project.client.fabric.subscribers.create, email=f"page{i}-{RUN}@example.com")["id"]
            for i in range(5)
        }

    def test_list_page_size_2_links_next(self):
        page = ok(200, self.project.client.fabric.subscribers.list, page_size=2)
        self.assertEqual(len(assert_envelope(page)), 2)
        self.assertTrue(page["links"].get("next"), page["links"])
        self.assertNotIn("prev", page["links"])  # §8: omitted, not null, on the first page

    def assert_paged(self, pages: list[requests.Response]) -> None:
        # The SDK re-requests the original path with only the query of links.next, so every
        # next link must itself carry page_size=2 for each page to stay at two items.
        self.assertGreaterEqual(len(pages), 3, [r.url for r in pages])
        for response in pages:
            self.assertEqual(response.status_code, 200)
            self.assertLessEqual(len(response.json()["data"]), 2, response.url)
        self.assertNotIn("next", pages[-1].json()["links"])

    def test_paginate_subscribers(self):
        mark = len(WIRE)
        ids = [item["id"] for item in self.project.client.fabric.subscribers.paginate(page_size=2)]
        self.assertEqual(len(ids), len(set(ids)), "duplicates across pages")
        self.assertEqual(set(ids), self.subscribers)
        self.assert_paged(WIRE[mark:])

    def test_paginate_addresses(self):
        expected = {subscriber_address(self.project, sid)["id"] for sid in self.subscribers}
        mark = len(WIRE)
        ids = [item["id"] for item in self.project.client.fabric.addresses.paginate(page_size=2)]
        self.assertEqual(len(ids), len(set(ids)), "duplicates across pages")
        self.assertEqual(set(ids), expected)
        self.assert_paged(WIRE[mark:])


# ---------------------------------------------------------------------------------------
# A1–A3: addresses.
# ---------------------------------------------------------------------------------------
class TestAddresses(CompatCase):
    @classmethod
    def setUpClass(cls):
        cls.sat = new_sat(P1, "lena")
        cls.address = subscriber_address(P1, cls.sat["subscriber_id"])
        cls.room = new_room(P1, "addresses")
        cls.room_address = room_address(P1, cls.room["id"])

    def test_list(self):
        data = assert_envelope(ok(200, P1.client.fabric.addresses.list))
        ids = {a["id"] for a in data}
        self.assertIn(self.address["id"], ids)
        self.assertIn(self.room_address["id"], ids)

    def test_list_filtered_by_type(self):
        for type_, member, other in (("subscriber", self.address, self.room_address),
                                     ("room", self.room_address, self.address)):
            data = assert_envelope(ok(200, P1.client.fabric.addresses.list, type=type_))
            for address in data:
                assert_address(address, type_)
            ids = {a["id"] for a in data}
            self.assertIn(member["id"], ids)
            self.assertNotIn(other["id"], ids)

    def test_get_is_a_bare_object(self):
        address = ok(200, P1.client.fabric.addresses.get, self.address["id"])
        assert_address(address, "subscriber")
        self.assertNotIn("data", address)
        self.assertEqual(address, self.address)

    def test_get_unknown(self):
        self.assertEqual(err(404, P1.client.fabric.addresses.get, ZERO_UUID).body, NOT_FOUND)

    def test_resource_addresses(self):
        resource_id = ok(200, P1.client.fabric.subscribers.get, self.sat["subscriber_id"])["id"]
        data = assert_envelope(ok(200, P1.client.fabric.resources.list_addresses, resource_id))
        self.assertEqual([a["id"] for a in data], [self.address["id"]])
        e = err(404, P1.client.fabric.resources.list_addresses, ZERO_UUID)
        self.assertEqual(e.body, NOT_FOUND)


# ---------------------------------------------------------------------------------------
# Conference rooms: the SDK's typed resource; their room addresses feed guest/embed tokens.
# ---------------------------------------------------------------------------------------
class TestConferenceRooms(CompatCase):
    FIELDS = {
        "display_name": "Standup",
        "description": "daily",
        "max_members": 10,
        "quality": "720p",
        "layout": "grid-responsive",
        "record_on_start": False,
        "tone_on_entry_and_exit": True,
        "meta": {"team": "core"},
    }

    def test_crud(self):
        rooms = P1.client.fabric.conference_rooms
        name = f"standup-{RUN}"
        # enable_room_previews is a required keyword of the SDK's create().
        room = ok(201, rooms.create, name=name, enable_room_previews=True, **self.FIELDS)
        # SDK type ConferenceRoomResponse: resource envelope, type "video_room", nested body.
        self.assertTrue(RESOURCE_KEYS | {"conference_room"} <= set(room), room)
        assert_uuid(room["id"])
        self.assertEqual(room["type"], "video_room")
        self.assertEqual(room["project_id"], P1.id)
        self.assertEqual(room["display_name"], "Standup")
        sent = dict(self.FIELDS, name=name, enable_room_previews=True)
        for field, value in sent.items():
            self.assertEqual(room["conference_room"].get(field), value, field)

        self.assertEqual(ok(200, rooms.get, room["id"]), room)
        data = assert_envelope(ok(200, rooms.list))
        self.assertIn(room["id"], {r["id"] for r in data})

        # PUT with a partial body merges, as for subscribers.
        updated = ok(200, rooms.update, room["id"], display_name="Retro", max_members=20)
        self.assertEqual(updated["display_name"], "Retro")
        self.assertEqual(updated["conference_room"]["display_name"], "Retro")
        self.assertEqual(updated["conference_room"]["max_members"], 20)
        for field in ("name", "description", "quality", "layout", "meta"):
            self.assertEqual(updated["conference_room"][field], sent[field], field)
        self.assertEqual(ok(200, rooms.get, room["id"]), updated)

        address_id = room_address(P1, room["id"])["id"]
        self.assertEqual(ok(204, rooms.delete, room["id"]), {})
        self.assertEqual(err(404, rooms.get, room["id"]).body, NOT_FOUND)
        # The room's address goes with it.
        self.assertEqual(err(404, P1.client.fabric.addresses.get, address_id).body, NOT_FOUND)

    def test_room_address_admits_guests(self):
        room = new_room(P1, "guests")
        address = room_address(P1, room["id"])
        assert_address(address, "room")
        self.assertEqual(ok(200, P1.client.fabric.addresses.get, address["id"]), address)
        # The SDK's own list_addresses uses the SINGULAR path
        # /api/fabric/resources/conference_room/{id}/addresses.
        data = assert_envelope(ok(200, P1.client.fabric.conference_rooms.list_addresses, room["id"]))
        self.assertIn("/api/fabric/resources/conference_room/", WIRE[-1].url)
        self.assertEqual([a["id"] for a in data], [address["id"]])
        res = ok(201, P1.client.fabric.tokens.create_guest_token, allowed_addresses=[address["id"]])
        assert_token_pair(res)


# ---------------------------------------------------------------------------------------
# Authentication and raw HTTP.
# ---------------------------------------------------------------------------------------
class TestAuthentication(CompatCase):
    @classmethod
    def setUpClass(cls):
        cls.sat = new_sat(P1, "mona")
        cls.address_id = subscriber_address(P1, cls.sat["subscriber_id"])["id"]
        room = new_room(P1, "auth")
        cls.guest = ok(201, P1.client.fabric.tokens.create_guest_token,
                       allowed_addresses=[room_address(P1, room["id"])["id"]])

    def test_wrong_api_token(self):
        bad = sdk_client(P1.id, "bad")
        for call, kwargs in ((bad.fabric.subscribers.list, {}),
                             (bad.fabric.addresses.list, {}),
                             (bad.fabric.tokens.create_subscriber_token, {"reference": "x@example.com"})):
            self.assertEqual(err(401, call, **kwargs).body, UNAUTHORIZED)

    def test_unknown_project(self):
        stranger = sdk_client(str(uuid.uuid4()), P1.token)
        self.assertEqual(err(401, stranger.fabric.subscribers.list).body, UNAUTHORIZED)

    def test_no_credentials(self):
        assert_raw(raw("GET", "/api/fabric/resources/subscribers"), 401, UNAUTHORIZED)

    def test_bearer_sat_lists_addresses(self):
        response = raw("GET", "/api/fabric/addresses", bearer=self.sat["token"])
        assert_envelope(assert_raw(response, 200))
        response = raw("GET", f"/api/fabric/addresses/{self.address_id}", bearer=self.sat["token"])
        self.assertEqual(assert_raw(response, 200)["id"], self.address_id)

    def test_bearer_sat_invites_to_own_address(self):
        response = raw("POST", "/api/fabric/subscriber/invites", bearer=self.sat["token"],
                       json={"address_id": self.address_id})
        body = assert_raw(response, 201)
        self.assertEqual(set(body), {"token"})
        assert_jwe(body["token"], "SAT")

    def test_guest_token_is_not_a_bearer_for_addresses(self):
        response = raw("GET", "/api/fabric/addresses", bearer=self.guest["token"])
        assert_raw(response, 401, UNAUTHORIZED)

    def test_refresh_token_is_not_a_bearer(self):
        response = raw("GET", "/api/fabric/addresses", bearer=self.sat["refresh_token"])
        assert_raw(response, 401, UNAUTHORIZED)

    def test_malformed_json(self):
        response = raw("POST", "/api/fabric/guests/tokens", basic=P1.basic,
                       data=b'{"allowed_addresses": [', headers={"Content-Type": "application/json"})
        assert_raw(response, 400, BAD_REQUEST)


# ---------------------------------------------------------------------------------------
# Project isolation: project 2 sees and touches nothing of project 1.
# ---------------------------------------------------------------------------------------
class TestProjectIsolation(CompatCase):
    @classmethod
    def setUpClass(cls):
        cls.sat = new_sat(P1, "nora")
        cls.subscriber = ok(200, P1.client.fabric.subscribers.get, cls.sat["subscriber_id"])
        cls.address_id = subscriber_address(P1, cls.sat["subscriber_id"])["id"]

    def test_lists_exclude_project_1(self):
        own = ok(201, P2.client.fabric.subscribers.create, email=f"p2-{RUN}@example.com")
        subscriber_ids = set()
        for item in P2.client.fabric.subscribers.paginate():
            subscriber_ids |= {item["id"], item["subscriber"]["id"]}
        self.assertIn(own["id"], subscriber_ids)
        self.assertNotIn(self.subscriber["id"], subscriber_ids)
        self.assertNotIn(self.sat["subscriber_id"], subscriber_ids)
        address_ids = {a["id"] for a in P2.client.fabric.addresses.paginate()}
        self.assertNotIn(self.address_id, address_ids)

    def test_project_1_ids_are_not_found(self):
        fabric = P2.client.fabric
        for call, ident in ((fabric.subscribers.get, self.subscriber["id"]),
                            (fabric.subscribers.get, self.sat["subscriber_id"]),
                            (fabric.subscribers.list_addresses, self.subscriber["id"]),
                            (fabric.resources.list_addresses, self.subscriber["id"]),
                            (fabric.addresses.get, self.address_id)):
            self.assertEqual(err(404, call, ident).body, NOT_FOUND, call)
        self.assertEqual(err(404, fabric.subscribers.update, self.subscriber["id"], display_name="x").body,
                         NOT_FOUND)
        self.assertEqual(err(404, fabric.subscribers.delete, self.subscriber["id"]).body, NOT_FOUND)
        # ...and those attempts changed nothing in project 1.
        self.assertEqual(ok(200, P1.client.fabric.subscribers.get, self.subscriber["id"]), self.subscriber)

    def test_same_reference_is_a_different_subscriber(self):
        other = new_sat(P2, "nora")
        self.assertNotEqual(other["subscriber_id"], self.sat["subscriber_id"])

    def test_guest_token_for_project_1_address(self):
        err_422("must_belong_to_project", "allowed_addresses",
                P2.client.fabric.tokens.create_guest_token, allowed_addresses=[self.address_id])

    def test_invite_for_project_1_address(self):
        # T4's documented 422 for a bad address: invalid_parameter on address_id.
        err_422("invalid_parameter", "address_id",
                P2.client.fabric.tokens.create_invite_token, address_id=self.address_id)

    def test_refresh_project_1_token(self):
        err_422("token_invalid", "refresh_token",
                P2.client.fabric.tokens.refresh_subscriber_token, refresh_token=self.sat["refresh_token"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
