#!/usr/bin/env python3
"""HelseID checked by libraries nobody on the project wrote: Authlib's OAuth 2.0 client
(`OAuth2Session` with `PrivateKeyJWT`, RFC 7523) makes the token, introspection and revocation
requests; joserfc signs the DPoP proofs (RFC 9449) and verifies every token HelseID issues against
its published JWKS.

    python3 check.py --issuer http://127.0.0.1:PORT/helseid \
        --clients DATA_DIR/helseid-clients.jsonl --admin-token TOKEN

`run` beside this file starts a server and calls this. Prints PASS or FAIL for every check,
then "N passed, M failed"; exits 1 if any check failed.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import traceback
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.client import DEFAULT_HEADERS
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc import jwk, jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.jwt import JWTClaimsRegistry

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TIMEOUT = 30
VERBOSE = False
# The interactive client registered in check 3: identity scopes and an API.
INTERACTIVE_SCOPE = (
    "openid profile helseid://scopes/identity/pid helseid://scopes/identity/security_level "
    "helseid://scopes/hpr/hpr_number nhn:kjernejournal/api"
)
CLAIM_PID = "helseid://claims/identity/pid"
CLAIM_SECURITY_LEVEL = "helseid://claims/identity/security_level"
CLAIM_HPR = "helseid://claims/hpr/hpr_number"
CLAIM_ORGNR_PARENT = "helseid://claims/client/claims/orgnr_parent"
# The smallest i64: a valid JSON integer, and as far in the past as a JWT time can be.
I64_MIN = -(2**63)


# ---------------------------------------------------------------------------------------------
# Reporting


class Failed(Exception):
    """A check's expectation that did not hold."""


def expect(condition, message):
    if not condition:
        raise Failed(message)


def show(resp):
    """A response as a report line: status, the headers that matter here, and the body."""
    body = resp.text
    if len(body) > 400:
        body = body[:400] + f"... ({len(resp.content)} bytes)"
    headers = {
        k: v
        for k, v in resp.headers.items()
        if k.lower() in ("content-type", "www-authenticate", "dpop-nonce", "location")
    }
    return f"{resp.request.method} {resp.request.url} -> HTTP {resp.status_code} {headers} {body}"


def expect_oauth_error(resp, status, error):
    """RFC 6749 §5.2: a JSON error object with the registered code, and never a 5xx."""
    expect(resp.status_code < 500, f"server error: {show(resp)}")
    try:
        body = resp.json()
    except ValueError:
        raise Failed(f"the error is not JSON: {show(resp)}") from None
    expect(
        resp.status_code == status and isinstance(body, dict) and body.get("error") == error,
        f"expected HTTP {status} error={error}: {show(resp)}",
    )
    expect(
        isinstance(body.get("error_description", ""), str),
        f"error_description is not a string: {show(resp)}",
    )
    if VERBOSE:
        print(f"     ({error}: {body.get('error_description')})")


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.done = set()

    def check(self, name, func, *needs):
        """Runs one check; a check whose prerequisite failed fails too, saying which."""
        missing = [n for n in needs if n not in self.done]
        if missing:
            self.fail(name, f"not run: it needs {', '.join(missing)}")
            return None
        try:
            result = func()
        except Failed as e:
            self.fail(name, str(e))
            return None
        except requests.RequestException as e:
            where = f"{e.request.method} {e.request.url}: " if e.request is not None else ""
            self.fail(name, f"no HTTP response: {where}{e}")
            return None
        except Exception as e:  # a library refusing what the server sent is a failure too
            ours = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
            where = f" (check.py line {ours[-1].lineno}: {ours[-1].line})" if ours else ""
            self.fail(name, f"{type(e).__name__}: {e}{where}")
            return None
        self.passed += 1
        self.done.add(name)
        print(f"PASS {name}", flush=True)
        return result

    def fail(self, name, why):
        self.failed += 1
        indented = "\n".join("     " + line for line in why.splitlines())
        print(f"FAIL {name}\n{indented}", flush=True)


# ---------------------------------------------------------------------------------------------
# DPoP (RFC 9449): Authlib has no DPoP client, so the proofs are made here, signed by joserfc.


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath_of(access_token):
    return b64url(hashlib.sha256(access_token.encode()).digest())


_CURRENT = object()


class DPoPKey:
    """A DPoP key pair and the last nonce the server handed out for it."""

    def __init__(self):
        self.key = ECKey.generate_key("P-256", private=True)
        full = self.key.as_dict(private=False)
        self.public = {m: full[m] for m in ("kty", "crv", "x", "y")}
        self.nonce = None

    @property
    def jkt(self):
        """The RFC 7638 SHA-256 thumbprint: what a bound token's cnf.jkt must be."""
        return jwk.thumbprint(self.public)

    def proof(self, htm, htu, *, access_token=None, nonce=_CURRENT, jti=None, iat=None):
        claims = {
            "jti": jti or generate_token(32),
            "htm": htm,
            "htu": htu,
            "iat": int(time.time()) if iat is None else iat,
        }
        nonce = self.nonce if nonce is _CURRENT else nonce
        if nonce:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = ath_of(access_token)
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])


# ---------------------------------------------------------------------------------------------
# Clients


class HelseIdPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's private_key_jwt (RFC 7523 §2.2), built by Authlib's own `private_key_jwt_sign`.

    Two things differ from `PrivateKeyJWT`'s defaults: the assertion lives 60 s (HelseID accepts
    at most 60 s; Authlib's default is 3600 s, refused in check 6), and the `kid` is named. The
    claims are passed fresh on every call: Authlib writes the generated `jti` into a `claims`
    dict given to `PrivateKeyJWT(claims=...)`, so a shared dict would repeat the jti.
    """

    def __init__(self, kid, lifetime=60):
        super().__init__(token_endpoint=None, alg="ES256")
        self.kid = kid
        self.lifetime = lifetime

    def sign(self, auth, token_endpoint):
        # token_endpoint is the URL the request goes to: the assertion's aud (RFC 7523 §3).
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            header={"kid": self.kid},
            expires_in=self.lifetime,
        )


class Client:
    """One OAuth client: an Authlib `OAuth2Session` authenticating with private_key_jwt, and its
    DPoP key."""

    def __init__(self, ctx, client_id, private_jwk, scope, redirect_uri=None):
        self.ctx = ctx
        self.client_id = client_id
        self.key = ECKey.import_key(private_jwk)
        self.kid = private_jwk.get("kid")
        self.session = OAuth2Session(
            client_id,
            self.key,
            token_endpoint_auth_method="private_key_jwt",
            revocation_endpoint_auth_method="private_key_jwt",
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            default_timeout=TIMEOUT,
        )
        self.session.register_client_auth_method(HelseIdPrivateKeyJWT(self.kid))
        self.session.register_compliance_hook("access_token_response", self._saw)
        self.dpop = DPoPKey()
        self.active_dpop = self.dpop
        self.token_responses = []

    def _saw(self, resp):
        self.token_responses.append(resp)
        self._keep_nonce(resp)
        return resp

    def _keep_nonce(self, resp):
        nonce = resp.headers.get("DPoP-Nonce")
        if nonce:
            self.active_dpop.nonce = nonce

    def fetch_token(self, dpop=None, **kwargs):
        """Authlib's fetch_token with a DPoP proof. Told `use_dpop_nonce` (RFC 9449 §8), it
        tries once more with the nonce; Authlib signs a new assertion, as the jti is spent."""
        dpop = dpop or self.dpop
        self.active_dpop = dpop
        try:
            for attempt in (1, 2):
                headers = {**DEFAULT_HEADERS, "DPoP": dpop.proof("POST", self.ctx.token_endpoint)}
                try:
                    return self.session.fetch_token(
                        self.ctx.token_endpoint, headers=headers, **kwargs
                    )
                except OAuthError as e:
                    if e.error == "use_dpop_nonce" and attempt == 1 and dpop.nonce:
                        continue
                    raise
        finally:
            self.active_dpop = self.dpop

    def post_authenticated(self, url, data, dpop=True):
        """A form post with Authlib's private_key_jwt client authentication (aud = `url`) and,
        if `dpop`, a DPoP proof, retried once on use_dpop_nonce."""
        for attempt in (1, 2):
            headers = {"Accept": "application/json"}
            if dpop:
                headers["DPoP"] = self.dpop.proof("POST", url)
            resp = self.session.post(
                url,
                data=data,
                headers=headers,
                auth=self.session.client_auth("private_key_jwt"),
                withhold_token=True,
            )
            self._keep_nonce(resp)
            if resp.status_code == 400 and _error_of(resp) == "use_dpop_nonce" and attempt == 1:
                continue
            return resp

    def assertion(self, aud=None, claims=None, lifetime=55, kid=True):
        """A client assertion signed by Authlib, with `claims` overriding its defaults."""
        return private_key_jwt_sign(
            self.key,
            client_id=self.client_id,
            token_endpoint=aud or self.ctx.token_endpoint,
            alg="ES256",
            claims=dict(claims or {}),
            header={"kid": self.kid} if kid else {},
            expires_in=lifetime,
        )

    def current_nonce(self):
        """A nonce fresh from the token endpoint: a proof without one is answered with one."""
        resp = requests.post(
            self.ctx.token_endpoint,
            data={"grant_type": "client_credentials"},
            headers={"DPoP": self.dpop.proof("POST", self.ctx.token_endpoint, nonce=None)},
            timeout=TIMEOUT,
        )
        expect_oauth_error(resp, 400, "use_dpop_nonce")
        nonce = resp.headers.get("DPoP-Nonce")
        expect(nonce, f"use_dpop_nonce without a DPoP-Nonce header: {show(resp)}")
        self.dpop.nonce = nonce
        return nonce


def _error_of(resp):
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


# ---------------------------------------------------------------------------------------------
# The test identity provider's page, read as a browser would


class LoginPage(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action = None
        self.method = None
        self.request = None
        self.pids = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self.method = a.get("action"), (a.get("method") or "get").lower()
        elif tag == "input" and a.get("type") == "hidden" and a.get("name") == "request":
            self.request = a.get("value")
        elif tag == "button" and a.get("name") == "pid":
            self.pids.append(a.get("value"))


class Browser:
    """Follows the authorization request to the login page, signs in as the first person listed
    (health personnel come first) and returns where HelseID sends the browser back to."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.http = requests.Session()

    def sign_in(self, authorization_url):
        page = self.http.get(authorization_url, allow_redirects=False, timeout=TIMEOUT)
        expect(
            page.status_code == 200
            and page.headers.get("Content-Type", "").startswith("text/html"),
            f"the authorization endpoint did not show a login page: {show(page)}",
        )
        form = LoginPage()
        form.feed(page.text)
        expect(form.request and form.pids, f"no request or pid on the login page: {show(page)}")
        expect(form.method == "post", f"the login form's method is {form.method!r}")
        login_url = urljoin(page.url, form.action)
        expect(
            login_url == self.ctx.issuer + "/connect/login",
            f"the login form posts to {login_url}, not {self.ctx.issuer}/connect/login",
        )
        done = self.http.post(
            login_url,
            data={"request": form.request, "pid": form.pids[0]},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        expect(done.status_code in (302, 303), f"the login did not redirect: {show(done)}")
        return done.headers["Location"], form.pids[0]


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# ---------------------------------------------------------------------------------------------
# The checks


class Context:
    def __init__(self, args):
        self.issuer = args.issuer.rstrip("/")
        self.admin_token = args.admin_token
        with open(args.clients, encoding="utf-8") as f:
            self.system_clients = [json.loads(line) for line in f if line.strip()]
        self.meta = None
        self.keys = None
        self.token_endpoint = None
        self.browser = Browser(self)

    def jwks(self):
        resp = requests.get(self.meta["jwks_uri"], timeout=TIMEOUT)
        expect(resp.status_code == 200, f"JWKS: {show(resp)}")
        return resp.json()

    def verify(self, token, typ, **claims):
        """Verifies `token` against HelseID's JWKS with joserfc and checks its claims."""
        decoded = jwt.decode(
            token, self.keys, algorithms=self.meta["id_token_signing_alg_values_supported"]
        )
        expect(
            str(decoded.header.get("typ", "")).lower() in typ,
            f"typ header is {decoded.header.get('typ')!r}, expected one of {sorted(typ)}",
        )
        expect(decoded.header.get("kid"), f"no kid in the header {decoded.header}")
        options = {"iss": {"essential": True, "value": self.issuer}}
        options.update(claims)
        JWTClaimsRegistry(leeway=5, **options).validate(decoded.claims)
        return decoded


def discovery(ctx):
    resp = requests.get(ctx.issuer + "/.well-known/openid-configuration", timeout=TIMEOUT)
    expect(resp.status_code == 200, show(resp))
    expect(resp.headers.get("Content-Type", "").startswith("application/json"), show(resp))
    meta = resp.json()
    expect(meta.get("issuer") == ctx.issuer, f"issuer {meta.get('issuer')!r} != {ctx.issuer!r}")
    for field in (
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "pushed_authorization_request_endpoint",
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "registration_endpoint",
    ):
        expect(
            isinstance(meta.get(field), str) and meta[field].startswith(ctx.issuer + "/"),
            f"{field} is {meta.get(field)!r}",
        )
    expect(
        meta.get("token_endpoint_auth_methods_supported") == ["private_key_jwt"],
        f"token_endpoint_auth_methods_supported {meta.get('token_endpoint_auth_methods_supported')}",
    )
    expect("ES256" in meta.get("dpop_signing_alg_values_supported", []), "no ES256 for DPoP")
    expect(
        meta.get("code_challenge_methods_supported") == ["S256"],
        f"code_challenge_methods_supported {meta.get('code_challenge_methods_supported')}",
    )
    expect("code" in meta.get("response_types_supported", []), "response type code missing")
    for grant in ("client_credentials", "authorization_code"):
        expect(
            grant in meta.get("grant_types_supported", []), f"{grant} not in grant_types_supported"
        )
    expect(meta.get("authorization_response_iss_parameter_supported") is True, "no RFC 9207 iss")
    for alg in meta.get("token_endpoint_auth_signing_alg_values_supported", []):
        expect(not alg.startswith("HS") and alg != "none", f"{alg} accepted for client assertions")
    ctx.meta = meta
    ctx.token_endpoint = meta["token_endpoint"]


def jwks_check(ctx):
    keys = ctx.jwks()
    expect(keys.get("keys"), f"empty JWKS {keys}")
    for key in keys["keys"]:
        private = {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
        expect(
            not private, f"the JWKS publishes private members {sorted(private)} of {key.get('kid')}"
        )
        expect(key.get("kid"), f"a JWKS key without kid: {key}")
    ctx.keys = KeySet.import_key_set(keys)


def system_client(ctx):
    for c in ctx.system_clients:
        if "nhn:msh/api" in c["scope"].split():
            return c
    raise Failed("no client with scope nhn:msh/api in the clients file")


def client_credentials(ctx, state):
    info = system_client(ctx)
    client = Client(ctx, info["client_id"], info["private_jwk"], "nhn:msh/api")
    token = client.fetch_token(grant_type="client_credentials")
    first, last = client.token_responses[0], client.token_responses[-1]
    expect_oauth_error(first, 400, "use_dpop_nonce")
    expect(first.headers.get("DPoP-Nonce"), f"use_dpop_nonce without DPoP-Nonce: {show(first)}")
    expect(len(client.token_responses) == 2, f"{len(client.token_responses)} token requests")
    expect(last.status_code == 200, show(last))
    expect(
        "no-store" in last.headers.get("Cache-Control", ""),
        f"no Cache-Control: no-store: {show(last)}",
    )
    expect(
        token.get("token_type") == "DPoP", f"token_type {token.get('token_type')!r} (RFC 9449 §5)"
    )
    expect(
        isinstance(token.get("expires_in"), int) and token["expires_in"] > 0, f"expires_in {token}"
    )
    at = ctx.verify(
        token["access_token"],
        {"at+jwt", "application/at+jwt"},
        sub={"essential": True, "value": info["client_id"]},
        aud={"essential": True, "value": "nhn:msh"},
        exp={"essential": True},
        iat={"essential": True},
        nbf={"essential": True},
        jti={"essential": True},
        client_id={"essential": True, "value": info["client_id"]},
        scope={"essential": True, "value": "nhn:msh/api"},
        **{CLAIM_ORGNR_PARENT: {"essential": True, "value": info["orgnr_parent"]}},
    )
    cnf = at.claims.get("cnf") or {}
    expect(cnf.get("jkt") == client.dpop.jkt, f"cnf {cnf} != jkt {client.dpop.jkt}")
    expect(client.dpop.jkt == client.dpop.key.thumbprint(), "joserfc thumbprints disagree")
    expect(CLAIM_PID not in at.claims, "a system token names a person")
    state["system"] = client
    state["system_info"] = info
    state["system_token"] = token


def registration_refused(ctx):
    body = {"client_name": "no admin token", "orgnr_parent": ctx.system_clients[0]["orgnr_parent"]}
    resp = requests.post(ctx.meta["registration_endpoint"], json=body, timeout=TIMEOUT)
    expect_oauth_error(resp, 401, "invalid_token")
    wrong = requests.post(
        ctx.meta["registration_endpoint"],
        json=body,
        headers={"Authorization": "Bearer " + ctx.admin_token + "x"},
        timeout=TIMEOUT,
    )
    expect_oauth_error(wrong, 401, "invalid_token")


def register(ctx, state):
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    public = key.as_dict(private=False)
    public.update(alg="ES256", use="sig")
    redirect_uri = "http://127.0.0.1:53682/callback"
    metadata = {
        "client_name": "Authlib conformance client",
        "jwks": {"keys": [public]},
        "grant_types": ["authorization_code"],
        "redirect_uris": [redirect_uri],
        "scope": INTERACTIVE_SCOPE,
        "token_endpoint_auth_method": "private_key_jwt",
        "dpop_bound_access_tokens": True,
        "orgnr_parent": ctx.system_clients[0]["orgnr_parent"],
    }
    resp = requests.post(
        ctx.meta["registration_endpoint"],
        json=metadata,
        headers={"Authorization": "Bearer " + ctx.admin_token},
        timeout=TIMEOUT,
    )
    expect(resp.status_code == 201, f"RFC 7591 §3.2.1 wants 201: {show(resp)}")
    reg = resp.json()
    expect(isinstance(reg.get("client_id"), str) and reg["client_id"], f"no client_id: {reg}")
    for field in ("client_name", "grant_types", "redirect_uris", "token_endpoint_auth_method"):
        expect(reg.get(field) == metadata[field], f"{field}: registered {reg.get(field)!r}")
    expect(
        set(reg.get("scope", "").split()) == set(INTERACTIVE_SCOPE.split()),
        f"scope {reg.get('scope')!r}",
    )
    expect(
        all("d" not in k for k in reg.get("jwks", {}).get("keys", [])),
        "the registration response holds a private key",
    )
    private = key.as_dict(private=True)
    state["interactive"] = Client(ctx, reg["client_id"], private, INTERACTIVE_SCOPE, redirect_uri)
    state["redirect_uri"] = redirect_uri


def start_login(ctx, client, **extra):
    """Authlib's authorization URL (PKCE S256), and the verifier, state and nonce behind it."""
    verifier = generate_token(64)
    nonce = generate_token(24)
    url, state = client.session.create_authorization_url(
        ctx.meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
    )
    return url, verifier, state, nonce


def check_callback(ctx, location, redirect_uri, state):
    expect(location.startswith(redirect_uri + "?"), f"redirected to {location}")
    q = query_of(location)
    expect(q.get("iss") == ctx.issuer, f"iss {q.get('iss')!r} (RFC 9207 §2)")
    expect(q.get("state") == state, f"state {q.get('state')!r} != {state!r}")
    expect(q.get("code"), f"no code in {location}")
    return q["code"]


def verify_user_tokens(ctx, client, token, nonce, pid):
    expect(token.get("token_type") == "DPoP", f"token_type {token.get('token_type')!r}")
    expect(token.get("id_token"), "no id_token though openid was requested")
    id_token = ctx.verify(
        token["id_token"],
        {"jwt"},
        aud={"essential": True, "value": client.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
        **{
            CLAIM_PID: {"essential": True, "value": pid},
            CLAIM_SECURITY_LEVEL: {"essential": True, "value": "4"},
            CLAIM_HPR: {"essential": True},
            "name": {"essential": True},
        },
    )
    aud = id_token.claims["aud"]
    expect(
        aud == client.client_id or aud == [client.client_id],
        f"ID token aud {aud!r}: OIDC Core §2 needs only the client_id, or azp",
    )
    at = ctx.verify(
        token["access_token"],
        {"at+jwt", "application/at+jwt"},
        aud={"essential": True, "value": "nhn:kjernejournal"},
        sub={"essential": True, "value": id_token.claims["sub"]},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        client_id={"essential": True, "value": client.client_id},
        **{
            CLAIM_PID: {"essential": True, "value": pid},
            CLAIM_SECURITY_LEVEL: {"essential": True, "value": "4"},
            CLAIM_HPR: {"essential": True},
            CLAIM_ORGNR_PARENT: {"essential": True},
            "name": {"essential": True},
        },
    )
    expect(ctx.issuer in at.claims["aud"], f"aud {at.claims['aud']} lacks the issuer (openid)")
    expect(
        set(at.claims["scope"].split()) == set(INTERACTIVE_SCOPE.split()),
        f"scope {at.claims['scope']!r}",
    )
    expect(
        (at.claims.get("cnf") or {}).get("jkt") == client.dpop.jkt, f"cnf {at.claims.get('cnf')}"
    )
    return id_token, at


def authorization_code(ctx, state):
    client = state["interactive"]
    url, verifier, st, nonce = start_login(ctx, client)
    q = query_of(url)
    expect(q.get("code_challenge_method") == "S256", f"Authlib sent {q}")
    location, pid = ctx.browser.sign_in(url)
    check_callback(ctx, location, state["redirect_uri"], st)
    token = client.fetch_token(authorization_response=location, state=st, code_verifier=verifier)
    id_token, _ = verify_user_tokens(ctx, client, token, nonce, pid)
    state["user_token"] = token
    state["user_id_token"] = id_token
    state["user_pid"] = pid
    state["used_code_response"] = (location, st, verifier)


def userinfo(ctx, client, access_token, proof=None):
    url = ctx.meta["userinfo_endpoint"]
    proof = proof or client.dpop.proof("GET", url, access_token=access_token, nonce=None)
    return requests.get(
        url,
        headers={
            "Authorization": "DPoP " + access_token,
            "DPoP": proof,
            "Accept": "application/json",
        },
        timeout=TIMEOUT,
    )


def userinfo_check(ctx, state):
    client, token = state["interactive"], state["user_token"]
    proof = client.dpop.proof(
        "GET", ctx.meta["userinfo_endpoint"], access_token=token["access_token"], nonce=None
    )
    resp = userinfo(ctx, client, token["access_token"], proof)
    expect(resp.status_code == 200, show(resp))
    info = resp.json()
    expect(
        info.get("sub") == state["user_id_token"].claims["sub"],
        f"sub {info.get('sub')!r} differs from the ID token's",
    )
    expect(info.get(CLAIM_PID) == state["user_pid"], f"userinfo {info}")
    expect(info.get(CLAIM_SECURITY_LEVEL) == "4", f"userinfo {info}")
    # The same proof again is a replay (RFC 9449 §11.1).
    again = userinfo(ctx, client, token["access_token"], proof)
    expect(again.status_code == 401, f"a replayed proof was accepted: {show(again)}")
    expect("invalid_dpop_proof" in again.headers.get("WWW-Authenticate", ""), show(again))


def userinfo_bearer_refused(ctx, state):
    """RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused."""
    token = state["user_token"]["access_token"]
    resp = requests.get(
        ctx.meta["userinfo_endpoint"], headers={"Authorization": "Bearer " + token}, timeout=TIMEOUT
    )
    expect(resp.status_code == 401, show(resp))
    expect(resp.headers.get("WWW-Authenticate", "").startswith("DPoP"), show(resp))
    # Another key's proof with the right ath is refused as well.
    other = DPoPKey().proof("GET", ctx.meta["userinfo_endpoint"], access_token=token, nonce=None)
    resp = userinfo(ctx, state["interactive"], token, other)
    expect(
        resp.status_code == 401
        and "invalid_dpop_proof" in resp.headers.get("WWW-Authenticate", ""),
        show(resp),
    )


def pkce_required(ctx, state):
    """RFC 7636 §4.4.1 and the S256-only metadata: no challenge, or plain, is refused with an
    error redirect carrying iss (RFC 9207) and state; an unregistered redirect URI is never
    redirected to (RFC 6749 §4.1.2.1)."""
    client = state["interactive"]
    endpoint = ctx.meta["authorization_endpoint"]
    for label, extra in (
        ("no code_challenge", {}),
        (
            "code_challenge_method plain",
            {"code_challenge": generate_token(43), "code_challenge_method": "plain"},
        ),
    ):
        url, st = client.session.create_authorization_url(endpoint, **extra)
        resp = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        expect(resp.status_code in (302, 303), f"{label}: {show(resp)}")
        location = resp.headers["Location"]
        q = query_of(location)
        expect(
            location.startswith(state["redirect_uri"] + "?"), f"{label}: redirected to {location}"
        )
        expect(q.get("error") == "invalid_request", f"{label}: {q}")
        expect(q.get("iss") == ctx.issuer and q.get("state") == st, f"{label}: {q}")
    url, _ = client.session.create_authorization_url(
        endpoint, code_verifier=generate_token(64), redirect_uri="http://127.0.0.1:9/elsewhere"
    )
    resp = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    expect(
        resp.status_code == 400 and "Location" not in resp.headers,
        f"unregistered redirect_uri: {show(resp)}",
    )


def par_flow(ctx, state):
    client = state["interactive"]
    url, verifier, st, nonce = start_login(ctx, client)
    pushed = client.post_authenticated(
        ctx.meta["pushed_authorization_request_endpoint"], query_of(url)
    )
    expect(pushed.status_code == 201, f"RFC 9126 §2.2 wants 201: {show(pushed)}")
    body = pushed.json()
    request_uri = body.get("request_uri", "")
    expect(
        request_uri.startswith("urn:ietf:params:oauth:request_uri:"), f"request_uri {request_uri!r}"
    )
    expect(
        isinstance(body.get("expires_in"), int) and body["expires_in"] > 0, f"expires_in in {body}"
    )
    browser_url = (
        ctx.meta["authorization_endpoint"]
        + "?"
        + urlencode({"client_id": client.client_id, "request_uri": request_uri})
    )
    location, pid = ctx.browser.sign_in(browser_url)
    check_callback(ctx, location, state["redirect_uri"], st)
    token = client.fetch_token(authorization_response=location, state=st, code_verifier=verifier)
    verify_user_tokens(ctx, client, token, nonce, pid)
    state["par_token"] = token


def par_dpop_binding(ctx, state):
    """RFC 9449 §10: a DPoP proof at PAR binds the code to that key; another key is refused."""
    client = state["interactive"]
    url, verifier, st, _ = start_login(ctx, client)
    pushed = client.post_authenticated(
        ctx.meta["pushed_authorization_request_endpoint"], query_of(url)
    )
    expect(pushed.status_code == 201, show(pushed))
    browser_url = (
        ctx.meta["authorization_endpoint"]
        + "?"
        + urlencode({"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]})
    )
    location, _ = ctx.browser.sign_in(browser_url)
    other = DPoPKey()
    try:
        client.fetch_token(
            dpop=other, authorization_response=location, state=st, code_verifier=verifier
        )
    except OAuthError as e:
        expect_oauth_error(client.token_responses[-1], 400, "invalid_dpop_proof")
        return
    raise Failed(
        f"a code bound to one DPoP key was redeemed with another: {show(client.token_responses[-1])}"
    )


def introspect(ctx, client, token):
    resp = client.session.introspect_token(
        ctx.meta["introspection_endpoint"], token=token, token_type_hint="access_token"
    )
    expect(resp.status_code == 200, show(resp))
    expect(resp.headers.get("Content-Type", "").startswith("application/json"), show(resp))
    return resp.json()


def introspection_active(ctx, state):
    for who, client, token in (
        ("system", state["system"], state["system_token"]),
        ("interactive", state["interactive"], state["user_token"]),
    ):
        body = introspect(ctx, client, token["access_token"])
        expect(body.get("active") is True, f"{who}: own token not active: {body}")
        expect(body.get("client_id") == client.client_id, f"{who}: client_id in {body}")
        expect(body.get("scope") == token["scope"], f"{who}: scope in {body}")
        expect(isinstance(body.get("exp"), int), f"{who}: exp in {body}")
        expect(body.get("token_type") == "DPoP", f"{who}: token_type in {body} (RFC 9449 §6.2)")
        expect(
            (body.get("cnf") or {}).get("jkt") == client.dpop.jkt,
            f"{who}: cnf in {body} (RFC 9449 §6.2)",
        )
    garbage = introspect(ctx, state["system"], "not-a-token")
    expect(garbage == {"active": False}, f"an unknown token: {garbage} (RFC 7662 §2.2)")


def revocation(ctx, state):
    client, token = state["interactive"], state["user_token"]["access_token"]
    resp = client.session.revoke_token(
        ctx.meta["revocation_endpoint"], token=token, token_type_hint="access_token"
    )
    expect(resp.status_code == 200, f"RFC 7009 §2.2 wants 200: {show(resp)}")
    after = userinfo(ctx, client, token)
    expect(after.status_code == 401, f"userinfo after revocation: {show(after)}")
    challenge = after.headers.get("WWW-Authenticate", "")
    expect(
        challenge.startswith("DPoP") and 'error="invalid_token"' in challenge,
        f"RFC 9449 §7.1: {show(after)}",
    )
    body = introspect(ctx, client, token)
    expect(body.get("active") is False, f"introspection after revocation: {body}")
    # Revoking again, or a token that is not one, is still 200 (RFC 7009 §2.2).
    again = client.session.revoke_token(ctx.meta["revocation_endpoint"], token=token)
    expect(again.status_code == 200, show(again))


# --- Bad input ---------------------------------------------------------------------------------


def token_post(ctx, form, dpop_proof=None):
    headers = {"Accept": "application/json"}
    if dpop_proof:
        headers["DPoP"] = dpop_proof
    return requests.post(ctx.token_endpoint, data=form, headers=headers, timeout=TIMEOUT)


def cc_form(assertion, scope="nhn:msh/api", grant_type="client_credentials"):
    return {
        "grant_type": grant_type,
        "scope": scope,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }


def valid_proof(ctx, client):
    client.current_nonce()
    return client.dpop.proof("POST", ctx.token_endpoint)


def unsigned_jwt(header, claims, key=None):
    """A JWT joserfc would rightly refuse to make: alg none, or HS256 keyed by public material."""
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = (
        b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    )
    return signing_input + "." + b64url(signature)


def assertion_claims(ctx, client, **override):
    now = int(time.time())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": ctx.token_endpoint,
        "iat": now,
        "exp": now + 55,
        "jti": generate_token(32),
    }
    claims.update(override)
    return claims


def bad_alg_none(ctx, state):
    client = state["system"]
    forged = unsigned_jwt({"alg": "none", "typ": "JWT"}, assertion_claims(ctx, client))
    expect_oauth_error(
        token_post(ctx, cc_form(forged), valid_proof(ctx, client)), 401, "invalid_client"
    )


def bad_hs256_public_key(ctx, state):
    client = state["system"]
    public_pem = client.key.as_pem(private=False)
    public_json = json.dumps(client.key.as_dict(private=False)).encode()
    for secret in (public_pem, public_json):
        forged = unsigned_jwt(
            {"alg": "HS256", "typ": "JWT", "kid": client.kid}, assertion_claims(ctx, client), secret
        )
        expect_oauth_error(
            token_post(ctx, cc_form(forged), valid_proof(ctx, client)), 401, "invalid_client"
        )


def bad_expired(ctx, state):
    client = state["system"]
    now = int(time.time())
    for iat, exp in ((now - 300, now - 240), (now - 300, I64_MIN)):
        old = client.assertion(claims={"iat": iat, "exp": exp})
        try:
            expect_oauth_error(
                token_post(ctx, cc_form(old), valid_proof(ctx, client)), 401, "invalid_client"
            )
        except Failed as e:
            raise Failed(f"exp={exp}: {e}") from None


def bad_long_lived(ctx, state):
    client = state["system"]
    # Authlib's PrivateKeyJWT as it comes: exp = iat + 3600.
    session = OAuth2Session(
        client.client_id,
        client.key,
        token_endpoint_auth_method="private_key_jwt",
        scope="nhn:msh/api",
    )
    session.register_client_auth_method(PrivateKeyJWT(ctx.token_endpoint, alg="ES256"))
    seen = []
    session.register_compliance_hook("access_token_response", lambda r: seen.append(r) or r)
    headers = {**DEFAULT_HEADERS, "DPoP": valid_proof(ctx, client)}
    try:
        session.fetch_token(ctx.token_endpoint, grant_type="client_credentials", headers=headers)
    except OAuthError:
        pass
    expect(seen, "no response")
    expect_oauth_error(seen[-1], 401, "invalid_client")
    # And 120 s ahead, by hand.
    now = int(time.time())
    ahead = client.assertion(claims={"iat": now, "exp": now + 120})
    expect_oauth_error(
        token_post(ctx, cc_form(ahead), valid_proof(ctx, client)), 401, "invalid_client"
    )


def bad_reused_jti(ctx, state):
    client = state["system"]
    assertion = client.assertion()
    first = token_post(ctx, cc_form(assertion), valid_proof(ctx, client))
    expect(first.status_code == 200, f"the first use was refused: {show(first)}")
    again = token_post(ctx, cc_form(assertion), valid_proof(ctx, client))
    expect_oauth_error(again, 401, "invalid_client")
    # A new assertion with the spent jti is refused too.
    same_jti = client.assertion(
        claims={"jti": json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))["jti"]}
    )
    expect_oauth_error(
        token_post(ctx, cc_form(same_jti), valid_proof(ctx, client)), 401, "invalid_client"
    )


def bad_audience(ctx, state):
    client = state["system"]
    for aud in (
        "https://helseid.example/",
        ctx.issuer + "/connect/introspect",
        ctx.meta["userinfo_endpoint"],
    ):
        wrong = client.assertion(aud=aud)
        expect_oauth_error(
            token_post(ctx, cc_form(wrong), valid_proof(ctx, client)), 401, "invalid_client"
        )


def bad_dpop_htu_htm(ctx, state):
    client = state["system"]
    client.current_nonce()
    for htm, htu in (
        ("POST", ctx.meta["userinfo_endpoint"]),
        ("POST", ctx.token_endpoint.replace("127.0.0.1", "localhost")),
        ("GET", ctx.token_endpoint),
        ("post", ctx.token_endpoint),
    ):
        proof = client.dpop.proof(htm, htu)
        resp = token_post(ctx, cc_form(client.assertion()), proof)
        try:
            expect_oauth_error(resp, 400, "invalid_dpop_proof")
        except Failed as e:
            raise Failed(f"htm={htm} htu={htu}: {e}") from None


def bad_dpop_replay(ctx, state):
    client = state["system"]
    proof = valid_proof(ctx, client)
    first = token_post(ctx, cc_form(client.assertion()), proof)
    expect(first.status_code == 200, f"the first use was refused: {show(first)}")
    expect_oauth_error(
        token_post(ctx, cc_form(client.assertion()), proof), 400, "invalid_dpop_proof"
    )


def bad_dpop_future(ctx, state):
    client = state["system"]
    client.current_nonce()
    proof = client.dpop.proof("POST", ctx.token_endpoint, iat=int(time.time()) + 3600)
    expect_oauth_error(
        token_post(ctx, cc_form(client.assertion()), proof), 400, "invalid_dpop_proof"
    )


def bad_dpop_old(ctx, state):
    client = state["system"]
    client.current_nonce()
    proof = client.dpop.proof("POST", ctx.token_endpoint, iat=int(time.time()) - 600)
    expect_oauth_error(
        token_post(ctx, cc_form(client.assertion()), proof), 400, "invalid_dpop_proof"
    )


def bad_dpop_iat_min(ctx, state):
    """RFC 9449 §4.3 (11): iat must be within an acceptable window. An iat of -2^63 (a valid
    JSON integer, the smallest i64) is as far in the past as a proof can be."""
    problems = []
    client = state["system"]
    client.current_nonce()
    proof = client.dpop.proof("POST", ctx.token_endpoint, iat=I64_MIN)
    resp = token_post(ctx, cc_form(client.assertion()), proof)
    try:
        expect_oauth_error(resp, 400, "invalid_dpop_proof")
    except Failed as e:
        problems.append(f"token endpoint, proof iat={I64_MIN}: {e}")
    user, token = state["interactive"], state["par_token"]["access_token"]
    url = ctx.meta["userinfo_endpoint"]
    resp = userinfo(
        ctx, user, token, user.dpop.proof("GET", url, access_token=token, nonce=None, iat=I64_MIN)
    )
    if not (
        resp.status_code == 401 and "invalid_dpop_proof" in resp.headers.get("WWW-Authenticate", "")
    ):
        problems.append(
            f"userinfo, proof iat={I64_MIN}: expected 401 invalid_dpop_proof: {show(resp)}"
        )
    expect(not problems, "\n".join(problems))


def bad_dpop_missing(ctx, state):
    client = state["system"]
    expect_oauth_error(token_post(ctx, cc_form(client.assertion())), 400, "invalid_dpop_proof")


def bad_scope(ctx, state):
    client = state["system"]
    resp = token_post(
        ctx,
        cc_form(client.assertion(), scope="nhn:msh/api nhn:no-such/api"),
        valid_proof(ctx, client),
    )
    expect_oauth_error(resp, 400, "invalid_scope")


def bad_grant_type(ctx, state):
    client = state["system"]
    for grant in ("password", "urn:example:no-such-grant"):
        resp = token_post(
            ctx, cc_form(client.assertion(), grant_type=grant), valid_proof(ctx, client)
        )
        expect_oauth_error(resp, 400, "unsupported_grant_type")


def bad_huge_body(ctx, state):
    # 2 MiB and 1 KiB. (The token endpoint's limit is 2 MiB inclusive: a body of exactly
    # 2,097,152 bytes is read and answered 400 invalid_request, which is no error.)
    prefix = "grant_type=client_credentials&scope="
    body = prefix + "a" * (2 * 1024 * 1024 + 1024 - len(prefix))
    resp = requests.post(
        ctx.token_endpoint,
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    expect(resp.status_code == 413, f"expected 413: {show(resp)}")
    expect(resp.headers.get("Content-Type", "").startswith("application/problem+json"), show(resp))
    problem = resp.json()
    expect(problem.get("status") == 413, f"problem {problem} (RFC 9457)")


def bad_code_verifier(ctx, state):
    client = state["interactive"]
    url, verifier, st, _ = start_login(ctx, client)
    location, _ = ctx.browser.sign_in(url)
    wrong = generate_token(64)
    expect(wrong != verifier, "the verifiers are equal")
    try:
        client.fetch_token(authorization_response=location, state=st, code_verifier=wrong)
    except OAuthError:
        expect_oauth_error(client.token_responses[-1], 400, "invalid_grant")
        return
    raise Failed(
        f"a code was redeemed with the wrong code_verifier: {show(client.token_responses[-1])}"
    )


def bad_code_reuse(ctx, state):
    client = state["interactive"]
    location, st, verifier = state["used_code_response"]
    try:
        client.fetch_token(authorization_response=location, state=st, code_verifier=verifier)
    except OAuthError:
        expect_oauth_error(client.token_responses[-1], 400, "invalid_grant")
        return
    raise Failed(f"a code was redeemed twice: {show(client.token_responses[-1])}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issuer", required=True)
    parser.add_argument(
        "--clients", required=True, help="helseid-clients.jsonl from `helsenett synth`"
    )
    parser.add_argument("--admin-token", required=True)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print each expected error's description"
    )
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    ctx = Context(args)
    state = {}
    r = Report()

    D, J = "1 discovery document", "1 JWKS"
    CC = "2 client_credentials + private_key_jwt + DPoP nonce retry, token verified"
    REG = "3 RFC 7591 registration of an interactive client"
    AC = "3 authorization code + PKCE S256 + DPoP, ID token and access token verified"
    r.check(D, lambda: discovery(ctx))
    r.check(J, lambda: jwks_check(ctx), D)
    r.check(CC, lambda: client_credentials(ctx, state), J)
    r.check(
        "3 registration without the admin token is refused", lambda: registration_refused(ctx), D
    )
    r.check(REG, lambda: register(ctx, state), D)
    r.check(AC, lambda: authorization_code(ctx, state), J, REG)
    r.check(
        "3 userinfo with DPoP (ath), and a replayed proof refused",
        lambda: userinfo_check(ctx, state),
        AC,
    )
    r.check(
        "3 userinfo refuses the DPoP-bound token as Bearer or with another key",
        lambda: userinfo_bearer_refused(ctx, state),
        AC,
    )
    r.check(
        "3 no PKCE or plain PKCE refused; unregistered redirect_uri not redirected to",
        lambda: pkce_required(ctx, state),
        REG,
    )
    PAR = "4 PAR (private_key_jwt + DPoP) then the code flow with request_uri"
    r.check(PAR, lambda: par_flow(ctx, state), J, REG)
    r.check(
        "4 a code bound by PAR's DPoP key is refused with another key",
        lambda: par_dpop_binding(ctx, state),
        J,
        REG,
    )
    INTRO = "5 introspection: own tokens active, an unknown token inactive"
    r.check(INTRO, lambda: introspection_active(ctx, state), CC, AC)
    r.check(
        "5 revocation, then userinfo 401 and introspection inactive",
        lambda: revocation(ctx, state),
        INTRO,
    )
    bad = [
        ("assertion with alg none -> invalid_client", bad_alg_none, CC),
        ("HS256 assertion keyed by the public key -> invalid_client", bad_hs256_public_key, CC),
        ("expired assertion -> invalid_client", bad_expired, CC),
        (
            "assertion exp more than 60 s ahead (Authlib's 3600 s default) -> invalid_client",
            bad_long_lived,
            CC,
        ),
        ("reused assertion jti -> invalid_client", bad_reused_jti, CC),
        ("assertion with a wrong aud -> invalid_client", bad_audience, CC),
        ("DPoP proof with a wrong htu or htm -> invalid_dpop_proof", bad_dpop_htu_htm, CC),
        ("DPoP proof reused (same jti) -> invalid_dpop_proof", bad_dpop_replay, CC),
        ("DPoP proof iat an hour ahead -> invalid_dpop_proof", bad_dpop_future, CC),
        ("DPoP proof iat 600 s ago -> invalid_dpop_proof", bad_dpop_old, CC),
        (
            "DPoP proof iat -2^63 -> invalid_dpop_proof (token endpoint and userinfo)",
            bad_dpop_iat_min,
            PAR,
        ),
        ("no DPoP proof from a DPoP-bound client -> invalid_dpop_proof", bad_dpop_missing, CC),
        ("unknown scope -> invalid_scope", bad_scope, CC),
        ("unknown grant type -> unsupported_grant_type", bad_grant_type, CC),
        ("a body over 2 MiB -> 413 problem+json", bad_huge_body, D),
        ("code_verifier not matching -> invalid_grant", bad_code_verifier, AC),
        ("authorization code used twice -> invalid_grant", bad_code_reuse, AC),
    ]
    for name, func, need in bad:
        r.check("6 " + name, lambda func=func: func(ctx, state), need)

    print(f"\n{r.passed} passed, {r.failed} failed", flush=True)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
