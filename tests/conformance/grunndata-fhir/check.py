"""The FHIR views of the base registers (/grunndata/fhir) read by software the project did not
write: every resource and every error the server returns is parsed by the FHIR R4 (4.0.1)
models of `fhir.resources` and must come back unchanged when the model writes it out again, so
nothing was coerced or dropped on the way. Tokens come from Authlib (private_key_jwt); the people,
professionals and lists asked for are picked from the store itself with sqlite3, and what each
resource says is compared with the store's row.

`prepare` writes the clients' keys and scopes (see CLIENTS); `check` runs.
"""

import argparse
import json
import os
import sqlite3
import sys
import traceback

import requests
from fhir.resources import __fhir_version__
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.organization import Organization
from fhir.resources.patient import Patient
from fhir.resources.practitioner import Practitioner
from fhir.resources.practitionerrole import PractitionerRole

# The helpers every conformance check shares sit one folder up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from helseid_client import client_token, write_key  # noqa: E402

TIMEOUT = 30
CONTENT_TYPE = "application/fhir+json"
PATIENTS = "nhn:persontjenesten/ReadNoLegalBasis"
HPR_READ = "nhn:hpr/read"
SCOPES = [PATIENTS, HPR_READ, "nhn:fastlegeregisteret/read", "nhn:adresseregisteret/read"]
CLIENTS = {
    # Reads every view.
    "reader": SCOPES,
    # Holds a scope of each register's API, so its token is for all four, but only Practitioner's
    # view scope: the others must answer 403 insufficient_scope.
    "narrow": [HPR_READ, "nhn:persontjenesten/ReadWithLegalBasis", "nhn:fastlegeregisteret/write",
               "nhn:adresseregisteret/write"],
    # A token for HPR's API alone is not for the other registers at all (its aud lacks them).
    "hpr-only": [HPR_READ],
}

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
ENH = "urn:oid:2.16.578.1.12.4.1.4.101"
# Kodeverk for profession (9060), authorisation (7704) and speciality (7426).
PROFESSION, AUTHORISATION, SPECIALITY = (f"urn:oid:2.16.578.1.12.4.1.1.{n}"
                                         for n in (9060, 7704, 7426))
# HL7 Norway's profiles each view follows.
PROFILE = "http://hl7.no/fhir/StructureDefinition/no-basis-"
MODELS = {m.__name__: m for m in (Bundle, CapabilityStatement, OperationOutcome, Organization,
                                  Patient, Practitioner, PractitionerRole)}


def prepare(args):
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    # The clients act for a GP office: any organisation of the country would do.
    (orgnr,) = db.execute("SELECT office_orgnr FROM gp_list ORDER BY id LIMIT 1").fetchone()
    os.makedirs(args.keys, exist_ok=True)
    lines = []
    for name, scopes in CLIENTS.items():
        write_key(args.keys, name)
        lines.append(f"grunndata-fhir-{name} {orgnr} {name}.public.json {' '.join(scopes)}\n")
    with open(os.path.join(args.keys, "clients.txt"), "w") as f:
        f.writelines(lines)


def token(base, keys, name):
    return client_token(base, keys, name, f"grunndata-fhir-{name}", " ".join(CLIENTS[name]))


def mod11(digits, weights):
    """The mod-11 check digit of Norwegian numbers, or None where there is none."""
    k = 11 - sum(int(d) * w for d, w in zip(digits, weights)) % 11
    return None if k == 10 else k % 11


def unknown_fnr(known):
    """A synthetic fødselsnummer (month + 80) of 1 January 1901 that nobody in the store has."""
    for individual in range(500):
        d = f"018101{individual:03}"
        k1 = mod11(d, [3, 7, 6, 1, 8, 9, 4, 5, 2])
        k2 = None if k1 is None else mod11(f"{d}{k1}", [5, 4, 3, 2, 7, 6, 5, 4, 3, 2])
        if k2 is not None and f"{d}{k1}{k2}" not in known:
            return f"{d}{k1}{k2}"
    raise AssertionError("no free fødselsnummer for 1 January 1901")


def unknown_orgnr(known):
    """A synthetic organisasjonsnummer (leading 3) that no organisation in the store has."""
    for seq in range(9_999_999, 0, -1):
        d = f"3{seq:07}"
        k = mod11(d, [3, 2, 7, 6, 5, 4, 3, 2])
        if k is not None and f"{d}{k}" not in known:
            return f"{d}{k}"
    raise AssertionError("no free organisasjonsnummer")


class Country:
    """The people, professionals, lists and offices to ask for, read from the store."""

    def __init__(self, path):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.db.row_factory = sqlite3.Row

    def one(self, sql, *params):
        return self.db.execute(sql, params).fetchone()

    def person(self, where):
        return self.one(f"SELECT * FROM person WHERE {where} ORDER BY nin LIMIT 1")

    def gp_list_of(self, nin):
        row = self.one("SELECT list_id FROM gp_list_member WHERE nin = ?", nin)
        return row["list_id"] if row else None

    def column(self, sql, *params):
        return {r[0] for r in self.db.execute(sql, params)}


def differences(sent, again, path="$"):
    """Where the model's rendering differs from what the server sent."""
    if isinstance(sent, dict) and isinstance(again, dict):
        return [d for k in sorted(set(sent) | set(again))
                for d in differences(sent.get(k), again.get(k), f"{path}.{k}")]
    if isinstance(sent, list) and isinstance(again, list) and len(sent) == len(again):
        return [d for i, (a, b) in enumerate(zip(sent, again))
                for d in differences(a, b, f"{path}[{i}]")]
    if sent == [] and again is None:
        # fhir.resources drops it, HL7's validator refuses it ("Array cannot be empty"): FHIR
        # JSON leaves out an element with no value (ele-1) rather than sending [].
        return [f"{path}: an empty array; FHIR JSON leaves the element out"]
    return [] if sent == again else [f"{path}: sent {sent!r}, read as {again!r}"]


class Checker:
    def __init__(self, args):
        self.base = f"{args.base}/grunndata/fhir"
        self.tokens = {name: token(args.base, args.keys, name) for name in CLIENTS}
        self.tokens[None] = None
        self.country = Country(args.db)
        self.passed = self.failed = self.skipped = 0

    def call(self, method, path, expect, kind, who="reader", data=None):
        """One request; the answer must have the status, be FHIR JSON, and be a valid `kind`
        (an OperationOutcome for every error) that fhir.resources writes back unchanged."""
        headers = {"Accept": CONTENT_TYPE}
        if self.tokens[who]:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        response = requests.request(method, f"{self.base}{path}", headers=headers, data=data,
                                    timeout=TIMEOUT)
        assert response.status_code == expect, \
            f"{method} {path}: {response.status_code}, not {expect}: {response.text[:300]}"
        content_type = response.headers.get("content-type", "")
        assert content_type.split(";")[0].strip() == CONTENT_TYPE, \
            f"{method} {path}: content-type {content_type!r}"
        body = response.json()
        assert body.get("resourceType") == kind, \
            f"{method} {path}: a {body.get('resourceType')}, not a {kind}: {response.text[:300]}"
        model = MODELS[kind].parse_obj(body)  # raises pydantic's ValidationError
        changed = differences(body, json.loads(model.json()))
        assert not changed, f"{method} {path}: fhir.resources reads it otherwise: {changed}"
        self.headers = response.headers
        return body

    def error(self, method, path, expect, code, who="reader", data=None):
        outcome = self.call(method, path, expect, "OperationOutcome", who, data)
        issue = outcome["issue"][0]
        assert (issue["severity"], issue["code"]) == ("error", code), outcome
        if expect in (401, 403):
            # RFC 6750 §3: the OperationOutcome replaces the body, not the challenge.
            assert "www-authenticate" in self.headers, f"{method} {path}: no WWW-Authenticate"
        return outcome

    def patient(self, row):
        """The person's Patient by id and by number: the same resource, saying what the store
        says, with the address only when the person has no address protection."""
        nin = row["nin"]
        dnr = row["number_kind"] == "dnr"
        p = self.call("GET", f"/Patient/{row['person_id']}", 200, "Patient")
        assert p["id"] == row["person_id"], p
        assert p["meta"]["profile"] == [f"{PROFILE}Patient"], p
        system = DNR if dnr else FNR
        assert p["identifier"] == [{"use": "official", "system": system, "value": nin}], p
        assert p["name"][0]["family"] == row["family_name"], p
        assert p["name"][0]["given"] == [row["given_name"]], p
        assert p["gender"] == row["sex"] and p["gender"] in ("male", "female"), p
        assert p["birthDate"] == row["birth_date"], p
        if row["address_protection"] == "Unclassified":
            address = p["address"][0]
            assert (address["line"], address["postalCode"], address["city"]) == \
                ([row["street_address"]], row["postal_code"], row["postal_place"]), p
        else:
            assert "address" not in p, f"{row['address_protection']}: {p}"
        assert p["active"] is (row["status"] not in ("Deceased", "Emigrated")), p
        if row["status"] == "Deceased":
            assert p["deceasedDateTime"] == row["deceased_date"], p
        else:
            assert p["deceasedBoolean"] is False and "deceasedDateTime" not in p, p
        listed = self.country.gp_list_of(nin)
        # The GP's office would locate a person whose address is hidden, so it is left out too.
        if listed is None or row["address_protection"] != "Unclassified":
            assert "generalPractitioner" not in p, p
        else:
            assert p["generalPractitioner"] == [{"reference": f"PractitionerRole/{listed}"}], p
        found = self.call("POST", "/Patient/_search", 200, "Bundle",
                          data={"identifier": f"{system}|{nin}"})
        assert (found["type"], found["total"], len(found["entry"])) == ("searchset", 1, 1), found
        assert found["entry"][0]["resource"] == p, found
        return p

    def run(self, name, test):
        try:
            if test() == "skip":
                self.skipped += 1
                print(f"SKIP {name}")
                return
            self.passed += 1
            print(f"PASS {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()


def check(args):
    c = Checker(args)
    country = c.country
    print(f"fhir.resources validates FHIR {__fhir_version__}")
    # The first person on a GP list with nothing unusual about them, and that list's GP.
    listed = country.one(
        "SELECT p.*, m.list_id FROM person p JOIN gp_list_member m ON m.nin = p.nin "
        "WHERE p.number_kind = 'fnr' AND p.address_protection = 'Unclassified' "
        "AND p.status = 'Resident' ORDER BY p.nin LIMIT 1")
    gp_list = country.one("SELECT * FROM gp_list WHERE id = ?", listed["list_id"])

    def capabilities():
        cs = c.call("GET", "/metadata", 200, "CapabilityStatement", who=None)
        assert (cs["fhirVersion"], cs["kind"], cs["status"]) == ("4.0.1", "instance", "active"), cs
        served = {r["type"] for r in cs["rest"][0]["resource"]}
        assert served == {"Patient", "Practitioner", "PractitionerRole", "Organization"}, served

    def on_a_gp_list():
        p = c.patient(listed)
        assert "address" in p and "generalPractitioner" in p, p

    def address_protected():
        row = country.person("address_protection <> 'Unclassified'")
        assert row is not None, "the country has nobody with address protection"
        c.patient(row)

    def deceased():
        row = country.person("status = 'Deceased'")
        if row is None:
            return "skip"
        c.patient(row)

    def d_nummer():
        row = country.person("number_kind = 'dnr'")
        assert row is not None, "the country has no D-nummer"
        c.patient(row)

    def nobody():
        nin = unknown_fnr(country.column("SELECT nin FROM person"))
        found = c.call("POST", "/Patient/_search", 200, "Bundle",
                       data={"identifier": f"{FNR}|{nin}"})
        assert (found["type"], found["total"], "entry" in found) == ("searchset", 0, False), found

    def practitioner():
        hpr = gp_list["gp_hpr"]
        person = country.one("SELECT * FROM health_personnel WHERE hpr = ?", hpr)
        p = c.call("GET", f"/Practitioner/{hpr}", 200, "Practitioner")
        assert p["id"] == str(hpr) and p["meta"]["profile"] == [f"{PROFILE}Practitioner"], p
        assert p["identifier"] == [{"use": "official", "system": HPR, "value": str(hpr)}], p
        assert p["name"][0]["family"] == person["family_name"], p
        codings = [coding for q in p["qualification"] for coding in q["code"]["coding"]]
        systems = {coding["system"] for coding in codings}
        assert {PROFESSION, AUTHORISATION} <= systems, systems
        assert systems <= {PROFESSION, AUTHORISATION, SPECIALITY}, systems
        professions = {coding["code"] for coding in codings if coding["system"] == PROFESSION}
        assert person["profession"] in professions, (person["profession"], professions)

    def practitioner_role():
        role = c.call("GET", f"/PractitionerRole/{gp_list['id']}", 200, "PractitionerRole")
        assert role["id"] == str(gp_list["id"]), role
        assert role["meta"]["profile"] == [f"{PROFILE}PractitionerRole"], role
        assert role["practitioner"]["reference"] == f"Practitioner/{gp_list['gp_hpr']}", role
        assert role["organization"]["reference"] == f"Organization/{gp_list['office_orgnr']}", role
        found = c.call("GET", f"/PractitionerRole?practitioner={gp_list['gp_hpr']}", 200, "Bundle")
        lists = country.column("SELECT id FROM gp_list WHERE gp_hpr = ?", gp_list["gp_hpr"])
        assert found["type"] == "searchset" and found["total"] == len(lists), found
        assert {e["resource"]["id"] for e in found["entry"]} == {str(i) for i in lists}, found
        assert role in [e["resource"] for e in found["entry"]], found

    def organization():
        orgnr = gp_list["office_orgnr"]
        row = country.one("SELECT * FROM organisation WHERE orgnr = ?", orgnr)
        o = c.call("GET", f"/Organization/{orgnr}", 200, "Organization")
        assert o["id"] == orgnr and o["name"] == row["name"], o
        assert o["meta"]["profile"] == [f"{PROFILE}Organization"], o
        assert o["identifier"] == [{"use": "official", "system": ENH, "value": orgnr}], o
        if row["parent_orgnr"]:
            assert o["partOf"] == {"reference": f"Organization/{row['parent_orgnr']}"}, o

    def malformed():
        c.error("GET", "/Patient/xyz", 400, "invalid")
        c.error("GET", "/Practitioner/12ab", 400, "invalid")
        c.error("GET", "/PractitionerRole/-1", 400, "invalid")
        c.error("GET", "/PractitionerRole?name=x", 400, "invalid")
        c.error("GET", "/Organization/123", 400, "invalid")
        c.error("POST", "/Patient/_search", 400, "invalid", data={"name": "Nordmann"})
        # A fødselsnummer under the D-nummer system: refused without repeating the number.
        outcome = c.error("POST", "/Patient/_search", 400, "invalid",
                          data={"identifier": f"{DNR}|{listed['nin']}"})
        assert listed["nin"] not in json.dumps(outcome), outcome

    def unknown():
        hprs = country.column("SELECT hpr FROM health_personnel")
        hpr = next(n for n in range(1, 10**9) if n not in hprs)
        list_id = max(country.column("SELECT id FROM gp_list")) + 1000
        orgnr = unknown_orgnr(country.column("SELECT orgnr FROM organisation"))
        c.error("GET", f"/Patient/{'0' * 32}", 404, "not-found")
        c.error("GET", f"/Practitioner/{hpr}", 404, "not-found")
        c.error("GET", f"/PractitionerRole/{list_id}", 404, "not-found")
        c.error("GET", f"/Organization/{orgnr}", 404, "not-found")

    def refused():
        patient = f"/Patient/{listed['person_id']}"
        search = {"identifier": f"{FNR}|{listed['nin']}"}
        role = f"/PractitionerRole/{gp_list['id']}"
        office = f"/Organization/{gp_list['office_orgnr']}"
        c.error("GET", patient, 401, "login", who=None)
        c.error("POST", "/Patient/_search", 401, "login", who=None, data=search)
        c.error("GET", office, 401, "login", who=None)
        # Both tokens are good (they read Practitioner), yet refused the other views.
        for who in ("narrow", "hpr-only"):
            c.call("GET", f"/Practitioner/{gp_list['gp_hpr']}", 200, "Practitioner", who=who)
        roles = f"/PractitionerRole?practitioner={gp_list['gp_hpr']}"
        for method, path, data in [("GET", patient, None), ("POST", "/Patient/_search", search),
                                   ("GET", role, None), ("GET", roles, None),
                                   ("GET", office, None)]:
            c.error(method, path, 403, "forbidden", who="narrow", data=data)
            # Not for this API at all: RFC 6750's invalid_token, so 401 as with no token.
            c.error(method, path, 401, "login", who="hpr-only", data=data)

    def unrouted():
        # A FHIR client meets these too; README: every error is an OperationOutcome.
        c.error("GET", "/Observation/1", 404, "not-found")
        c.error("DELETE", f"/Patient/{listed['person_id']}", 405, "not-supported")
        c.error("PUT", f"/Organization/{gp_list['office_orgnr']}", 405, "not-supported")

    for name, test in [
            ("CapabilityStatement, without a token", capabilities),
            ("Patient on a GP list, by id and by _search", on_a_gp_list),
            ("Patient with address protection: no address", address_protected),
            ("Patient deceased", deceased),
            ("Patient with a D-nummer", d_nummer),
            ("Patient _search for a number nobody has: empty searchset", nobody),
            ("Practitioner: the GP, with qualifications", practitioner),
            ("PractitionerRole: the GP's list, by id and by practitioner", practitioner_role),
            ("Organization: the GP office", organization),
            ("malformed ids and searches: 400 OperationOutcome", malformed),
            ("unknown ids: 404 OperationOutcome", unknown),
            ("no token 401, a token without the scope 403: OperationOutcome", refused),
            ("unknown resource type 404, write 405: OperationOutcome", unrouted)]:
        c.run(name, test)
    print(f"{c.passed} passed, {c.failed} failed, {c.skipped} skipped")
    return 1 if c.failed else 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--keys", required=True)
    p.add_argument("--db", required=True)
    p = sub.add_parser("check")
    p.add_argument("--base", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--db", required=True)
    args = parser.parse_args()
    sys.exit(prepare(args) if args.command == "prepare" else check(args))


if __name__ == "__main__":
    main()
