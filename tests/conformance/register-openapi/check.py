"""The address register against software the project did not write.

`prepare` makes three clients' EC keys and picks their organisations from the synthetic
country; `run` registers them. `check` then drives the register over HTTP with tokens from
Authlib's OAuth2Session (private_key_jwt, RFC 7523), validates the served OpenAPI document with
openapi-spec-validator and every response against that document with openapi-core, and checks
the certificates handed out with pyca/cryptography and the `openssl verify` command.
"""

import argparse
import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import traceback

import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

# The helpers every conformance check shares sit one folder up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from helseid_client import client_token, write_key  # noqa: E402

READ, WRITE, ADMIN = (f"nhn:adresseregisteret/{s}" for s in ("read", "write", "admin"))
CLIENTS = {"member": [READ, WRITE], "intruder": [READ, WRITE], "operator": [READ, WRITE, ADMIN]}
TIMEOUT = 30


# ---------------------------------------------------------------------------------------------
# prepare


def prepare(args):
    """Writes each client's key pair and `clients.txt` (id, orgnr, scopes) for `run`."""
    os.makedirs(args.keys, exist_ok=True)
    with open(os.path.join(args.data, "helseid-clients.jsonl")) as f:
        orgnrs = [json.loads(line)["orgnr_parent"] for line in f if line.strip()]
    chosen = {"member": orgnrs[0], "intruder": orgnrs[1], "operator": orgnrs[2]}
    lines = []
    for client_id, scopes in CLIENTS.items():
        write_key(args.keys, client_id)
        lines.append(f"{client_id} {chosen[client_id]} {' '.join(scopes)}\n")
    with open(os.path.join(args.keys, "clients.txt"), "w") as f:
        f.writelines(lines)


# ---------------------------------------------------------------------------------------------
# check


class Ctx:
    def __init__(self, args):
        self.base = args.base
        self.api = f"{args.base}/adresseregisteret/v1"
        self.data = args.data
        self.verbose = args.verbose
        self.orgnr = {}
        self.tokens = {}
        with open(os.path.join(args.keys, "clients.txt")) as f:
            for line in f:
                client_id, orgnr, *scopes = line.split()
                self.orgnr[client_id] = orgnr
                self.tokens[client_id] = client_token(args.base, args.keys, client_id, client_id,
                                                      " ".join(scopes))
        spec = requests.get(f"{self.api}/openapi.json", timeout=TIMEOUT)
        spec.raise_for_status()
        self.spec = spec.json()
        # The document names its server relative to the host; openapi-core matches full URLs.
        served = dict(self.spec, servers=[{"url": self.api}])
        # RFC 9457 problem bodies are JSON; openapi-core reads only application/json by itself.
        config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
        self.openapi = OpenAPI.from_dict(served, config=config)

    def call(self, method, path, who="member", body=None, status=200):
        """Sends a request, checks its status and validates the response against the document."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        r = requests.request(method, f"{self.api}{path}", headers=headers, json=body, timeout=TIMEOUT)
        if r.status_code != status:
            raise AssertionError(f"{method} {path}: {r.status_code}, expected {status}: {r.text[:300]}")
        self.openapi.validate_response(RequestsOpenAPIRequest(r.request), RequestsOpenAPIResponse(r))
        return r

    def own_party(self, who):
        found = self.call("GET", f"/parties?orgnr={self.orgnr[who]}&type=Organization").json()
        assert found["totalResults"] == 1, found
        return found["parties"][0]


def check_document(ctx):
    """openapi-spec-validator accepts the served OpenAPI document."""
    validate_spec(ctx.spec)
    assert ctx.spec["openapi"].startswith("3."), ctx.spec["openapi"]


def check_reads(ctx):
    """Searches, details of each kind of party, CPP and CPA validate against the document."""
    for query in ["?name=legevakt", "?type=Person&pageSize=3&page=2", "?municipality=0301&active=true",
                  "?messageType=HENVISNING", f"?orgnr={ctx.orgnr['member']}"]:
        assert ctx.call("GET", f"/parties{query}").json()["totalResults"] > 0, query
    kinds = {}
    for kind in ["Organization", "Department", "Service", "Person"]:
        party = ctx.call("GET", f"/parties?type={kind}&pageSize=1").json()["parties"][0]
        kinds[kind] = ctx.call("GET", f"/parties/{party['herId']}").json()
        ctx.call("GET", f"/parties/{party['herId']}/cpp")
        ctx.call("GET", f"/parties/{party['herId']}/certificates")
    assert kinds["Person"]["hprNumber"], kinds["Person"]
    assert kinds["Organization"]["organisation"]["addresses"][0]["type"] == "RES"
    gp, department = kinds["Person"]["herId"], kinds["Department"]["herId"]
    agreement = ctx.call("GET", f"/cpa?from={gp}&to={department}").json()
    assert agreement["from"] == gp and agreement["to"] == department, agreement


def check_errors(ctx):
    """Bad input gets problem+json responses that validate against the document."""
    for method, path, who, status in [
        ("GET", "/parties/999999999", "member", 404),
        ("GET", "/parties/12x", "member", 400),
        ("GET", "/parties?herid=1", "member", 400),
        ("GET", "/parties?orgnr=123456789", "member", 400),
        ("GET", "/cpa?from=1", "member", 400),
    ]:
        r = ctx.call(method, path, who=who, status=status)
        assert r.headers["content-type"] == "application/problem+json", r.headers
        assert r.json()["status"] == status
    r = requests.get(f"{ctx.api}/parties/1", timeout=TIMEOUT)
    assert r.status_code == 401 and "DPoP" in r.headers.get("www-authenticate", ""), r.headers


def check_certificates(ctx):
    """Certificates handed out parse, carry their key usage and pass `openssl verify`.

    Parsed with pyca/cryptography, verified by the openssl command against the synthetic CA
    read from the store."""
    person = ctx.call("GET", "/parties?type=Person&pageSize=1").json()["parties"][0]["herId"]
    db = sqlite3.connect(os.path.join(ctx.data, "helsenett.db"))
    (ca_pem,) = db.execute("SELECT certificate_pem FROM certificate_authority").fetchone()
    with tempfile.TemporaryDirectory() as tmp:
        ca = os.path.join(tmp, "ca.pem")
        with open(ca, "w") as f:
            f.write(ca_pem)
        for purpose, usage in [("encryption", "key_encipherment"), ("signature-validation", "digital_signature")]:
            found = ctx.call("GET", f"/parties/{person}/certificate-for-{purpose}").json()
            assert found["inherited"] and found["status"] == "valid", found
            der = base64.b64decode(found["certificate"])
            cert = x509.load_der_x509_certificate(der)
            key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            assert getattr(key_usage, usage), key_usage
            leaf = os.path.join(tmp, f"{purpose}.pem")
            with open(leaf, "wb") as f:
                f.write(cert.public_bytes(Encoding.PEM))
            out = subprocess.run(["openssl", "verify", "-CAfile", ca, leaf], capture_output=True, text=True)
            assert out.returncode == 0 and ": OK" in out.stdout, out.stdout + out.stderr


def check_member_writes(ctx):
    """A member's new service, update and CPP validate, and appear in the feed, in order, once."""
    before = ctx.call("GET", "/events?afterEventId=0&limit=10000").json()["lastEventId"]
    own = ctx.own_party("member")
    created = ctx.call("POST", "/parties", body={"kind": "Service", "parentHerId": own["herId"],
                                                 "name": "Samsvarstjeneste"}, status=201).json()
    her_id = created["herId"]
    ctx.call("PATCH", f"/parties/{her_id}", body={"name": "Samsvarstjeneste 2", "coverage": ["0301"]})
    cpp = ctx.call("PUT", f"/parties/{her_id}/cpp", body={"processes": [
        {"messageType": "DIALOG_HELSEFAGLIG", "role": "receiver", "versions": ["1.1", "1.0"], "receipts": ["1.0"]},
        {"messageType": "DIALOG_HELSEFAGLIG", "role": "sender", "versions": ["1.0"]}]}).json()
    assert cpp["cpp"][0]["versions"] == ["1.0", "1.1"], cpp["cpp"]
    events = ctx.call("GET", f"/events?afterEventId={before}").json()["events"]
    assert [e["eventId"] for e in events] == [before + 1, before + 2, before + 3], events
    assert [e["change"] for e in events] == ["created", "updated", "cppUpdated"], events
    assert all(e["herId"] == her_id for e in events)
    assert events[-1]["party"]["name"] == "Samsvarstjeneste 2"


def check_intruder_and_operator(ctx):
    """Another member gets 403 and changes nothing; only the operator creates organisations."""
    own = ctx.own_party("member")
    before = ctx.call("GET", f"/parties/{own['herId']}").json()
    r = ctx.call("PATCH", f"/parties/{own['herId']}", who="intruder", body={"name": "Kapret"}, status=403)
    assert r.headers["content-type"] == "application/problem+json"
    assert ctx.call("GET", f"/parties/{own['herId']}").json() == before
    body = {"orgnr": synthetic_orgnr(ctx), "name": "Samsvar AS", "businessType": "specialist_practice",
            "municipality": "0301",
            "addresses": [{"type": "RES", "street": "Storgata 1", "postalCode": "0155", "postalPlace": "OSLO"}]}
    ctx.call("POST", "/organisations", who="member", body=body, status=403)
    created = ctx.call("POST", "/organisations", who="operator", body=body, status=201).json()
    assert created["orgnr"] == body["orgnr"] and created["kind"] == "Organization", created
    ctx.call("POST", "/organisations", who="operator", body=body, status=409)


def synthetic_orgnr(ctx):
    """An unused synthetic organisasjonsnummer: 3, seven digits, the mod-11 check digit."""
    taken = {p["orgnr"] for p in ctx.call("GET", "/parties?type=Organization&pageSize=500").json()["parties"]}
    for n in range(3_900_000, 4_000_000):
        digits = [int(d) for d in f"{n:08d}"]
        rest = sum(w * d for w, d in zip([3, 2, 7, 6, 5, 4, 3, 2], digits)) % 11
        if rest == 1:
            continue
        orgnr = "".join(map(str, digits)) + str(0 if rest == 0 else 11 - rest)
        if orgnr not in taken:
            return orgnr
    raise AssertionError("no free organisasjonsnummer")


def check_export(ctx):
    """The export is a header line and as many parties as it announces, each a valid Party."""
    r = requests.get(f"{ctx.api}/export", headers={"Authorization": f"Bearer {ctx.tokens['member']}"},
                     timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson", r.headers
    lines = r.text.splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "helsenett-adresseregister-export/1", header
    assert header["parties"] == len(lines) - 1, (header, len(lines))
    schemas = ctx.spec["components"]["schemas"]
    validator = OAS31Validator({"$ref": "#/components/schemas/Party", "components": {"schemas": schemas}})
    for line in lines[1:]:
        validator.validate(json.loads(line))


CHECKS = [check_document, check_reads, check_errors, check_certificates, check_member_writes,
          check_intruder_and_operator, check_export]


def check(args):
    ctx = Ctx(args)
    passed = failed = 0
    for c in CHECKS:
        try:
            c(ctx)
            passed += 1
            print(f"PASS {c.__name__}: {c.__doc__.splitlines()[0]}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, the rest still run
            failed += 1
            print(f"FAIL {c.__name__}: {e}")
            if args.verbose:
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data", required=True)
    p.add_argument("--keys", required=True)
    c = sub.add_parser("check")
    c.add_argument("--base", required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--keys", required=True)
    c.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
