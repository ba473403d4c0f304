#!/usr/bin/env python3
"""Checks a `helsenett synth --export DIR` export with an implementation of the Norwegian
identifier rules written independently of the Rust code (from the published algorithms:
Skatteetaten's fødselsnummer/D-nummer check digits, Brønnøysundregistrene's organisasjonsnummer).

    python3 tests/conformance/check_export.py EXPORT_DIR

Prints every failed rule with an example and "N passed, M failed"; exits 1 on any failure.
"""

import datetime
import json
import sys
from collections import Counter
from pathlib import Path

FNR_K1 = [3, 7, 6, 1, 8, 9, 4, 5, 2]
FNR_K2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
ORGNR = [3, 2, 7, 6, 5, 4, 3, 2]


def mod11(digits, weights):
    """The mod-11 check digit, or None where the rule gives 10 (no valid number)."""
    rest = 11 - sum(int(d) * w for d, w in zip(digits, weights)) % 11
    return {11: 0, 10: None}.get(rest, rest)


def decode_nin(nin):
    """(kind, birth date, sex, synthetic) of a valid number, or a reason it is not valid."""
    if len(nin) != 11 or not nin.isdigit():
        return "not 11 digits"
    if mod11(nin[:9], FNR_K1) != int(nin[9]) or mod11(nin[:10], FNR_K2) != int(nin[10]):
        return "wrong check digits"
    day, month, yy, individual = int(nin[0:2]), int(nin[2:4]), int(nin[4:6]), int(nin[6:9])
    kind = "fnr"
    if day > 40:
        kind, day = "dnr", day - 40
    synthetic = month > 80
    if synthetic:
        month -= 80
    if individual <= 499:
        century = 1900
    elif individual <= 749 and yy >= 54:
        century = 1800
    elif yy <= 39:
        century = 2000
    elif individual >= 900:
        century = 1900
    else:
        return "individual number fits no century"
    try:
        born = datetime.date(century + yy, month, day)
    except ValueError:
        return "no such birth date"
    sex = "male" if int(nin[8]) % 2 else "female"
    return kind, born.isoformat(), sex, synthetic


def valid_orgnr(orgnr):
    return (
        len(orgnr) == 9
        and orgnr.isdigit()
        and mod11(orgnr[:8], ORGNR) == int(orgnr[8])
    )


def read(directory, name):
    with open(Path(directory) / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, rule, bad):
        """`bad` is the list of offending items: the rule passes when it is empty."""
        if bad:
            self.failed += 1
            print(f"FAIL {rule}: {len(bad)} cases, e.g. {bad[:3]}")
        else:
            self.passed += 1
            print(f"ok   {rule}")


def main(directory):
    persons = read(directory, "persons.jsonl")
    organisations = read(directory, "organisations.jsonl")
    parties = read(directory, "communication_parties.jsonl")
    r = Report()

    r.check("the export is not empty", [] if persons and organisations and parties else ["empty"])
    decoded = {p["nin"]: decode_nin(p["nin"]) for p in persons}
    r.check("every fødselsnummer/D-nummer has valid mod-11 check digits",
            [n for n, d in decoded.items() if isinstance(d, str)])
    good = {n: d for n, d in decoded.items() if not isinstance(d, str)}
    r.check("every number is synthetic (month + 80)", [n for n, d in good.items() if not d[3]])
    r.check("number kind, birth date and sex agree with the number",
            [p["nin"] for p in persons if p["nin"] in good
             and good[p["nin"]][:3] != (p["number_kind"], p["birth_date"], p["sex"])])
    r.check("D-nummer are present", [] if any(d[0] == "dnr" for d in good.values()) else ["none"])
    r.check("persons are unique", [n for n, c in Counter(p["nin"] for p in persons).items() if c > 1])

    by_nin = {p["nin"]: p for p in persons}
    r.check("next of kin are persons of the country",
            [(p["nin"], k) for p in persons for k in ("mother", "father", "spouse")
             if p[k] is not None and p[k] not in by_nin])
    r.check("spouses are each other's",
            [p["nin"] for p in persons if p["spouse"] and by_nin.get(p["spouse"], {}).get("spouse") != p["nin"]])
    r.check("parents are older than their children",
            [p["nin"] for p in persons for k in ("mother", "father")
             if p[k] in by_nin and by_nin[p[k]]["birth_date"] >= p["birth_date"]])
    r.check("parents live with their children",
            [p["nin"] for p in persons for k in ("mother", "father")
             if p[k] in by_nin and by_nin[p[k]]["address"] != p["address"]])

    r.check("every organisasjonsnummer has a valid mod-11 check digit",
            [o["orgnr"] for o in organisations if not valid_orgnr(o["orgnr"])])
    r.check("organisasjonsnummer begin with 3 (outside the ranges Brønnøysund assigns)",
            [o["orgnr"] for o in organisations if not o["orgnr"].startswith("3")])
    r.check("organisations are unique",
            [n for n, c in Counter(o["orgnr"] for o in organisations).items() if c > 1])
    orgnrs = {o["orgnr"] for o in organisations}
    r.check("parent organisations exist",
            [o["orgnr"] for o in organisations if o["parent_orgnr"] and o["parent_orgnr"] not in orgnrs])
    r.check("each organisation has one signing and one encryption certificate",
            [o["orgnr"] for o in organisations
             if sorted(c["usage"] for c in o["certificates"]) != ["encryption", "signing"]])
    r.check("certificates name their organisation",
            [o["orgnr"] for o in organisations for c in o["certificates"]
             if f"organizationIdentifier=NTRNO-{o['orgnr']}" not in c["subject"]])
    r.check("certificate serials are unique",
            [s for s, c in Counter(c["serial"] for o in organisations for c in o["certificates"]).items() if c > 1])

    her_ids = Counter(p["her_id"] for p in parties)
    r.check("HER-ids are unique", [h for h, c in her_ids.items() if c > 1])
    r.check("HER-ids are positive numbers", [h for h in her_ids if not h.isdigit() or int(h) <= 0])
    r.check("parties belong to organisations of the export",
            [p["her_id"] for p in parties if p["orgnr"] not in orgnrs])
    r.check("parent parties exist", [p["her_id"] for p in parties if p["parent"] and p["parent"] not in her_ids])
    r.check("parties are Organization, Department, Service or Person",
            [p["her_id"] for p in parties if p["kind"] not in {"Organization", "Department", "Service", "Person"}])
    r.check("person parties carry an HPR-nummer and others do not",
            [p["her_id"] for p in parties if (p["kind"] == "Person") != (p["hpr"] is not None)])
    def receives_apprec_1_0(party):
        return any(c["message_type"] == "APPREC" and c["role"] == "receiver"
                   and "1.0" in c["versions"].split() for c in party["cpp"])
    r.check("every party receives AppRec 1.0",
            [p["her_id"] for p in parties if not receives_apprec_1_0(p)])
    r.check("CPP versions are major.minor, ascending",
            [p["her_id"] for p in parties for c in p["cpp"]
             if not all(v.count(".") == 1 and all(x.isdigit() for x in v.split(".")) for v in c["versions"].split())
             or [tuple(map(int, v.split("."))) for v in c["versions"].split()]
             != sorted(tuple(map(int, v.split("."))) for v in c["versions"].split())])

    reachable_gps = {p["hpr"] for p in parties if p["kind"] == "Person"}
    r.check("every person has a GP", [p["nin"] for p in persons if p["gp_hpr"] is None])
    r.check("every GP is reachable as a communication party",
            sorted({p["gp_hpr"] for p in persons if p["gp_hpr"] and p["gp_hpr"] not in reachable_gps}))

    print(f"{r.passed} passed, {r.failed} failed "
          f"({len(persons)} persons, {len(organisations)} organisations, {len(parties)} parties)")
    return 1 if r.failed else 0


def self_test():
    """The checker itself, on numbers worked out by hand."""
    assert decode_nin("01010112345") == "wrong check digits"
    assert not valid_orgnr("123456789")
    assert valid_orgnr("974760673")  # Brønnøysundregistrene's own published number
    # 15 March 2001 as a synthetic fødselsnummer: day 15, month 03+80, individual 500.
    digits = "158301500"
    k1 = mod11(digits, FNR_K1)
    k2 = mod11(digits + str(k1), FNR_K2)
    assert decode_nin(f"{digits}{k1}{k2}") == ("fnr", "2001-03-15", "female", True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    self_test()
    sys.exit(main(sys.argv[1]))
