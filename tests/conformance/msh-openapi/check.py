"""The message exchange against NHN's own published contract, by software the project did not
write: every request and response of a real exchange (list, fetch, status, read, AppRec, and
the refusals) is validated by openapi-core against ../shared/specs/nhn/msh-api-v2.json, NHN's
OpenAPI document for the MSH API v2, with tokens from Authlib (private_key_jwt).

`prepare` writes the two clients' keys (sender's and receiver's organisations); `check` runs.
"""

import argparse
import base64
import json
import os
import sys
import traceback
import uuid

import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

# The helpers every conformance check shares sit one folder up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from helseid_client import client_token, nullable_refs, write_key  # noqa: E402

SCOPE = "nhn:msh/api"
TIMEOUT = 30
HEADERS = {"api-version": "2", "nhn-source-system": "msh-openapi-conformance 1.0"}


def prepare(args):
    os.makedirs(args.keys, exist_ok=True)
    lines = []
    for client_id, orgnr in (("sender", args.sender_org), ("receiver", args.receiver_org)):
        write_key(args.keys, client_id)
        lines.append(f"conformance-{client_id} {orgnr} {client_id}.public.json\n")
    with open(os.path.join(args.keys, "clients.txt"), "w") as f:
        f.writelines(lines)


class Checker:
    def __init__(self, args):
        with open(args.spec) as f:
            spec = json.load(f)
        # NHN's document names its production server; the same paths are served here.
        spec["servers"] = [{"url": f"{args.base}/msh"}]
        # Auth schemes are case-insensitive (RFC 9110 §11.1); openapi-core compares NHN's
        # "Bearer" to the request's in lower case.
        for scheme in spec["components"]["securitySchemes"].values():
            scheme["scheme"] = scheme["scheme"].lower()
        nullable_refs(spec)
        self.openapi = OpenAPI.from_dict(spec)
        self.base = args.base
        self.tokens = {c: client_token(args.base, args.keys, c, f"conformance-{c}", SCOPE) for c in ("sender", "receiver")}
        self.passed = self.failed = 0

    def call(self, who, method, path, expect, body=None, headers=HEADERS):
        """One request; it and its response must match NHN's document."""
        request = requests.Request(
            method, f"{self.base}/msh{path}",
            headers={**headers, "Authorization": f"Bearer {self.tokens[who]}"},
            json=body).prepare()
        response = requests.Session().send(request, timeout=TIMEOUT)
        assert response.status_code == expect, \
            f"{method} {path}: {response.status_code} {response.text[:300]}"
        oa_request = RequestsOpenAPIRequest(request)
        if expect < 400:
            self.openapi.validate_request(oa_request)
        self.openapi.validate_response(oa_request, RequestsOpenAPIResponse(response))
        return response.json() if response.content else None

    def run(self, name, test):
        try:
            test()
            self.passed += 1
            print(f"PASS {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()


def check(args):
    c = Checker(args)
    state = {}

    def mailbox():
        plain = c.call("receiver", "GET", f"/Messages?ReceiverHerIds={args.receiver}", 200)
        assert plain and set(plain[0]) == {"id", "receiverHerId"}, plain
        full = c.call("receiver", "GET",
                      f"/Messages?ReceiverHerIds={args.receiver}&IncludeMetadata=true"
                      f"&MessagesToFetch=100&OrderBy=Ascending", 200)
        assert len(full) >= 3 and all(m["senderHerId"] == args.sender for m in full), full
        state["id"] = full[0]["id"]

    def message_and_document():
        m = c.call("receiver", "GET", f"/Messages/{state['id']}", 200)
        assert m["isAppRec"] is False and m["receiverHerId"] == args.receiver, m
        d = c.call("receiver", "GET", f"/Messages/{state['id']}/business-document", 200)
        xml = base64.b64decode(d["businessDocument"])
        assert b"http://www.kith.no/xmlstds/msghead/2006-05-24" in xml and b"application/pkcs7-mime" in xml
        s = c.call("sender", "GET", f"/Messages/{state['id']}/status", 200)
        assert s == [{"receiverHerId": args.receiver, "transportDeliveryState": "Unconfirmed",
                      "appRecStatus": None}], s

    def read_and_answer():
        c.call("receiver", "PUT", f"/Messages/{state['id']}/read/{args.receiver}", 204)
        apprec = c.call("receiver", "POST", f"/Messages/{state['id']}/apprec/{args.receiver}", 201,
                        {"appRecStatus": "Rejected",
                         "appRecErrorList": [{"errorCode": "E35", "details": "Ukjent pasient"}]})
        uuid.UUID(apprec)
        s = c.call("sender", "GET", f"/Messages/{state['id']}/status", 200)
        assert s[0]["transportDeliveryState"] == "Acknowledged" and s[0]["appRecStatus"] == "Rejected", s
        a = c.call("sender", "GET", f"/Messages/{state['id']}/apprec", 200)
        assert a[0]["appRecErrorList"][0]["errorCode"] == "E35", a
        back = c.call("sender", "GET",
                      f"/Messages?ReceiverHerIds={args.sender}&IncludeMetadata=true", 200)
        assert any(m["id"] == apprec and m["isAppRec"] for m in back), back

    def refusals():
        e = c.call("sender", "GET", f"/Messages?ReceiverHerIds={args.receiver}", 403)
        assert "Not authorized" in e["error"], e
        e = c.call("receiver", "GET", f"/Messages/{uuid.uuid4()}", 404)
        assert e["requestId"], e
        e = c.call("receiver", "GET", "/Messages?IncludeMetadata=true", 400)
        assert "ReceiverHerIds" in e["error"], e
        e = c.call("sender", "POST", "/Messages", 400,
                   {"businessDocument": base64.b64encode(b"<MsgHead>").decode(),
                    "contentType": "application/xml", "contentTransferEncoding": "base64"})
        assert e["error"].startswith("T01") and e["errorCode"] == 1000, e
        e = c.call("sender", "POST", f"/Messages/{state['id']}/apprec/{args.sender}", 403,
                   {"appRecStatus": "Ok"})
        assert "not a receiver" in e["error"], e

    for name, test in [("mailbox, with and without metadata", mailbox),
                       ("message, business document and status", message_and_document),
                       ("read mark and AppRec, seen by the sender", read_and_answer),
                       ("refusals in NHN's ErrorMessage shape", refusals)]:
        c.run(name, test)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--keys", required=True)
    p.add_argument("--sender-org", required=True)
    p.add_argument("--receiver-org", required=True)
    p = sub.add_parser("check")
    p.add_argument("--base", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--sender", type=int, required=True)
    p.add_argument("--receiver", type=int, required=True)
    args = parser.parse_args()
    sys.exit(prepare(args) if args.command == "prepare" else check(args))


if __name__ == "__main__":
    main()
