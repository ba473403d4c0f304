"""Persontjenesten against NHN's own published contract, by software the project did not write:
every request and response of real look-ups (by number, single and bulk; by id, single and bulk;
search; the event feed), found and not found, the refusals of bad input and the 403 for a part
the public bundle may not see, on both bundles, is validated by openapi-core against
../shared/specs/nhn/persontjenesten-api.yaml, NHN's OpenAPI document for Persontjenesten API v2,
with tokens from Authlib (private_key_jwt).

`prepare` writes the client's key. `check` asks for the event feed while it is empty, has
`helsenett synth events` write a month of changes while the node serves, waits for the node to
apply them, then runs the rest with persons picked from the store (each status and address
protection, a D-nummer, someone whose name or address changed).
"""

import argparse
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
import traceback

import requests
import yaml  # PyYAML, which openapi-core reads YAML documents with (through jsonschema-path)
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

# The helpers every conformance check shares sit one folder up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from helseid_client import client_token, nullable_refs, write_key  # noqa: E402

PUBLIC = "no-legal-basis"
LEGAL = "legal-basis"
BUNDLES = (PUBLIC, LEGAL)
SCOPES = {PUBLIC: "nhn:persontjenesten/ReadNoLegalBasis",
          LEGAL: "nhn:persontjenesten/ReadWithLegalBasis"}
CLIENT = "persontjenesten"
TIMEOUT = 30
HEADERS = {PUBLIC: {"api-version": "2"},
           LEGAL: {"api-version": "2", "nhn-purpose": "treatment"}}
# What the public bundle may show, and what it may not (asking for it there is a 403).
PUBLIC_PARTS = ["NorwegianIdentificationNumber", "Name", "Gender", "Birth", "Status", "Death",
                "AddressProtection", "ResidentialAddress"]
LEGAL_ONLY_PARTS = ["FamilyRelation", "MaritalStatus", "Citizenship", "IdentificationDocument"]


def prepare(args):
    write_key(args.keys, CLIENT)


def python_patterns(node):
    r"""NHN's search fields carry patterns with Unicode property classes (`\p{L}` a letter,
    `\p{N}` a number), which Python's `re`, what openapi-core's jsonschema matches patterns with,
    cannot compile (it would raise on every search request, not judge it). Each class is spelled
    here in Python's terms: `[^\W\d_]` is a letter, `(?![^\W\d_])[^\W_]` an alphanumeric that is
    not a letter, a number. What matches does not change."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str) and "\\p{" in value:
                # [\p{L}\s\-]+ and [\p{L}\s\p{N}]+: a run of letters, spaces, hyphens / numbers.
                classes = re.fullmatch(r"\[(.*)\]\+", value).group(1)
                python = {"\\p{L}": "[^\\W\\d_]", "\\p{N}": "(?![^\\W\\d_])[^\\W_]"}
                alternatives = [python.get(item, item)
                                for item in re.findall(r"\\p\{\w+\}|\\.|.", classes)]
                node[key] = "(?:" + "|".join(alternatives) + ")+"
            else:
                python_patterns(value)
    elif isinstance(node, list):
        for item in node:
            python_patterns(item)


def token(base, keys, scope):
    return client_token(base, keys, CLIENT, f"conformance-{CLIENT}", scope)


def fodselsnummer_check_digits(first9):
    w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2]
    w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    digits = [int(c) for c in first9]
    k1 = 11 - sum(a * b for a, b in zip(w1, digits)) % 11
    k1 = 0 if k1 == 11 else k1
    if k1 == 10:
        return None
    k2 = 11 - sum(a * b for a, b in zip(w2, digits + [k1])) % 11
    k2 = 0 if k2 == 11 else k2
    return None if k2 == 10 else f"{k1}{k2}"


def unknown_nin(known):
    """A well-formed fødselsnummer (valid check digits) that nobody in the store has."""
    for individual in range(100, 500):
        first9 = f"150650{individual:03d}"
        check = fodselsnummer_check_digits(first9)
        if check and first9 + check not in known:
            return first9 + check
    raise RuntimeError("no free fødselsnummer")


class Persons:
    """The persons the checks ask for, read from the store helsenett serves."""

    def __init__(self, db):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        con.row_factory = sqlite3.Row

        def one(where):
            row = con.execute(f"SELECT * FROM person WHERE {where} ORDER BY nin LIMIT 1").fetchone()
            assert row, f"no person in the store where {where}"
            return dict(row)

        self.plain = one("status = 'Resident' AND address_protection = 'Unclassified' "
                         "AND mother_nin IS NOT NULL AND father_nin IS NOT NULL")
        self.married = one("status = 'Resident' AND address_protection = 'Unclassified' "
                           "AND spouse_nin IS NOT NULL")
        self.client_address = one("status = 'Resident' AND address_protection = 'ClientAddress'")
        self.confidential = one("status = 'Resident' AND address_protection = 'Confidential'")
        self.strict = one("status = 'Resident' AND address_protection = 'StrictlyConfidential'")
        self.dead = one("status = 'Deceased'")
        self.emigrated = one("status = 'Emigrated'")
        self.dnumber = one("number_kind = 'dnr'")
        # Someone whose name or address changed, so includeHistory has something to show.
        row = con.execute("SELECT p.* FROM person p JOIN person_event e ON e.nin = p.nin "
                          "WHERE e.previous IS NOT NULL AND p.status = 'Resident' "
                          "AND p.address_protection = 'Unclassified' "
                          "ORDER BY e.seq LIMIT 1").fetchone()
        assert row, "nobody's name or address changed: run `helsenett synth events` first"
        self.changed = dict(row)
        self.events = con.execute("SELECT count(*), max(seq) FROM person_event").fetchone()
        self.newest = dict(con.execute("SELECT * FROM person ORDER BY last_event DESC, nin "
                                       "LIMIT 1").fetchone())
        self.unknown_nin = unknown_nin({r[0] for r in con.execute("SELECT nin FROM person")})
        con.close()

    def all(self):
        return [self.plain, self.married, self.client_address, self.confidential, self.strict,
                self.dead, self.emigrated, self.dnumber]


class Checker:
    def __init__(self, args):
        with open(args.spec) as f:
            spec = yaml.safe_load(f)
        # NHN's document names no server; the same paths are served here under /persontjenesten.
        spec["servers"] = [{"url": f"{args.base}/persontjenesten"}]
        nullable_refs(spec)
        python_patterns(spec)
        self.spec = spec
        self.openapi = OpenAPI.from_dict(spec)
        self.base = args.base
        self.tokens = {
            "both": token(args.base, args.keys, f"{SCOPES[PUBLIC]} {SCOPES[LEGAL]}"),
            PUBLIC: token(args.base, args.keys, SCOPES[PUBLIC]),
        }
        self.passed = self.failed = 0
        self.found = {}

    def call(self, bundle, method, path, expect, query=None, form=None, headers=None,
             who="both", valid_request=True):
        """One request; it and its response must match NHN's document. `query` and `form` are
        lists of pairs (repeated keys for arrays, as the document's `explode: true` says).
        A wrong status stops the check; each way the exchange departs from the document is
        recorded and the check goes on, so one run lists every mismatch."""
        hdrs = dict(HEADERS[bundle] if headers is None else headers)
        if who is not None:
            hdrs["Authorization"] = f"Bearer {self.tokens[who]}"
        request = requests.Request(
            method, f"{self.base}/persontjenesten/api/{bundle}{path}",
            params=query, data=form, headers=hdrs).prepare()
        response = requests.Session().send(request, timeout=TIMEOUT)
        assert response.status_code == expect, \
            f"{method} /api/{bundle}{path}: {response.status_code} {response.text[:300]}"
        oa_request = RequestsOpenAPIRequest(request)
        template, operation = self.operation(method, f"/api/{bundle}{path}")
        if valid_request:
            self.record(f"{method} {template} request", self.openapi.validate_request, oa_request)
        label = f"{method} {template} {response.status_code}"
        oa_response = RequestsOpenAPIResponse(response)
        mimetype = oa_response.content_type.split(";")[0].strip()
        answer = operation["responses"].get(str(response.status_code),
                                            operation["responses"].get("default", {}))
        # None where the document describes no body, as for its 401 and 403.
        documented = list(answer.get("content", {}))
        if documented and mimetype not in documented:
            # Say so, then check the body against the schema the document gives all the same.
            self.mismatch(f"{label}: Content-Type {mimetype}, the document says "
                          f"{' or '.join(documented)}")
            response.headers["Content-Type"] = documented[0]
            oa_response = RequestsOpenAPIResponse(response)
        self.record(label, self.openapi.validate_response, oa_request, oa_response)
        return response.json() if response.content else None

    def operation(self, method, path):
        """The document's path template and operation for a request's path."""
        paths = self.spec["paths"]
        # A concrete path wins over a template (person/get-by-nin is not person/{id}).
        template = path if path in paths else next(
            (t for t in paths if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path)), None)
        operation = paths.get(template, {}).get(method.lower())
        assert operation, f"{method} {path} is not in the document"
        return template, operation

    def record(self, label, validate, *args):
        try:
            validate(*args)
        except Exception as e:  # noqa: BLE001 - a departure from the document, recorded
            for what in describe(e):
                self.mismatch(f"{label}: {what}")

    def mismatch(self, text):
        """One departure; the same kind (operation, status, place) is reported once, with an
        example and how often it was seen."""
        key = re.sub(r" \| e\.g\. .*", "", text)
        first, count = self.found.get(key, (text, 0))
        self.found[key] = (first, count + 1)

    def run(self, name, test):
        self.found = {}
        try:
            test()
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
            self.report()
        else:
            if self.found:
                self.failed += 1
                print(f"FAIL {name}: departs from NHN's document")
                self.report()
            else:
                self.passed += 1
                print(f"PASS {name}")
        sys.stdout.flush()

    def report(self):
        for text, count in self.found.values():
            print(f"  {text}" + (f" ({count} times)" if count > 1 else ""))


def describe(error):
    """What an openapi-core error found: each schema error as its place in the body (array
    indices as *), what the document wants there and an example of what came."""
    found = []
    seen = set()
    e = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for schema_error in getattr(e, "schema_errors", None) or []:
            for leaf in leaves(schema_error):
                at = "/".join("*" if isinstance(p, int) else str(p) for p in leaf.absolute_path)
                found.append(f"{at or '(value)'}: {leaf.validator} {leaf.validator_value!r}"
                             f" | e.g. {leaf.message}")
        e = e.__cause__ or e.__context__
    return list(dict.fromkeys(found)) or [f"{type(error).__name__}: {error}"]


def leaves(schema_error):
    """The innermost errors of a jsonschema error (under anyOf/oneOf/allOf, the branches)."""
    if not schema_error.context:
        return [schema_error]
    return [leaf for sub in schema_error.context for leaf in leaves(sub)]


def parts(*names):
    return [("informationParts", n) for n in names]


def check(args):
    c = Checker(args)
    db = os.path.join(args.data_dir, "helsenett.db")

    def empty_feed(bundle):
        def test():
            e = c.call(bundle, "GET", "/event/latest", 404)
            assert e["status"] == 404, e
            r = c.call(bundle, "GET", "/event", 200, query=[("sequenceNumber", "1")])
            assert r["results"] == [], r
        return test

    for bundle in BUNDLES:
        c.run(f"{bundle}: event/latest 404 and event empty before any change", empty_feed(bundle))

    # A month of Norway's changes, written by another process while the node serves.
    subprocess.run([args.bin, "synth", "events", "--days", "30", "--data-dir", args.data_dir],
                   check=True, stdout=subprocess.DEVNULL)
    p = Persons(db)
    deadline = time.monotonic() + 30
    while True:
        doc = c.call(PUBLIC, "POST", "/person/get-by-nin", 200, query=parts("Name"),
                     form=[("nin", p.newest["nin"])])
        if doc["sequenceNumber"] == p.newest["last_event"]:
            break
        assert time.monotonic() < deadline, f"the node did not apply the feed: {doc}"
        time.sleep(0.1)

    def number_of(doc):
        return doc["norwegianIdentificationNumber"][0]["identificationNumber"]

    def get_by_nin(bundle):
        def test():
            wanted = PUBLIC_PARTS + (LEGAL_ONLY_PARTS[:1] if bundle == LEGAL else [])
            for person in p.all():
                doc = c.call(bundle, "POST", "/person/get-by-nin", 200, query=parts(*wanted),
                             form=[("nin", person["nin"])])
                assert number_of(doc) == person["nin"] and doc["id"] == person["person_id"], doc
                assert doc["name"][0]["familyName"] == person["family_name"], doc
                shown = "residentialAddress" in doc
                hidden = (person["address_protection"] == "StrictlyConfidential"
                          or person["status"] == "Emigrated"
                          or (bundle == PUBLIC and person["address_protection"] != "Unclassified"))
                assert shown != hidden, (person["address_protection"], person["status"], doc)
                if person["status"] == "Deceased":
                    assert doc["death"]["deceasedDate"], doc
                if bundle == LEGAL and person is p.plain:
                    roles = {r["relatedPersonsRole"] for r in doc["familyRelation"]}
                    assert {"Mother", "Father"} <= roles, doc
            # Only the parts asked for.
            doc = c.call(bundle, "POST", "/person/get-by-nin", 200, query=parts("Name"),
                         form=[("nin", p.plain["nin"])])
            assert set(doc) <= {"id", "sequenceNumber", "name"}, doc
            doc = c.call(bundle, "POST", "/person/get-by-nin", 200,
                         query=parts("Name", "ResidentialAddress") + [("includeHistory", "true")],
                         form=[("nin", p.changed["nin"])])
            history = [e for e in doc.get("name", []) + doc.get("residentialAddress", [])
                       if e.get("isValid") is False]
            assert history, doc
        return test

    def get_by_nin_refusals(bundle):
        def test():
            e = c.call(bundle, "POST", "/person/get-by-nin", 404, query=parts("Name"),
                       form=[("nin", p.unknown_nin)])
            assert e["status"] == 404, e
            e = c.call(bundle, "POST", "/person/get-by-nin", 400, query=parts("Name"),
                       form=[("nin", "12345678901")], valid_request=False)
            assert e["status"] == 400, e
            e = c.call(bundle, "POST", "/person/get-by-nin", 400, query=parts("Name"),
                       form=[], valid_request=False)
            assert e["status"] == 400, e
            e = c.call(bundle, "POST", "/person/get-by-nin", 400, form=[("nin", p.plain["nin"])],
                       valid_request=False)
            assert "informationParts" in e["detail"], e
            e = c.call(bundle, "POST", "/person/get-by-nin", 400, query=parts("Shoesize"),
                       form=[("nin", p.plain["nin"])], valid_request=False)
            assert "informationParts" in e["detail"], e
            e = c.call(bundle, "POST", "/person/get-by-nin", 400, query=parts("Name"),
                       form=[("nin", p.plain["nin"])], valid_request=False,
                       headers={k: v for k, v in HEADERS[bundle].items() if k != "api-version"})
            assert "api-version" in e["detail"], e
        return test

    def bulk_by_nin(bundle):
        def test():
            asked = [x["nin"] for x in p.all()] + [p.unknown_nin]
            docs = c.call(bundle, "POST", "/person/bulk-by-nin", 200,
                          query=parts("NorwegianIdentificationNumber", "Name"),
                          form=[("nins", n) for n in asked])
            assert sorted(number_of(d) for d in docs) == sorted(asked[:-1]), docs
            docs = c.call(bundle, "POST", "/person/bulk-by-nin", 200, query=parts("Name"),
                          form=[("nins", p.unknown_nin)])
            assert docs == [], docs
            e = c.call(bundle, "POST", "/person/bulk-by-nin", 400, query=parts("Name"),
                       form=[], valid_request=False)
            assert "nins" in e["detail"], e
            e = c.call(bundle, "POST", "/person/bulk-by-nin", 400, query=parts("Name"),
                       form=[("nins", f"{i:011d}") for i in range(101)], valid_request=False)
            assert "nins" in e["detail"], e
            e = c.call(bundle, "POST", "/person/bulk-by-nin", 400, query=parts("Name"),
                       form=[("nins", p.plain["nin"]), ("nins", "abc")], valid_request=False)
            assert "nins" in e["detail"], e
        return test

    def by_id(bundle):
        def test():
            for person in p.all():
                doc = c.call(bundle, "GET", f"/person/{person['person_id']}", 200,
                             query=parts(*PUBLIC_PARTS))
                assert doc["id"] == person["person_id"] and number_of(doc) == person["nin"], doc
            e = c.call(bundle, "GET", f"/person/{secrets.token_hex(16)}", 404, query=parts("Name"))
            assert e["status"] == 404, e
            e = c.call(bundle, "GET", "/person/not-an-id", 400, query=parts("Name"),
                       valid_request=False)
            assert e["status"] == 400, e
            e = c.call(bundle, "GET", f"/person/{p.plain['person_id']}", 400, valid_request=False)
            assert "informationParts" in e["detail"], e
        return test

    def bulk_by_id(bundle):
        def test():
            ids = [x["person_id"] for x in p.all()]
            docs = c.call(bundle, "POST", "/person/bulk-by-id", 200,
                          query=parts("NorwegianIdentificationNumber", "Name", "Birth"),
                          form=[("personIds", i) for i in ids + [secrets.token_hex(16)]])
            assert sorted(d["id"] for d in docs) == sorted(ids), docs
            e = c.call(bundle, "POST", "/person/bulk-by-id", 400, query=parts("Name"),
                       form=[("personIds", "xyz")], valid_request=False)
            assert "personIds" in e["detail"], e
            e = c.call(bundle, "POST", "/person/bulk-by-id", 400, query=parts("Name"),
                       form=[], valid_request=False)
            assert "personIds" in e["detail"], e
        return test

    def search(bundle):
        def test():
            who = p.plain
            r = c.call(bundle, "POST", "/search/person", 200, query=parts(*PUBLIC_PARTS),
                       form=[("GivenName", who["given_name"]), ("FamilyName", who["family_name"]),
                             ("BirthDate", who["birth_date"])])
            assert who["person_id"] in [d["id"] for d in r["results"]], r
            r = c.call(bundle, "POST", "/search/person", 200, query=parts("Name"),
                       form=[("FullName", f"{who['given_name']} {who['family_name']}"),
                             ("MunicipalityNumber", who["municipality"])])
            assert who["person_id"] in [d["id"] for d in r["results"]], r
            r = c.call(bundle, "POST", "/search/person", 200, query=parts("Name"),
                       form=[("FamilyName", "Xyzzyqvist"), ("BirthDate", "1950")])
            assert r["results"] == [], r
            e = c.call(bundle, "POST", "/search/person", 400, query=parts("Name"),
                       form=[("FamilyName", "Al"), ("BirthDate", "1950")], valid_request=False)
            assert e["status"] == 400, e
            e = c.call(bundle, "POST", "/search/person", 400, query=parts("Name"),
                       form=[("FamilyName", who["family_name"])], valid_request=False)
            assert e["status"] == 400, e
        return test

    def events(bundle):
        def test():
            count, last = p.events
            assert count, "the feed is empty: run `helsenett synth events` first"
            latest = c.call(bundle, "GET", "/event/latest", 200)
            assert int(latest["sequenceNumber"]) == last, latest
            r = c.call(bundle, "GET", "/event", 200, query=[("sequenceNumber", "1")])
            assert len(r["results"]) == min(count, 1000), r
            first = r["results"][0]
            r = c.call(bundle, "GET", "/event", 200,
                       query=[("sequenceNumber", first["sequenceNumber"]),
                              ("eventTypes", first["eventType"])])
            assert r["results"] and all(x["eventType"] == first["eventType"]
                                        for x in r["results"]), r
            r = c.call(bundle, "GET", "/event", 200, query=[("sequenceNumber", str(last + 1))])
            assert r["results"] == [], r
            e = c.call(bundle, "GET", "/event", 400, query=[("sequenceNumber", "0")],
                       valid_request=False)
            assert "sequenceNumber" in e["detail"], e
            e = c.call(bundle, "GET", "/event", 400, query=[("eventTypes", "PersonIsBored")],
                       valid_request=False)
            assert "eventTypes" in e["detail"], e
        return test

    def legal_parts_refused():
        # Every route that takes information parts: a part of the legal-basis bundle is a 403.
        for part in LEGAL_ONLY_PARTS:
            q = parts("Name", part)
            for method, path, form in [
                    ("POST", "/person/get-by-nin", [("nin", p.plain["nin"])]),
                    ("POST", "/person/bulk-by-nin", [("nins", p.plain["nin"])]),
                    ("GET", f"/person/{p.plain['person_id']}", None),
                    ("POST", "/person/bulk-by-id", [("personIds", p.plain["person_id"])]),
                    ("POST", "/search/person", [("FamilyName", p.plain["family_name"]),
                                                ("BirthDate", p.plain["birth_date"])])]:
                e = c.call(PUBLIC, method, path, 403, query=q, form=form)
                assert part in e["detail"], e
        # The same parts are accepted with legal basis (of them, helsenett fills FamilyRelation).
        doc = c.call(LEGAL, "POST", "/person/get-by-nin", 200,
                     query=parts("Name", *LEGAL_ONLY_PARTS), form=[("nin", p.married["nin"])])
        assert any(r["relatedPersonsRole"] == "SpouseOrPartner" for r in doc["familyRelation"]), doc

    def scope_and_token():
        # A token of the public bundle only, on the legal-basis routes; and no token at all.
        c.call(LEGAL, "POST", "/person/get-by-nin", 403, query=parts("Name"),
               form=[("nin", p.plain["nin"])], who=PUBLIC)
        c.call(LEGAL, "GET", "/event/latest", 403, who=PUBLIC)
        c.call(PUBLIC, "POST", "/person/get-by-nin", 401, query=parts("Name"),
               form=[("nin", p.plain["nin"])], who=None, valid_request=False)
        # The legal-basis bundle wants the purpose stated (nhn-purpose, helsenett's header).
        e = c.call(LEGAL, "POST", "/person/get-by-nin", 400, query=parts("Name"),
                   form=[("nin", p.plain["nin"])], headers={"api-version": "2"})
        assert "nhn-purpose" in e["detail"], e

    checks = []
    for bundle in BUNDLES:
        checks += [
            (f"{bundle}: person/get-by-nin, found (each status, protection, D-nummer, history)",
             get_by_nin(bundle)),
            (f"{bundle}: person/get-by-nin, not found 404 and bad input 400",
             get_by_nin_refusals(bundle)),
            (f"{bundle}: person/bulk-by-nin, found, not found and bad input 400",
             bulk_by_nin(bundle)),
            (f"{bundle}: person/{{id}}, found, not found 404 and bad input 400", by_id(bundle)),
            (f"{bundle}: person/bulk-by-id, found, not found and bad input 400",
             bulk_by_id(bundle)),
            (f"{bundle}: search/person, found, none and bad input 400", search(bundle)),
            (f"{bundle}: event and event/latest, bad input 400", events(bundle)),
        ]
    checks += [("no-legal-basis: a legal-basis part is a 403 on every route", legal_parts_refused),
               ("wrong scope 403, no token 401, no nhn-purpose 400", scope_and_token)]
    for name, test in checks:
        c.run(name, test)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--keys", required=True)
    p = sub.add_parser("check")
    p.add_argument("--base", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--bin", required=True, help="helsenett, for `synth events`")
    args = parser.parse_args()
    sys.exit(prepare(args) if args.command == "prepare" else check(args))


if __name__ == "__main__":
    main()
