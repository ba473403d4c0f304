"""Kjernejournal (/kjernejournal/api/v1) read by software the project did not write: every
resource and every error the server returns is parsed by the FHIR R4 (4.0.1) models of
`fhir.resources` and must come back the same when the model writes it out again; the audit
records are read from the store with sqlite3, validated as FHIR AuditEvents, and their hash chain
is recomputed here, independently of the server's code. Tokens come from Authlib: client
credentials for the source systems, the authorization code flow with PKCE at HelseID's test
identity provider for health personnel and the citizen (private_key_jwt throughout). The people
and organisations are picked from the store itself (see `prepare`).

`prepare` writes the clients' keys and the people to act as; `check` runs.
"""

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import traceback
from datetime import datetime

import requests
from fhir.resources import __fhir_version__, get_fhir_model_class

# The helpers every conformance check shares sit one folder up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from helseid_client import client_token, user_token, write_key  # noqa: E402

TIMEOUT = 60
CONTENT_TYPE = "application/fhir+json"
API = "nhn:kjernejournal/api"
INGEST = "nhn:kjernejournal/ingest"
# Nothing listens there: the redirect is read from the Location header, as a native app would.
REDIRECT = "http://127.0.0.1:53682/callback"
# name: (organisation the client acts for, grant type, scopes)
CLIENTS = {
    # The GP office's EPJ: its GP, and another professional signed in there.
    "epj": ("office", "authorization_code", f"openid {API}"),
    # The citizen's portal. The citizen acts for themselves; the organisation is the portal's.
    "helsenorge": ("office", "authorization_code", f"openid {API}"),
    # Source systems: the hospital's EPJ/PAS and the pharmacy's system.
    "dips": ("hospital", "client_credentials", INGEST),
    "apotek": ("pharmacy", "client_credentials", INGEST),
}

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
ENH = "urn:oid:2.16.578.1.12.4.1.4.101"
SNOMED = "http://snomed.info/sct"
CRITICAL_TYPE = "urn:helsenett:kjernejournal:critical-type"
AUDIT_SYSTEM = "urn:helsenett:kjernejournal:audit"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
GENESIS = "0" * 64
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
# A header carries only ASCII: the reason percent-encoded, as the API reads it.
READ_REASON_HEADER = "kontroll%20etter%20innleggelse"
READ_REASON = "innleggelse: legemiddelgjennomgang"
EMERGENCY_REASON = "bevisstløs pasient i akuttmottak"
DOCUMENT = "SYNTETISK EPIKRISE\nInnlagt med brystsmerter. Utskrevet i god form.\n".encode()
DOCUMENT_TYPE = "text/plain; charset=utf-8"

# An authorised professional: approved (authorisation), none ended, not suspended.
AUTHORISED = """NOT EXISTS (SELECT 1 FROM hpr_suspension s WHERE s.hpr = hp.hpr)
    AND EXISTS (SELECT 1 FROM hpr_approval a WHERE a.hpr = hp.hpr
                AND a.authorisation = '1' AND a.valid_to IS NULL)"""
# Someone with a fødselsnummer, resident, not health personnel, and whose record is open to
# health personnel (no privacy limit chosen).
CITIZEN = """p.number_kind = 'fnr' AND p.status = 'Resident'
    AND p.nin NOT IN (SELECT nin FROM health_personnel)
    AND NOT EXISTS (SELECT 1 FROM kj_record r WHERE r.nin = p.nin AND r.privacy <> 'open')"""


def prepare(args):
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)

    def one(sql):
        row = db.execute(sql).fetchone()
        assert row is not None, f"the country has nobody for: {sql}"
        return row

    # An authorised GP and a patient on their list; of those, the one whose record the synthetic
    # country filled most, so that the Bundle carries every kind of entry the store holds.
    gp_hpr, gp, office, patient = one(f"""
        SELECT hp.hpr, hp.nin, l.office_orgnr, p.nin FROM gp_list l
        JOIN health_personnel hp ON hp.hpr = l.gp_hpr
        JOIN gp_list_member m ON m.list_id = l.id
        JOIN person p ON p.nin = m.nin
        WHERE {AUTHORISED} AND {CITIZEN}
        ORDER BY (SELECT COUNT(DISTINCT e.section) FROM kj_entry e WHERE e.nin = p.nin) DESC,
                 l.id, p.nin
        LIMIT 1""")
    # Authorised, and nobody's GP: no relation with the patient at the GP office.
    professional_hpr, professional = one(f"""
        SELECT hp.hpr, hp.nin FROM health_personnel hp
        WHERE {AUTHORISED}
          AND NOT EXISTS (SELECT 1 FROM gp_list l WHERE l.gp_hpr = hp.hpr)
          AND hp.nin NOT IN ('{gp}', '{patient}')
        ORDER BY hp.hpr LIMIT 1""")
    (other,) = one(f"""SELECT p.nin FROM person p WHERE {CITIZEN} AND p.nin <> '{patient}'
                       ORDER BY p.nin LIMIT 1""")
    orgs = {"office": office}
    for kind in ("hospital", "pharmacy"):
        orgs[kind] = one(f"SELECT orgnr FROM organisation WHERE kind = '{kind}' "
                         "ORDER BY orgnr LIMIT 1")[0]
    os.makedirs(args.keys, exist_ok=True)
    lines = []
    for name, (org, grant, scopes) in CLIENTS.items():
        write_key(args.keys, name)
        redirect = REDIRECT if grant == "authorization_code" else "-"
        lines.append(f"kjernejournal-fhir-{name} {orgs[org]} {name}.public.json {grant} "
                     f"{redirect} {scopes}\n")
    with open(os.path.join(args.keys, "clients.txt"), "w") as f:
        f.writelines(lines)
    people = {"gp": gp, "gp_hpr": gp_hpr, "office": office, "patient": patient,
              "professional": professional, "professional_hpr": professional_hpr,
              "other": other, "hospital": orgs["hospital"], "pharmacy": orgs["pharmacy"]}
    with open(os.path.join(args.keys, "people.json"), "w") as f:
        json.dump(people, f, indent=1)


def mod11(digits, weights):
    k = 11 - sum(int(d) * w for d, w in zip(digits, weights)) % 11
    return None if k == 10 else k % 11


def bad_checksum(nin):
    """`nin` with its last check digit wrong."""
    k2 = mod11(nin[:10], [5, 4, 3, 2, 7, 6, 5, 4, 3, 2])
    wrong = (int(nin[10]) + 1) % 10
    assert wrong != k2
    return nin[:10] + str(wrong)


def instant(value):
    """A FHIR dateTime/instant with a time and a zone, as a datetime; None for anything else."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def differences(sent, again, harmless, path="$", element=""):
    """Where the model's rendering differs from what the server sent. fhir.resources writes an
    instant in UTC as +00:00 where the server writes Z: the same instant, both valid FHIR, so
    harmless; the elements where that happened (Type.element) are added to `harmless`, and
    anything else is a difference."""
    if isinstance(sent, dict) and isinstance(again, dict):
        if isinstance(sent.get("resourceType"), str):
            element = sent["resourceType"]
        return [d for k in sorted(set(sent) | set(again))
                for d in differences(sent.get(k), again.get(k), harmless, f"{path}.{k}",
                                     f"{element}.{k}")]
    if isinstance(sent, list) and isinstance(again, list) and len(sent) == len(again):
        return [d for i, (a, b) in enumerate(zip(sent, again))
                for d in differences(a, b, harmless, f"{path}[{i}]", element)]
    if sent == [] and again is None:
        return [f"{path}: an empty array; FHIR JSON leaves the element out"]
    if sent == again:
        return []
    if instant(sent) is not None and instant(sent) == instant(again):
        harmless.add(element)
        return []
    return [f"{path}: sent {sent!r}, read as {again!r}"]


def references(value, path="$"):
    """Every Reference.reference in a resource, with where it is."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                yield path, v
            else:
                yield from references(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from references(v, f"{path}[{i}]")


def chain_hash(seq, prev_hash, event):
    text = f"helsenett-kjernejournal-audit-v1\n{seq}\n{prev_hash}\n{event}"
    return hashlib.sha256(text.encode()).hexdigest()


def patient_ref(nin):
    return {"identifier": {"system": FNR, "value": nin}}


def org_ref(orgnr):
    return {"identifier": {"system": ENH, "value": orgnr}}


class Checker:
    def __init__(self, args):
        self.root = args.base
        self.base = f"{args.base}/kjernejournal/api/v1"
        self.keys = args.keys
        self.db_path = args.db
        self.data = os.path.dirname(os.path.abspath(args.db))
        self.bin = args.bin
        with open(os.path.join(args.keys, "people.json")) as f:
            self.people = json.load(f)
        self.tokens = {}
        self.harmless = set()
        self.relative_urls = set()
        self.passed = self.failed = 0
        self.state = {}

    # -- tokens

    def token(self, who):
        """A token for `who`: a source system's (client credentials) or a person's (signed in
        through the authorization code flow), made once."""
        if who not in self.tokens:
            p = self.people
            client, pid = {
                "gp": ("epj", p["gp"]),
                "professional": ("epj", p["professional"]),
                "citizen": ("helsenorge", p["patient"]),
                "dips": ("dips", None),
                "apotek": ("apotek", None),
            }[who]
            client_id = f"kjernejournal-fhir-{client}"
            scope = CLIENTS[client][2]
            if pid is None:
                self.tokens[who] = client_token(self.root, self.keys, client, client_id, scope)
            else:
                self.tokens[who] = user_token(self.root, self.keys, client, client_id, scope,
                                              REDIRECT, pid)
        return self.tokens[who]

    # -- the store

    @contextlib.contextmanager
    def db(self):
        """The store, read-only (the server keeps writing it: SQLite in WAL mode)."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def audit_rows(self, nin=None):
        with self.db() as db:
            if nin is None:
                return db.execute("SELECT * FROM kj_audit ORDER BY seq").fetchall()
            return db.execute("SELECT * FROM kj_audit WHERE nin = ? ORDER BY seq",
                              (nin,)).fetchall()

    def audit_row(self, seq):
        with self.db() as db:
            row = db.execute("SELECT * FROM kj_audit WHERE seq = ?", (seq,)).fetchone()
        assert row is not None, f"no audit record {seq}"
        return row

    # -- requests

    def request(self, method, path, who, body=None, raw=None, extra=None):
        headers = {"Accept": CONTENT_TYPE, "Authorization": f"Bearer {self.token(who)}",
                   **(extra or {})}
        if body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            headers["Content-Type"] = "application/json"
        return requests.request(method, f"{self.base}{path}", headers=headers, data=raw,
                                timeout=TIMEOUT)

    def validate(self, body, kind, where):
        """`body` must be a valid `kind` that fhir.resources writes back the same. An
        Attachment.url relative to the service (FHIR R4 allows it, fhir.resources takes only
        absolute URLs or ones starting with /) is resolved against the service's base first,
        as FHIR says it is read."""
        assert body.get("resourceType") == kind, \
            f"{where}: a {body.get('resourceType')}, not a {kind}: {json.dumps(body)[:300]}"
        resolved = self.resolve_attachments(json.loads(json.dumps(body)))
        model = get_fhir_model_class(kind).parse_obj(resolved)  # raises pydantic's ValidationError
        again = json.loads(model.json())
        changed = differences(resolved, again, self.harmless)
        assert not changed, f"{where}: fhir.resources reads it otherwise: {changed}"
        return model

    def resolve_attachments(self, value):
        if isinstance(value, dict):
            if value.get("resourceType") == "DocumentReference":
                for content in value.get("content", []):
                    url = content.get("attachment", {}).get("url")
                    if isinstance(url, str) and "://" not in url and not url.startswith("/"):
                        self.relative_urls.add(url.split("/")[0] + "/<id>")
                        content["attachment"]["url"] = f"{self.base}/{url}"
            for v in value.values():
                self.resolve_attachments(v)
        elif isinstance(value, list):
            for v in value:
                self.resolve_attachments(v)
        return value

    def call(self, method, path, expect, kind, who, body=None, raw=None):
        """One request; the answer must have the status, be FHIR JSON and a valid `kind`."""
        response = self.request(method, path, who, body, raw)
        assert response.status_code == expect, \
            f"{method} {path}: {response.status_code}, not {expect}: {response.text[:400]}"
        content_type = response.headers.get("content-type", "")
        assert content_type.split(";")[0].strip() == CONTENT_TYPE, \
            f"{method} {path}: content-type {content_type!r}"
        body = response.json()
        self.validate(body, kind, f"{method} {path}")
        self.response = response
        return body

    def error(self, method, path, expect, code, who, body=None, raw=None):
        outcome = self.call(method, path, expect, "OperationOutcome", who, body, raw)
        issue = outcome["issue"][0]
        assert (issue["severity"], issue["code"]) == ("error", code), outcome
        return outcome

    def bundle(self, body, where):
        """A record: a Bundle of type collection, every entry resource valid as its own type,
        every reference resolving to an entry's fullUrl; its audit record's seq."""
        assert body["type"] == "collection", body["type"]
        entries = body.get("entry", [])
        for i, entry in enumerate(entries):
            resource = entry["resource"]
            self.validate(resource, resource["resourceType"], f"{where} entry[{i}]")
        full_urls = {e["fullUrl"] for e in entries if "fullUrl" in e}
        assert len(full_urls) == len([e for e in entries if "fullUrl" in e]), "fullUrls repeat"
        for e in entries:
            if "fullUrl" in e:
                assert e["fullUrl"] == f"urn:uuid:{e['resource']['id']}", e["fullUrl"]
        unresolved = [(path, ref) for path, ref in references(body) if ref not in full_urls]
        # FHIR R4 Bundle, "Resolving references in Bundles": a relative reference (Type/id) in
        # an entry whose fullUrl is a urn:uuid resolves to no entry of the Bundle.
        assert not unresolved, f"{where}: references that resolve to no entry: {unresolved}"
        identifier = body["identifier"]
        assert identifier["system"] == AUDIT_SYSTEM, identifier
        return int(identifier["value"])

    def audit_event(self, seq):
        """Audit record `seq` as a validated AuditEvent (the stored JSON, parsed)."""
        row = self.audit_row(seq)
        event = json.loads(row["event"])
        self.validate(event, "AuditEvent", f"kj_audit {seq}")
        assert event["id"] == str(seq), event["id"]
        return row, event

    def run(self, name, test):
        try:
            test()
            self.passed += 1
            print(f"PASS {name}", flush=True)
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            self.failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
            sys.stderr.flush()


def check(args):
    c = Checker(args)
    p = c.people
    s = c.state
    patient = p["patient"]
    print(f"fhir.resources validates FHIR {__fhir_version__}")

    def ingest():
        dispense = {
            "resourceType": "MedicationDispense", "status": "completed",
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "C10AA05",
                            "display": "atorvastatin"}],
                "text": "Atorvastatin 20 mg"},
            "subject": patient_ref(patient),
            "performer": [{"actor": org_ref(p["pharmacy"])}],
            "quantity": {"value": 30, "unit": "tablett"},
            "whenHandedOver": "2026-03-01T10:00:00Z",
        }
        stay = {
            "resourceType": "Encounter", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "IMP", "display": "inpatient encounter"},
            "subject": patient_ref(patient),
            "period": {"start": "2026-01-02T08:00:00Z"},
            "serviceProvider": org_ref(p["hospital"]),
        }
        document = {
            "resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5",
                                 "display": "Discharge summary"}]},
            "subject": patient_ref(patient),
            "date": "2026-03-02T12:00:00Z",
            "author": [org_ref(p["hospital"])],
            "securityLabel": [{"coding": [{"system": CONFIDENTIALITY, "code": "N"}]}],
            "content": [{"attachment": {"contentType": DOCUMENT_TYPE, "title": "Epikrise",
                                        "data": base64.b64encode(DOCUMENT).decode()}}],
        }
        created = {}
        for who, resource in [("apotek", dispense), ("dips", stay), ("dips", document)]:
            kind = resource["resourceType"]
            body = c.call("POST", "/ingest", 201, kind, who, resource)
            assert body.get("id"), body
            assert c.response.headers.get("location") == f"{kind}/{body['id']}", \
                c.response.headers.get("location")
            # What was sent is kept as sent, but for the id (and a document's content).
            for key, value in resource.items():
                if key != "content":
                    assert body[key] == value, (key, body[key], value)
            created[kind] = body
        attachment = created["DocumentReference"]["content"][0]["attachment"]
        assert "data" not in attachment, "the content is kept apart from the metadata"
        assert {"url", "size", "hash"} <= set(attachment), attachment
        assert attachment["size"] == len(DOCUMENT), attachment
        assert attachment["hash"] == base64.b64encode(hashlib.sha1(DOCUMENT).digest()).decode(), \
            attachment
        assert attachment["contentType"] == DOCUMENT_TYPE, attachment
        # FHIR R4 Attachment.url: relative to the service base, and it SHALL resolve to the data
        # (for health personnel with the reason in a header; checked in document()).
        assert attachment["url"] == f"Binary/{created['DocumentReference']['id']}", attachment
        s["created"] = created

    def critical():
        reason = "registrerer kritisk informasjon"
        allergy = {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "code": "confirmed"}]},
            "type": "allergy", "category": ["medication"], "criticality": "high",
            "code": {"coding": [{"system": SNOMED, "code": "294505008",
                                 "display": "Allergy to penicillin"}], "text": "Penicillinallergi"},
            "patient": patient_ref(patient),
            "reaction": [{"manifestation": [{"coding": [{"system": SNOMED, "code": "39579001",
                                                         "display": "Anaphylaxis"}]}],
                          "severity": "severe"}],
        }
        condition = {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]},
            "category": [{"coding": [{"system": CRITICAL_TYPE, "code": "anaesthesia-complication",
                                      "display": "Komplikasjon ved anestesi"}]}],
            "code": {"coding": [{"system": SNOMED, "code": "405501007",
                                 "display": "Malignant hyperthermia"}],
                     "text": "Malign hypertermi under narkose"},
            "subject": patient_ref(patient),
            "recordedDate": "2026-02-01",
        }
        s["critical"] = []
        for resource in (allergy, condition):
            kind = resource["resourceType"]
            body = c.call("POST", "/critical", 201, kind, "gp",
                          {"patient": patient, "reason": reason, "resource": resource})
            for key, value in resource.items():
                assert body[key] == value, (key, body[key], value)
            s["critical"].append(body)

    def gp_reads():
        body = c.call("POST", "/record", 200, "Bundle", "gp",
                      {"patient": patient, "reason": READ_REASON})
        s["gp_read"] = int(body["identifier"]["value"])
        seq = c.bundle(body, "POST /record")
        resources = {e["fullUrl"]: e["resource"] for e in body["entry"] if "fullUrl" in e}
        lists = [e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "List"]
        assert len(lists) == 1, f"{len(lists)} Lists"
        items = [i["item"]["reference"] for i in lists[0].get("entry", [])]
        for added in s["critical"]:
            url = f"urn:uuid:{added['id']}"
            assert url in items, f"{url} is not in the critical information List: {items}"
            assert resources[url] == added, (resources[url], added)
        # Everything the sources reported is in the record, as they were answered.
        for kind, created in s["created"].items():
            assert resources.get(f"urn:uuid:{created['id']}") == created, kind
        # ... and the List names exactly the critical entries.
        with c.db() as db:
            critical = {f"urn:uuid:{r[0]}" for r in db.execute(
                "SELECT id FROM kj_entry WHERE nin = ? AND section = 'critical'", (patient,))}
        assert set(items) == critical, (items, critical)
        kinds = sorted({r["resourceType"] for r in resources.values()})
        print(f"  the record has {len(body['entry'])} entries: {', '.join(kinds)}")
        row = c.audit_row(seq)
        assert (row["nin"], row["actor"], row["access"], row["outcome"]) == \
            (patient, f"hpr:{p['gp_hpr']}", "normal", "granted"), dict(row)

    def audit_of_read():
        row, event = c.audit_event(s["gp_read"])
        assert event["entity"][0]["what"]["identifier"] == \
            {"system": FNR, "value": patient}, event["entity"][0]
        assert event["agent"][0]["who"]["identifier"] == \
            {"system": HPR, "value": str(p["gp_hpr"])}, event["agent"][0]
        assert event["agent"][1]["who"]["identifier"] == \
            {"system": ENH, "value": p["office"]}, event["agent"][1]
        purpose = event["purposeOfEvent"][0]
        assert purpose["coding"] == [{"system": ACT_REASON, "code": "TREAT"}], purpose
        assert purpose["text"] == READ_REASON, purpose
        assert (event["action"], event["outcome"]) == ("R", "0"), event
        # The chain, recomputed here from the rows alone.
        rows = c.audit_rows()
        assert rows, "no audit records"
        previous = (0, GENESIS)
        for r in rows:
            assert r["seq"] == previous[0] + 1, f"record {r['seq']} follows {previous[0]}"
            assert r["prev_hash"] == previous[1], f"record {r['seq']}: prev_hash"
            assert r["hash"] == chain_hash(r["seq"], r["prev_hash"], r["event"]), \
                f"record {r['seq']}: the hash is not SHA-256 of its link"
            previous = (r["seq"], r["hash"])
        with c.db() as db:
            head = tuple(db.execute("SELECT seq, hash FROM kj_audit_head").fetchone())
        assert head == previous, (head, previous)
        print(f"  {len(rows)} audit records chain from {GENESIS[:8]}... to {previous[1][:16]}...")

    def emergency():
        read = {"patient": patient, "reason": EMERGENCY_REASON}
        outcome = c.error("POST", "/record", 403, "forbidden", "professional", read)
        assert "no treatment relation" in outcome["issue"][0]["diagnostics"], outcome
        denied = c.audit_rows(patient)[-1]
        assert (denied["actor"], denied["access"], denied["outcome"]) == \
            (f"hpr:{p['professional_hpr']}", "normal", "denied"), dict(denied)
        body = c.call("POST", "/record", 200, "Bundle", "professional",
                      {**read, "emergency": True})
        s["emergency"] = int(body["identifier"]["value"])
        seq = c.bundle(body, "POST /record (emergency)")
        row, event = c.audit_event(seq)
        assert (row["actor"], row["access"], row["outcome"]) == \
            (f"hpr:{p['professional_hpr']}", "emergency", "granted"), dict(row)
        purpose = event["purposeOfEvent"][0]
        assert purpose["coding"][0]["code"] == "ETREAT", purpose
        assert purpose["text"] == EMERGENCY_REASON, purpose

    def document():
        doc_id = s["created"]["DocumentReference"]["id"]
        response = c.request("POST", "/document", "gp",
                             {"patient": patient, "reason": READ_REASON, "document": doc_id})
        assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
        assert response.content == DOCUMENT, response.content[:200]
        assert response.headers.get("content-type") == DOCUMENT_TYPE, \
            response.headers.get("content-type")
        row = c.audit_rows(patient)[-1]
        event = json.loads(row["event"])
        assert event["entity"][1]["what"]["reference"] == f"DocumentReference/{doc_id}", event
        c.validate(event, "AuditEvent", f"kj_audit {row['seq']}")
        # The same content where Attachment.url points, the reason in nhn-reason.
        url = s["created"]["DocumentReference"]["content"][0]["attachment"]["url"]
        response = c.request("GET", f"/{url}", "gp", extra={"nhn-reason": READ_REASON_HEADER})
        assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
        assert response.content == DOCUMENT, response.content[:200]
        response = c.request("GET", f"/{url}", "gp")
        assert response.status_code == 400, f"{response.status_code}: no reason, no document"

    def citizen():
        body = c.call("GET", "/citizen/record", 200, "Bundle", "citizen")
        seq = c.bundle(body, "GET /citizen/record")
        row = c.audit_row(seq)
        assert (row["nin"], row["actor"], row["access"]) == \
            (patient, f"pid:{patient}", "citizen"), dict(row)
        # The access log: every audit record about the citizen, each as the record says.
        response = c.request("GET", "/citizen/access-log?limit=500", "citizen")
        assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
        log = response.json()
        rows = c.audit_rows(patient)
        assert log.get("next") is None, log.get("next")
        assert sorted(e["seq"] for e in log["entries"]) == [r["seq"] for r in rows], \
            (len(log["entries"]), len(rows))
        by_seq = {e["seq"]: e for e in log["entries"]}
        for r in rows:
            entry = by_seq[r["seq"]]
            assert (entry["access"], entry["outcome"]) == (r["access"], r["outcome"]), \
                (entry, dict(r))
            assert entry["emergency"] == (r["access"] == "emergency"), entry
        flagged = by_seq[s["emergency"]]
        assert flagged["emergency"] is True and flagged["access"] == "emergency", flagged
        assert flagged["reason"] == EMERGENCY_REASON, flagged
        assert flagged["hprNumber"] == str(p["professional_hpr"]), flagged
        print(f"  the access log lists all {len(rows)} audit records, "
              f"{sum(e['emergency'] for e in log['entries'])} of them emergency access")
        # Someone else's record: refused, and logged against that person.
        other = p["other"]
        before = len(c.audit_rows(other))
        outcome = c.error("POST", "/record", 403, "forbidden", "citizen",
                          {"patient": other, "reason": "nysgjerrig"})
        assert "only their own record" in outcome["issue"][0]["diagnostics"], outcome
        tried = c.audit_rows(other)
        assert len(tried) == before + 1, (before, len(tried))
        assert (tried[-1]["actor"], tried[-1]["outcome"]) == (f"pid:{patient}", "denied"), \
            dict(tried[-1])
        c.audit_event(tried[-1]["seq"])

    def bad_input():
        before = len(c.audit_rows())
        outcome = c.error("POST", "/record", 400, "invalid", "gp",
                          raw=b'{"patient": "' + patient.encode())
        assert "body" in outcome["issue"][0]["diagnostics"], outcome
        wrong = bad_checksum(patient)
        outcome = c.error("POST", "/record", 400, "invalid", "gp",
                          {"patient": wrong, "reason": READ_REASON})
        assert "patient" in outcome["issue"][0]["diagnostics"], outcome
        assert wrong not in json.dumps(outcome), "errors never repeat the number"
        extreme = {
            "resourceType": "AllergyIntolerance", "criticality": "extreme",
            "code": {"text": "Nøtteallergi"}, "patient": patient_ref(patient),
        }
        outcome = c.error("POST", "/critical", 400, "code-invalid", "gp",
                          {"patient": patient, "reason": "x", "resource": extreme})
        assert "criticality" in outcome["issue"][0]["diagnostics"], outcome
        big = dict(s["created"]["DocumentReference"])
        big.pop("id")
        big["content"] = [{"attachment": {
            "contentType": "text/plain",
            "data": base64.b64encode(b"x" * (MAX_DOCUMENT_BYTES + 1)).decode()}}]
        outcome = c.error("POST", "/ingest", 413, "too-long", "dips", big)
        assert str(MAX_DOCUMENT_BYTES) in outcome["issue"][0]["diagnostics"], outcome
        assert len(c.audit_rows()) == before, "malformed requests are not attempts"

    def audit_verify():
        verify = [c.bin, "audit", "verify", "--data-dir", c.data]
        done = subprocess.run(verify, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stdout}{done.stderr}"
        rows = c.audit_rows()
        head = f"head {rows[-1]['seq']}:{rows[-1]['hash']}"
        assert head in done.stdout and f"{len(rows)} records" in done.stdout, done.stdout
        print(f"  {done.stdout.strip()}")
        # An attacker with the file drops the guard and rewrites the GP's reason.
        seq = s["gp_read"]
        db = sqlite3.connect(c.db_path, timeout=30)
        with db:
            db.execute("DROP TRIGGER kj_audit_no_update")
            db.execute("DROP TRIGGER kj_audit_no_delete")
            changed = db.execute("UPDATE kj_audit SET event = REPLACE(event, ?, ?) WHERE seq = ?",
                                 (READ_REASON, "rutinekontroll", seq)).rowcount
        db.close()
        assert changed == 1, changed
        done = subprocess.run(verify, capture_output=True, text=True, timeout=120)
        output = done.stdout + done.stderr
        assert done.returncode != 0, f"a changed record went unnoticed: {output}"
        assert f"record {seq} was changed" in output, output
        print(f"  after the change: exit {done.returncode}: "
              f"{output.strip().splitlines()[-1]}")

    for name, test in [
            ("1. ingest: MedicationDispense (pharmacy), Encounter and DocumentReference "
             "(hospital), 201, valid; the document's url, size and SHA-1 hash", ingest),
            ("2. the GP adds critical information: AllergyIntolerance and Condition "
             "(anaesthesia-complication), 201, valid", critical),
            ("3. the GP reads the record: a valid Bundle whose critical List and references "
             "resolve, naming its audit record", gp_reads),
            ("4. the read's AuditEvent is valid (patient, GP's HPR number, TREAT); the hash "
             "chain recomputed from genesis", audit_of_read),
            ("5. a professional without relation: 403 OperationOutcome; emergency: 200, "
             "audited ETREAT", emergency),
            ("6. the document read returns the bytes sent, with their content type", document),
            ("7. the citizen: own record, the access log with every audit record and the "
             "emergency marked; another's record 403 and logged to them", citizen),
            ("8. bad input: malformed JSON, a bad check digit, an unknown code, an oversized "
             "document: 400/400/400/413 OperationOutcome", bad_input),
            ("9. helsenett audit verify: intact with its head; a rewritten reason is named",
             audit_verify)]:
        c.run(name, test)
    if c.harmless:
        print("harmless: fhir.resources writes these instants with +00:00 for the server's Z "
              f"(compared as instants): {', '.join(sorted(c.harmless))}")
    if c.relative_urls:
        print("Attachment.url relative to the service, resolved against "
              f"{c.base}/ before validation (fhir.resources takes only absolute or /-rooted "
              f"URLs): {sorted(c.relative_urls)}")
    print(f"{c.passed} passed, {c.failed} failed")
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
    p.add_argument("--bin", required=True, help="the helsenett binary, for `audit verify`")
    args = parser.parse_args()
    sys.exit(prepare(args) if args.command == "prepare" else check(args))


if __name__ == "__main__":
    main()
