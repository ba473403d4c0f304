"""What the conformance checks share: a client's ES256 key written for `helsenett helseid client
add`, a client_credentials token from Authlib with private_key_jwt, a person's token through the
authorization code flow with PKCE at HelseID's test identity provider, and the reading of NHN's
OpenAPI documents that openapi-core needs. Each check imports it from the folder above its own.
"""

import json
import os
from html.parser import HTMLParser

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey

TIMEOUT = 30


def write_key(keys, name):
    """A new P-256 key with kid `name`: `{name}.json` (private) and `{name}.public.json` (the
    JWKS to register)."""
    os.makedirs(keys, exist_ok=True)
    key = ECKey.generate_key("P-256", parameters={"kid": name, "alg": "ES256"})
    with open(os.path.join(keys, f"{name}.json"), "w") as f:
        json.dump(key.as_dict(private=True), f)
    with open(os.path.join(keys, f"{name}.public.json"), "w") as f:
        json.dump({"keys": [key.as_dict(private=False)]}, f)


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's private_key_jwt with a 60 s assertion (HelseID's limit) and the key's kid."""

    def __init__(self, kid):
        super().__init__(token_endpoint=None, alg="ES256")
        self.kid = kid

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id,
                                    token_endpoint=token_endpoint, alg=self.alg,
                                    header={"kid": self.kid}, expires_in=60)


def client_token(base, keys, name, client_id, scope):
    """A bearer access token for `client_id`, signed in with the key `write_key` made as
    `name`."""
    with open(os.path.join(keys, f"{name}.json")) as f:
        key = json.load(f)
    session = OAuth2Session(client_id, key, scope=scope, default_timeout=TIMEOUT,
                            token_endpoint_auth_method=ShortLivedPrivateKeyJWT(name))
    return session.fetch_token(f"{base}/helseid/connect/token",
                               grant_type="client_credentials")["access_token"]


class _LoginForm(HTMLParser):
    """The test identity provider's sign-in page: where the form posts and its `request`."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.request = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        elif tag == "input" and a.get("name") == "request":
            self.request = a.get("value")


def user_token(base, keys, name, client_id, scope, redirect_uri, pid):
    """A bearer access token for the person `pid`, signed in through `client_id` (key `name`) by
    the authorization code flow with PKCE (S256): Authlib makes the authorization URL, the test
    identity provider's page is answered as a browser would (its form, with `pid`), and Authlib
    redeems the code from the redirect with private_key_jwt."""
    with open(os.path.join(keys, f"{name}.json")) as f:
        key = json.load(f)
    session = OAuth2Session(client_id, key, scope=scope, redirect_uri=redirect_uri,
                            code_challenge_method="S256", default_timeout=TIMEOUT,
                            token_endpoint_auth_method=ShortLivedPrivateKeyJWT(name))
    verifier = generate_token(64)
    url, state = session.create_authorization_url(f"{base}/helseid/connect/authorize",
                                                  code_verifier=verifier)
    browser = requests.Session()
    page = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200, f"authorize: {page.status_code}: {page.text[:300]}"
    form = _LoginForm()
    form.feed(page.text)
    assert form.request, f"no sign-in form: {page.text[:300]}"
    login = requests.compat.urljoin(page.url, form.action or "/helseid/connect/login")
    done = browser.post(login, data={"request": form.request, "pid": pid},
                        allow_redirects=False, timeout=TIMEOUT)
    location = done.headers.get("Location", "")
    assert done.status_code in (302, 303) and location.startswith(redirect_uri + "?"), \
        f"sign-in as a person: {done.status_code} to {location!r}: {done.text[:300]}"
    token = session.fetch_token(f"{base}/helseid/connect/token", authorization_response=location,
                                state=state, code_verifier=verifier)
    return token["access_token"]


def nullable_refs(spec):
    """NHN marks properties `nullable` beside an `allOf` with a `$ref` (to an enum, say), and
    sends null there. Under OpenAPI 3.0.3's reading `nullable` does not reach into the `allOf`,
    so a strict validator rejects what NHN means to allow; each such property is inlined here
    with null allowed, as NHN means it."""
    schemas = spec["components"]["schemas"]
    for schema in schemas.values():
        for name, prop in schema.get("properties", {}).items():
            refs = prop.get("allOf", [])
            if prop.get("nullable") and len(refs) == 1 and "$ref" in refs[0]:
                target = dict(schemas[refs[0]["$ref"].rsplit("/", 1)[1]])
                target["nullable"] = True
                if "enum" in target:
                    target["enum"] = target["enum"] + [None]
                schema["properties"][name] = {**target, "description": prop.get("description", "")}
