#!/usr/bin/env python3
"""Compatibility suite: the unmodified ``vmware-sddc-manager==9.1.1.0`` against a running Tessera.

Drives Tessera's SDDC Manager-compatible Accounts API (``/v1``) through Broadcom's own generated
vAPI bindings (``vmware.sddc_manager.v1_client`` and friends): login by password and by API key,
refresh and invalidate, roles, users, and the typed errors the SDK raises. The client is built
the way the official ``vcf-sdk-python`` samples build it (``sddc-manager-samples/utils``): a
``requests`` connector with ``msg_protocol='rest'`` and an OAuth security context carrying the
access token as ``Authorization: Bearer``. Checks the SDK cannot express (malformed bodies, a
USER with a password) use plain ``requests``.

SDK quirks this suite relies on (observed):
  * Only the status codes an operation declares map to a typed exception:
    ``create_token`` 400/500, ``refresh_access_token`` 400/404/500 and ``remove_user`` 404/500
    -> ``model_client.Error``; ``get_roles``/``get_users``/``add_users`` 400/401/500 ->
    ``model_client.ErrorResponse`` (which has ``cause``, not ``causes``, and no ``errorType``).
    Anything else (401 on login, 403 everywhere, 401 on ``remove_user``, any error from
    ``invalidate_refresh_token``) raises ``vmware.vapi.bindings.error.UnresolvedError``, whose
    ``get_status_code()`` is 0 but whose ``get_error_value()`` still holds the parsed JSON body.
  * Refresh and invalidate send the id as a JSON-quoted string and no ``Authorization``.

Environment (all required):
    TESSERA_HOST          ``127.0.0.1:PORT`` of a running ``tessera serve`` (plain http).
    TESSERA_BIN           path of the ``tessera`` binary, used to create the admin fixture.
    TESSERA_DATABASE_URL  the database that server uses, e.g. ``sqlite:///tmp/x/tessera.db``.
    TESSERA_MASTER_KEY    passed through to the admin CLI with the rest of the environment.

Run: ``python tests/compat/test_accounts_sdk.py`` (exits non-zero on any failure).
"""

import base64
import json
import logging
import os
import re
import subprocess
import time
import unittest
import uuid
from datetime import datetime
from typing import Any, Callable, NamedTuple

import requests
from vmware.sddc_manager.model_client import (Error, ErrorResponse, PageOfUser, RoleReference,
                                              TokenCreationSpec, TokenPair, User)
from vmware.sddc_manager.v1.tokens.access_token_client import Refresh
from vmware.sddc_manager_client import StubFactory
from vmware.vapi.bindings.error import UnresolvedError, VapiError
from vmware.vapi.bindings.stub import ApiClient
from vmware.vapi.lib.connect import get_requests_connector
from vmware.vapi.security.client.security_context_filter import SecurityContextFilter
from vmware.vapi.security.oauth import create_oauth_security_context
from vmware.vapi.stdlib.client.factories import StubConfigurationFactory

# The stub logs a warning for every UnresolvedError; the suite asserts those explicitly.
logging.getLogger("vmware.vapi.bindings.stub").setLevel(logging.ERROR)

# Filled in by setUpModule so that merely importing the file (py_compile, IDEs) needs no env.
HOST = BIN = DATABASE_URL = BASE_URL = ""

# A suffix that keeps names unique when the suite runs twice against the same database.
RUN = uuid.uuid4().hex[:8]

# The contract's Error object: every 4xx/5xx under /v1 carries at least these keys.
ERROR_KEYS = {"errorCode", "errorType", "arguments", "context", "message", "remediationMessage",
              "causes", "nestedErrors", "referenceToken"}
PAGE_METADATA_KEYS = {"pageNumber", "pageSize", "totalElements", "totalPages"}
USER_KEYS = {"id", "name", "type", "role", "creationTimestamp", "disabled"}
ROLE_NAMES = {"ADMIN", "OPERATOR", "VIEWER"}

# A TestCase used only for its assert methods, so module-level helpers (which also run
# inside setUpModule/setUpClass, where there is no test instance) fail the unittest way.
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


def new_session() -> requests.Session:
    # trust_env=False: no ~/.netrc credentials or proxies sneak into the "no auth" checks.
    session = requests.Session()
    session.trust_env = False
    session.hooks["response"].append(_record)
    return session


RAW = new_session()


# ---------------------------------------------------------------------------------------
# SDK clients, built as in the official samples (sddc-manager-samples/utils/client.py):
# get_requests_connector(msg_protocol='rest') -> StubConfigurationFactory -> StubFactory.
# ---------------------------------------------------------------------------------------
def sdk(token: str | None = None, filters: list | None = None) -> ApiClient:
    """An SDK client; with `token`, every call carries ``Authorization: Bearer <token>``.

    Operations: ``.v1.Tokens.create_token``, ``.v1.tokens.access_token.Refresh.refresh_access_token``,
    ``.v1.tokens.RefreshToken.invalidate_refresh_token``, ``.v1.Roles.get_roles``,
    ``.v1.Users.get_users / add_users / remove_user``.
    """
    connector = get_requests_connector(session=new_session(), msg_protocol="rest", url=BASE_URL,
                                       provider_filter_chain=filters)
    if token is not None:
        connector.set_security_context(create_oauth_security_context(token))
    return ApiClient(StubFactory(StubConfigurationFactory.new_std_configuration(connector)))


class SampleSecurityContextFilter(SecurityContextFilter):
    """The official samples' filter (sddc-manager-samples/utils/sddc_manager_filter.py), same
    logic: send the current access token; when a call fails with errorCode ``Unauthorized`` or
    ``Unauthenticated``, refresh it with the refresh id (SDK Refresh stub) and retry once."""

    def __init__(self, refresh_id: str, access_token: str):
        SecurityContextFilter.__init__(self, None)
        self._refresh_id = refresh_id
        self._access_token = access_token

    def get_max_retries(self) -> int:
        return 1

    def get_security_context(self, on_error: bool):
        if on_error or not self._access_token:
            refresh = sdk().v1.tokens.access_token.Refresh
            self._access_token = refresh.refresh_access_token(self._refresh_id)
        return create_oauth_security_context(self._access_token)

    def should_retry(self, error_value) -> bool:
        if error_value and error_value.has_field("errorCode"):
            return error_value.get_field("errorCode").value in ("Unauthorized", "Unauthenticated")
        return False


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


# ---------------------------------------------------------------------------------------
# Call helpers and shape assertions.
# ---------------------------------------------------------------------------------------
def ok(status: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an SDK method, assert the HTTP status it got back, return the SDK's result."""
    mark = len(WIRE)
    result = fn(*args, **kwargs)
    T.assertGreater(len(WIRE), mark, "the SDK call made no HTTP request")
    last = WIRE[-1]
    T.assertEqual(last.status_code, status, f"{last.request.method} {last.url}: {last.text}")
    if status != 204:
        T.assertTrue(last.headers.get("Content-Type", "").startswith("application/json"),
                     f"{last.request.method} {last.url}: content-type {last.headers.get('Content-Type')!r}")
    return result


def assert_error_body(response: requests.Response, status: int, code: str) -> dict:
    """The contract's Error object, with this status and errorCode and a usable message."""
    where = f"{response.request.method} {response.url}"
    T.assertEqual(response.status_code, status, f"{where}: {response.text}")
    T.assertTrue(response.headers.get("Content-Type", "").startswith("application/json"),
                 f"{where}: content-type {response.headers.get('Content-Type')!r}")
    body = response.json()
    T.assertIsInstance(body, dict, body)
    T.assertTrue(ERROR_KEYS <= set(body), f"{where}: missing {ERROR_KEYS - set(body)} in {body}")
    T.assertEqual(body["errorCode"], code, body)
    T.assertEqual(body["errorType"], "ERROR", body)
    T.assertIsInstance(body["message"], str, body)
    T.assertTrue(body["message"].strip(), f"{where}: empty message")
    T.assertIsInstance(body["remediationMessage"], str, body)
    T.assertIsInstance(body["arguments"], list, body)
    T.assertTrue(all(isinstance(a, str) for a in body["arguments"]), body)
    # Go clients unmarshal context into map[string]string.
    T.assertIsInstance(body["context"], dict, body)
    T.assertTrue(all(isinstance(v, str) for v in body["context"].values()), body)
    T.assertIsInstance(body["causes"], list, body)
    # An array of strings here crashes the Python SDK; it must hold Error objects.
    T.assertIsInstance(body["nestedErrors"], list, body)
    T.assertTrue(all(isinstance(e, dict) for e in body["nestedErrors"]), body)
    T.assertRegex(body["referenceToken"], r"^[A-Z0-9]{6}$", body)
    return body


def sdk_error(status: int, code: str, exc_type: type, fn: Callable[..., Any], *args: Any,
              **kwargs: Any) -> tuple[VapiError, dict]:
    """Call an SDK method that must fail; assert the exception class the SDK really raises, the
    wire status and Error body, and that the SDK's exception carries the same errorCode/message."""
    mark = len(WIRE)
    try:
        result = fn(*args, **kwargs)
    except VapiError as e:
        T.assertGreater(len(WIRE), mark, "the SDK call made no HTTP request")
        T.assertIs(type(e), exc_type, f"SDK raised {type(e).__name__}: {e!r}")
        body = assert_error_body(WIRE[-1], status, code)
        if isinstance(e, (Error, ErrorResponse)):
            T.assertEqual(e.get_status_code(), status)
            T.assertEqual(e.error_code, code)
            T.assertEqual(e.message, body["message"])
            T.assertEqual(e.reference_token, body["referenceToken"])
        else:
            # UnresolvedError: no status, but the parsed body is still reachable.
            value = e.get_error_value()
            T.assertIsNotNone(value, "UnresolvedError without the error body")
            T.assertEqual(value.get_field("errorCode").value, code)
            T.assertEqual(value.get_field("message").value, body["message"])
        return e, body
    raise AssertionError(f"expected HTTP {status} {code}, the call succeeded with {result!r}")


def raw(method: str, path: str, *, bearer: str | None = None, **kwargs: Any) -> requests.Response:
    """A plain HTTP request (for what the SDK cannot send). No credentials unless given."""
    headers = dict(kwargs.pop("headers", {}))
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return RAW.request(method, BASE_URL + path, headers=headers, timeout=30, **kwargs)


def assert_raw(response: requests.Response, status: int) -> Any:
    T.assertEqual(response.status_code, status, f"{response.request.method} {response.url}: {response.text}")
    if status == 204:
        T.assertEqual(response.content, b"")
        return None
    T.assertTrue(response.headers.get("Content-Type", "").startswith("application/json"),
                 f"content-type {response.headers.get('Content-Type')!r}")
    return response.json()


def sent_body(response: requests.Response) -> bytes:
    """The request body as sent (the SDK hands requests a str, raw calls may use bytes)."""
    body = response.request.body
    return body.encode() if isinstance(body, str) else (body or b"")


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def assert_access_token(token: Any, username: str) -> dict:
    """A compact JWS as PowerVCF and the SDK samples expect; returns the claims."""
    T.assertIsInstance(token, str)
    T.assertTrue(token.startswith("eyJ"), token)
    parts = token.split(".")
    T.assertEqual(len(parts), 3, token)
    T.assertTrue(all(parts), token)
    header = b64url_json(parts[0])
    T.assertIn(header.get("alg"), ("HS256", "EdDSA"), header)
    T.assertIsInstance(header.get("kid"), str, header)
    claims = b64url_json(parts[1])
    T.assertEqual(claims.get("iss"), "vcf-auth", claims)
    T.assertEqual(claims.get("aud"), "sddc-services", claims)
    for name in ("sub", "user", "name"):
        T.assertEqual(claims.get(name), username, f"{name}: {claims}")
    for name in ("iat", "nbf", "exp"):
        T.assertIs(type(claims.get(name)), int, f"{name} must be a JSON integer: {claims}")
    T.assertEqual(claims["exp"] - claims["iat"], 3600, claims)
    T.assertLessEqual(claims["nbf"], claims["iat"] + 1, claims)
    T.assertLess(abs(claims["iat"] - time.time()), 300, "iat is not now")
    T.assertIsInstance(claims.get("scope"), list, claims)
    T.assertTrue(all(isinstance(s, str) for s in claims["scope"]), claims)
    T.assertIsInstance(claims.get("jti"), str, claims)
    return claims


def assert_refresh_id(value: Any) -> None:
    T.assertIsInstance(value, str)
    T.assertEqual(len(value), 36, value)
    uuid.UUID(value)


def assert_timestamp(value: Any) -> None:
    T.assertIsInstance(value, str)
    datetime.fromisoformat(value.replace("Z", "+00:00"))


def login(**spec: str) -> TokenPair:
    """POST /v1/tokens through the SDK; asserts the exact 200 and the TokenPair shape."""
    pair = ok(200, ANON.v1.Tokens.create_token, TokenCreationSpec(**spec))
    T.assertIsInstance(pair, TokenPair)
    assert_refresh_id(pair.refresh_token.id)
    return pair


class Principal(NamedTuple):
    id: str
    name: str
    pair: TokenPair
    client: ApiClient  # SDK client sending this principal's access token


class Service(NamedTuple):
    id: str
    name: str
    api_key: str


def role_id(name: str) -> str:
    return ROLES[name]


def add_service(label: str, role: str) -> Service:
    """A SERVICE user created through the SDK's add_users (array body, 201)."""
    name = f"svc-{label}-{RUN}"
    page = ok(201, ADMIN.client.v1.Users.add_users,
              [User(name=name, type="SERVICE", role=RoleReference(id=role_id(role)))])
    T.assertIsInstance(page, PageOfUser)
    T.assertEqual(len(page.elements), 1, page)
    user = page.elements[0]
    T.assertEqual((user.name, user.type, user.role.id), (name, "SERVICE", role_id(role)), user)
    T.assertTrue(user.id, user)
    T.assertIsInstance(user.api_key, str, user)
    T.assertTrue(user.api_key, user)
    assert_timestamp(user.creation_timestamp)
    return Service(user.id, name, user.api_key)


def login_service(service: Service) -> Principal:
    pair = login(api_key=service.api_key)
    assert_access_token(pair.access_token, service.name)
    return Principal(service.id, service.name, pair, sdk(pair.access_token))


def add_password_user(label: str, role: str, password: str) -> str:
    """A USER with a password. The SDK's typed User model has no `password` field (only
    id/name/domain/type/apiKey/role/creationTimestamp; extra fields exist only through the
    runtime-internal VapiStruct._set_extra_fields), so Tessera's `password` extension can only
    be sent with plain requests. Returns the new user's id."""
    body = [{"name": f"user-{label}-{RUN}@local", "domain": "local", "type": "USER",
             "role": {"id": role_id(role)}, "password": password}]
    page = assert_raw(raw("POST", "/v1/users", bearer=ADMIN.pair.access_token, json=body), 201)
    T.assertEqual(len(page["elements"]), 1, page)
    user = page["elements"][0]
    T.assertEqual(user["name"], body[0]["name"], user)
    T.assertEqual(user["type"], "USER", user)
    T.assertNotIn("apiKey", user)
    T.assertNotIn("password", user)
    return user["id"]


def listed_users() -> dict[str, dict]:
    """GET /v1/users through the SDK (as ADMIN); the wire JSON of every element, by id."""
    page = ok(200, ADMIN.client.v1.Users.get_users)
    T.assertIsInstance(page, PageOfUser)
    wire = WIRE[-1].json()
    T.assertEqual([u.id for u in page.elements], [u["id"] for u in wire["elements"]])
    return {u["id"]: u for u in wire["elements"]}


# ---------------------------------------------------------------------------------------
# Module fixtures: the CLI-bootstrapped ADMIN and an unauthenticated SDK client.
# ---------------------------------------------------------------------------------------
ANON: ApiClient
ADMIN: Principal
ADMIN_PASSWORD = f"Compat-Adm1n-{RUN}!"
ROLES: dict[str, str] = {}  # role name -> id, from GET /v1/roles


def setUpModule() -> None:
    global HOST, BIN, DATABASE_URL, BASE_URL, ANON, ADMIN
    missing = [v for v in ("TESSERA_HOST", "TESSERA_BIN", "TESSERA_DATABASE_URL") if not os.environ.get(v)]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} (see the module docstring)")
    HOST = os.environ["TESSERA_HOST"]
    BIN = os.environ["TESSERA_BIN"]
    DATABASE_URL = os.environ["TESSERA_DATABASE_URL"]
    BASE_URL = f"http://{HOST}"
    ANON = sdk()
    username = f"admin-{RUN}@local"
    out = admin("user", "create", "--username", username, "--password", ADMIN_PASSWORD, "--role", "ADMIN")
    T.assertIsInstance(out.get("id"), str, out)
    pair = login(username=username, password=ADMIN_PASSWORD)
    ADMIN = Principal(out["id"], username, pair, sdk(pair.access_token))
    for role in ok(200, ADMIN.client.v1.Roles.get_roles).elements:
        ROLES[role.name] = role.id


class CompatCase(unittest.TestCase):
    """Base class: after each test, every response seen so far must have had X-Request-Id."""

    maxDiff = None

    def tearDown(self) -> None:
        missing = unchecked_responses_without_request_id()
        if missing:
            self.fail("responses without an X-Request-Id header:\n" + "\n".join(missing))


# ---------------------------------------------------------------------------------------
# POST /v1/tokens (createToken).
# ---------------------------------------------------------------------------------------
class TestLogin(CompatCase):
    @classmethod
    def setUpClass(cls):
        # Failed logins go to their own account so the admin can never get locked out.
        cls.password = f"Compat-Vict1m-{RUN}!"
        cls.victim_id = add_password_user("victim", "VIEWER", cls.password)
        cls.victim = f"user-victim-{RUN}@local"

    def test_password_login(self):
        pair = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        claims = assert_access_token(pair.access_token, ADMIN.name)
        self.assertTrue(claims["scope"], "an ADMIN token has scopes")
        # The SDK sent nulls omitted, with the JSON headers of §9.4.
        request = WIRE[-1].request
        self.assertEqual(json.loads(sent_body(WIRE[-1])), {"username": ADMIN.name, "password": ADMIN_PASSWORD})
        self.assertEqual(request.headers["Content-Type"], "application/json")
        self.assertEqual(request.headers["Accept"], "application/json")
        self.assertTrue(request.headers["User-Agent"].startswith("vAPI/9.1.1.0 Python/"))
        self.assertNotIn("Authorization", request.headers)
        body = WIRE[-1].json()
        self.assertEqual(set(body), {"accessToken", "refreshToken"}, body)
        self.assertEqual(body["refreshToken"], {"id": pair.refresh_token.id})
        # The token is a working Bearer.
        ok(200, sdk(pair.access_token).v1.Roles.get_roles)

    def test_every_login_is_a_new_pair(self):
        first = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        second = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        self.assertNotEqual(first.access_token, second.access_token)
        self.assertNotEqual(first.refresh_token.id, second.refresh_token.id)

    def test_stale_authorization_is_ignored(self):
        # Terraform re-logs-in with the previous (possibly expired) Bearer still attached.
        stale = sdk("stale.not-a.token")
        pair = ok(200, stale.v1.Tokens.create_token,
                  TokenCreationSpec(username=ADMIN.name, password=ADMIN_PASSWORD))
        self.assertEqual(WIRE[-1].request.headers.get("Authorization"), "Bearer stale.not-a.token")
        assert_access_token(pair.access_token, ADMIN.name)

    def test_bad_password(self):
        # 401 is not a declared status of createToken, so the SDK cannot type it.
        _, body = sdk_error(401, "INVALID_CREDENTIALS", UnresolvedError, ANON.v1.Tokens.create_token,
                            TokenCreationSpec(username=self.victim, password="wrong-" + self.password))
        # One bad attempt does not lock the account.
        pair = login(username=self.victim, password=self.password)
        assert_access_token(pair.access_token, self.victim)

    def test_unknown_user(self):
        sdk_error(401, "INVALID_CREDENTIALS", UnresolvedError, ANON.v1.Tokens.create_token,
                  TokenCreationSpec(username=f"nobody-{RUN}@local", password=self.password))

    def test_no_credentials(self):
        # 400 is declared, so this one arrives as the typed model_client.Error.
        e, _ = sdk_error(400, "TOKEN_SPEC_INVALID", Error, ANON.v1.Tokens.create_token, TokenCreationSpec())
        self.assertEqual(sent_body(WIRE[-1]), b"{}")
        self.assertTrue(e.message)

    def test_username_without_password(self):
        sdk_error(400, "TOKEN_SPEC_INVALID", Error, ANON.v1.Tokens.create_token,
                  TokenCreationSpec(username=ADMIN.name))

    def test_malformed_json(self):
        # The SDK always sends valid JSON; PowerVCF's string-concatenated bodies do not.
        response = raw("POST", "/v1/tokens", data=b'{"username": "a", "password": "x"y"}',
                       headers={"Content-Type": "application/json"})
        assert_error_body(response, 400, "MALFORMED_REQUEST_BODY")


# ---------------------------------------------------------------------------------------
# PATCH /v1/tokens/access-token/refresh and DELETE /v1/tokens/refresh-token.
# ---------------------------------------------------------------------------------------
class TestRefresh(CompatCase):
    def refresh(self, refresh_id: str) -> str:
        token = ok(200, ANON.v1.tokens.access_token.Refresh.refresh_access_token, refresh_id)
        self.assertEqual(sent_body(WIRE[-1]), json.dumps(refresh_id).encode())  # JSON-quoted id
        self.assertNotIn("Authorization", WIRE[-1].request.headers)
        self.assertIsInstance(json.loads(WIRE[-1].text), str, "reply must be a JSON string")
        return token

    def test_refresh_gives_a_working_access_token(self):
        pair = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        token = self.refresh(pair.refresh_token.id)
        claims = assert_access_token(token, ADMIN.name)
        self.assertNotEqual(token, pair.access_token)
        self.assertNotEqual(claims["jti"], assert_access_token(pair.access_token, ADMIN.name)["jti"])
        roles = ok(200, sdk(token).v1.Roles.get_roles)
        self.assertEqual({r.name for r in roles.elements}, ROLE_NAMES)

    def test_refresh_id_is_reusable(self):
        pair = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        first = self.refresh(pair.refresh_token.id)
        second = self.refresh(pair.refresh_token.id)
        self.assertNotEqual(first, second)
        for token in (first, second):
            ok(200, sdk(token).v1.Users.get_users)

    def test_invalidate(self):
        pair = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        minted = self.refresh(pair.refresh_token.id)
        self.assertIsNone(ok(204, ANON.v1.tokens.RefreshToken.invalidate_refresh_token, pair.refresh_token.id))
        self.assertEqual(sent_body(WIRE[-1]), json.dumps(pair.refresh_token.id).encode())
        self.assertNotIn("Authorization", WIRE[-1].request.headers)
        e, _ = sdk_error(404, "REFRESH_TOKEN_NOT_FOUND", Error,
                         ANON.v1.tokens.access_token.Refresh.refresh_access_token, pair.refresh_token.id)
        self.assertTrue(e.message)
        # Access tokens already minted stay valid until they expire (stateless JWTs).
        ok(200, sdk(pair.access_token).v1.Roles.get_roles)
        ok(200, sdk(minted).v1.Roles.get_roles)
        # Invalidating again is still 204.
        ok(204, ANON.v1.tokens.RefreshToken.invalidate_refresh_token, pair.refresh_token.id)

    def test_invalidate_unknown_id(self):
        ok(204, ANON.v1.tokens.RefreshToken.invalidate_refresh_token, str(uuid.uuid4()))

    def test_refresh_unknown_id(self):
        sdk_error(404, "REFRESH_TOKEN_NOT_FOUND", Error,
                  ANON.v1.tokens.access_token.Refresh.refresh_access_token, str(uuid.uuid4()))

    def test_refresh_empty_id(self):
        # The SDK sends "" (a quoted empty string).
        sdk_error(400, "REFRESH_TOKEN_REQUIRED", Error,
                  ANON.v1.tokens.access_token.Refresh.refresh_access_token, "")
        self.assertEqual(sent_body(WIRE[-1]), b'""')

    def test_access_token_is_not_a_refresh_id(self):
        pair = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        sdk_error(404, "REFRESH_TOKEN_NOT_FOUND", Error,
                  ANON.v1.tokens.access_token.Refresh.refresh_access_token, pair.access_token)

    def test_sample_filter_refreshes_on_unauthorized(self):
        # The official samples' retry: a 401 whose JSON errorCode is Unauthorized makes the
        # filter refresh with the refresh id and repeat the call once.
        pair = login(username=ADMIN.name, password=ADMIN_PASSWORD)
        client = sdk(filters=[SampleSecurityContextFilter(pair.refresh_token.id, "expired.or.garbage")])
        mark = len(WIRE)
        roles = client.v1.Roles.get_roles()
        self.assertEqual({r.name for r in roles.elements}, ROLE_NAMES)
        calls = [(r.request.method, r.request.path_url, r.status_code) for r in WIRE[mark:]]
        self.assertEqual(calls, [("GET", "/v1/roles", 401),
                                 ("PATCH", "/v1/tokens/access-token/refresh", 200),
                                 ("GET", "/v1/roles", 200)])
        assert_error_body(WIRE[mark], 401, "Unauthorized")


# ---------------------------------------------------------------------------------------
# GET /v1/roles.
# ---------------------------------------------------------------------------------------
class TestRoles(CompatCase):
    def test_list(self):
        page = ok(200, ADMIN.client.v1.Roles.get_roles)
        by_name = {r.name: r for r in page.elements}
        self.assertEqual(set(by_name), ROLE_NAMES)
        self.assertEqual(len(page.elements), 3)
        ids = {r.id for r in page.elements}
        self.assertEqual(len(ids), 3, "role ids must be distinct")
        for role in page.elements:
            self.assertIsInstance(role.id, str)
            self.assertTrue(role.id)
            self.assertIsInstance(role.description, str)
        self.assertEqual({n: r.id for n, r in by_name.items()}, ROLES)
        meta = WIRE[-1].json()["pageMetadata"]
        self.assertEqual(set(meta), PAGE_METADATA_KEYS, meta)
        self.assertEqual((meta["pageNumber"], meta["totalElements"], meta["totalPages"]), (0, 3, 1), meta)
        self.assertEqual(page.page_metadata.total_elements, 3)


# ---------------------------------------------------------------------------------------
# GET/POST /v1/users, DELETE /v1/users/{id}.
# ---------------------------------------------------------------------------------------
class TestUsers(CompatCase):
    def test_list(self):
        users = listed_users()
        self.assertIn(ADMIN.id, users)
        me = users[ADMIN.id]
        self.assertTrue(USER_KEYS <= set(me), me)
        self.assertEqual((me["name"], me["type"], me["role"]), (ADMIN.name, "USER", {"id": role_id("ADMIN")}))
        self.assertIs(me["disabled"], False)
        for user in users.values():
            self.assertTrue(USER_KEYS <= set(user), user)
            self.assertNotIn("apiKey", user)
            self.assertNotIn("password", user)
            self.assertIn(user["type"], ("USER", "SERVICE"), user)
            self.assertIn(user["role"]["id"], ROLES.values(), user)
            self.assertIsInstance(user["disabled"], bool, user)
            assert_timestamp(user["creationTimestamp"])
        meta = WIRE[-1].json()["pageMetadata"]
        self.assertEqual(set(meta), PAGE_METADATA_KEYS, meta)
        self.assertEqual(meta["totalElements"], len(users), meta)

    def test_service_user_lifecycle(self):
        service = add_service("lifecycle", "OPERATOR")
        # The apiKey was shown once, in the 201; the list never carries it.
        listed = listed_users()
        self.assertIn(service.id, listed)
        self.assertEqual(listed[service.id]["type"], "SERVICE")
        self.assertEqual(listed[service.id]["role"], {"id": role_id("OPERATOR")})
        self.assertNotIn("apiKey", listed[service.id])
        sdk_users = ok(200, ADMIN.client.v1.Users.get_users).elements
        self.assertIsNone(next(u for u in sdk_users if u.id == service.id).api_key)

        principal = login_service(service)
        self.assertEqual(json.loads(sent_body(WIRE[-1])), {"apiKey": service.api_key})
        # OPERATOR may read users.
        self.assertIn(service.id, {u.id for u in ok(200, principal.client.v1.Users.get_users).elements})

        self.assertIsNone(ok(204, ADMIN.client.v1.Users.remove_user, service.id))
        self.assertNotIn(service.id, listed_users())
        # Its key no longer logs in, and its refresh ids were revoked.
        sdk_error(401, "INVALID_CREDENTIALS", UnresolvedError, ANON.v1.Tokens.create_token,
                  TokenCreationSpec(api_key=service.api_key))
        sdk_error(404, "REFRESH_TOKEN_NOT_FOUND", Error,
                  ANON.v1.tokens.access_token.Refresh.refresh_access_token, principal.pair.refresh_token.id)
        # Deleting it again: the declared 404, typed.
        sdk_error(404, "NOT_FOUND", Error, ADMIN.client.v1.Users.remove_user, service.id)

    def test_password_user_lifecycle(self):
        password = f"Compat-Us3r-{RUN}!"
        user_id = add_password_user("lifecycle", "OPERATOR", password)
        name = f"user-lifecycle-{RUN}@local"
        listed = listed_users()[user_id]
        self.assertEqual((listed["name"], listed["type"], listed["role"]),
                         (name, "USER", {"id": role_id("OPERATOR")}))
        pair = login(username=name, password=password)
        assert_access_token(pair.access_token, name)
        ok(200, sdk(pair.access_token).v1.Roles.get_roles)

        self.assertIsNone(ok(204, ADMIN.client.v1.Users.remove_user, user_id))
        sdk_error(401, "INVALID_CREDENTIALS", UnresolvedError, ANON.v1.Tokens.create_token,
                  TokenCreationSpec(username=name, password=password))
        sdk_error(404, "REFRESH_TOKEN_NOT_FOUND", Error,
                  ANON.v1.tokens.access_token.Refresh.refresh_access_token, pair.refresh_token.id)

    def test_several_users_in_one_request(self):
        names = [f"svc-batch{i}-{RUN}" for i in range(2)]
        page = ok(201, ADMIN.client.v1.Users.add_users,
                  [User(name=n, type="SERVICE", role=RoleReference(id=role_id("VIEWER"))) for n in names])
        self.assertEqual([u.name for u in page.elements], names)
        self.assertEqual(len({u.api_key for u in page.elements}), 2, "each service user gets its own key")
        for user in page.elements:
            login_service(Service(user.id, user.name, user.api_key))

    def test_user_without_password(self):
        # Tessera keeps its own passwords, so a USER needs one; the SDK cannot send it.
        sdk_error(400, "INVALID_REQUEST", ErrorResponse, ADMIN.client.v1.Users.add_users,
                  [User(name=f"user-nopw-{RUN}@local", domain="local", type="USER",
                        role=RoleReference(id=role_id("VIEWER")))])

    def test_remove_unknown_user(self):
        sdk_error(404, "NOT_FOUND", Error, ADMIN.client.v1.Users.remove_user, str(uuid.uuid4()))


# ---------------------------------------------------------------------------------------
# Bearer authentication and roles on the protected endpoints.
# ---------------------------------------------------------------------------------------
class TestAuthorization(CompatCase):
    @classmethod
    def setUpClass(cls):
        cls.viewer = login_service(add_service("viewer", "VIEWER"))
        cls.operator = login_service(add_service("operator", "OPERATOR"))
        cls.target = add_service("target", "VIEWER")  # what the weak roles try to delete

    def assert_unauthorized(self, client: ApiClient, bearer: str | None) -> None:
        # 401 is declared for get_roles/get_users/add_users (typed ErrorResponse), not for
        # remove_user (UnresolvedError).
        for call, args, exc_type in ((client.v1.Roles.get_roles, (), ErrorResponse),
                                     (client.v1.Users.get_users, (), ErrorResponse),
                                     (client.v1.Users.add_users,
                                      ([User(name=f"svc-never-{RUN}", type="SERVICE",
                                             role=RoleReference(id=role_id("ADMIN")))],), ErrorResponse),
                                     (client.v1.Users.remove_user, (self.target.id,), UnresolvedError)):
            sdk_error(401, "Unauthorized", exc_type, call, *args)
            sent = WIRE[-1].request.headers.get("Authorization")
            self.assertEqual(sent, None if bearer is None else f"Bearer {bearer}")
            self.assertEqual(WIRE[-1].headers.get("WWW-Authenticate", "").split(" ")[0], "Bearer",
                             f"{WIRE[-1].request.method} {WIRE[-1].url}: {dict(WIRE[-1].headers)}")
        self.assertIn(self.target.id, listed_users(), "an unauthenticated call changed something")

    def test_no_bearer(self):
        self.assert_unauthorized(ANON, None)

    def test_garbage_bearer(self):
        self.assert_unauthorized(sdk("not-a-jwt"), "not-a-jwt")

    def test_tampered_bearer(self):
        header, payload, signature = ADMIN.pair.access_token.split(".")
        claims = b64url_json(payload)
        claims["sub"] = claims["user"] = claims["name"] = self.viewer.name
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        for token in (f"{header}.{forged}.{signature}",
                      f"{header}.{payload}.{('A' if signature[0] != 'A' else 'B') + signature[1:]}"):
            self.assert_unauthorized(sdk(token), token)

    def test_refresh_id_is_not_a_bearer(self):
        self.assert_unauthorized(sdk(ADMIN.pair.refresh_token.id), ADMIN.pair.refresh_token.id)

    def test_weak_roles_cannot_manage_users(self):
        for principal in (self.viewer, self.operator):
            with self.subTest(principal.name):
                # Reads are allowed...
                self.assertEqual({r.name for r in ok(200, principal.client.v1.Roles.get_roles).elements},
                                 ROLE_NAMES)
                ok(200, principal.client.v1.Users.get_users)
                # ...user management is ADMIN-only. 403 is not declared: UnresolvedError.
                sdk_error(403, "Forbidden", UnresolvedError, principal.client.v1.Users.add_users,
                          [User(name=f"svc-escalate-{RUN}", type="SERVICE",
                                role=RoleReference(id=role_id("ADMIN")))])
                sdk_error(403, "Forbidden", UnresolvedError, principal.client.v1.Users.remove_user,
                          self.target.id)
        listed = listed_users()
        self.assertIn(self.target.id, listed, "a forbidden delete happened")
        self.assertNotIn(f"svc-escalate-{RUN}", {u["name"] for u in listed.values()},
                         "a forbidden create happened")

    def test_raw_no_bearer(self):
        # Without any client at all: the contract's 401 body and challenge.
        response = raw("GET", "/v1/users")
        assert_error_body(response, 401, "Unauthorized")
        self.assertTrue(response.headers.get("WWW-Authenticate", "").startswith("Bearer"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
