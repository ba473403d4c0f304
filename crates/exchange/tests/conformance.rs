//! What the exchange writes, checked by software the project did not write: sealed payloads are
//! opened and verified by the `openssl cms` command, payloads that command seals are read and
//! opened by the exchange, and the MsgHead and AppRec documents the exchange writes validate with
//! `xmllint --schema` against the official KITH schemas. The commands must be installed (Debian:
//! openssl, libxml2-utils); the tests fail, saying so, when they are not.

use std::{path::Path, process::Command};

use chrono::Utc;
use helsenett_core::HerId;
use helsenett_exchange::{
    apprec::{AppRecError, AppRecStatus, AppRecVersion, Named, NewAppRec},
    cms,
    envelope::Outgoing,
};
use helsenett_register::model::Version;
use helsenett_synth::pki::{KeyPurpose, Subject, TestCa};
use openssl::{pkey::PKey, x509::X509};

const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../samsvar/schemas");

fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?} ({e}): install openssl and libxml2-utils",
            command.get_program()
        )
    });
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

struct Party {
    cert: X509,
    key: PKey<openssl::pkey::Private>,
}

/// A synthetic CA and two parties with signing and encryption certificates from it.
fn pki(dir: &Path) -> (Party, Party, Party, Party) {
    let today = Utc::now().date_naive();
    let ca = TestCa::new(7, today).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.certificate().to_pem().unwrap()).unwrap();
    let issue = |n: u64, purpose| {
        let key = helsenett_synth::pki::seeded_rsa(n, &format!("{purpose:?}")).unwrap();
        let orgnr = format!("30000{n:04}");
        let name = format!("SYNTETISK PART {n}");
        let subject = Subject {
            name: &name,
            orgnr: &orgnr,
        };
        let serial = n * 10 + u64::from(purpose == KeyPurpose::Encryption);
        let cert = ca.issue(&subject, purpose, &key, serial, today).unwrap();
        Party { cert, key }
    };
    (
        issue(1, KeyPurpose::Signing),
        issue(1, KeyPurpose::Encryption),
        issue(2, KeyPurpose::Signing),
        issue(2, KeyPurpose::Encryption),
    )
}

fn write_pem(dir: &Path, name: &str, party: &Party) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, party.cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key, party.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    )
}

#[test]
fn openssl_opens_what_the_exchange_seals_and_the_exchange_opens_what_openssl_seals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a_sign, _a_enc, b_sign, b_enc) = pki(d);
    let (b_enc_crt, b_enc_key) = write_pem(d, "b-enc", &b_enc);
    let (b_sign_crt, b_sign_key) = write_pem(d, "b-sign", &b_sign);
    let ca = d.join("ca.pem");
    let payload = "<Dialogmelding>SYNTETISK æøå</Dialogmelding>".as_bytes();

    // Sealed here, opened by openssl: decrypt as B, then verify A's signature against the CA.
    let sealed = cms::seal(
        payload,
        (&a_sign.cert, &a_sign.key),
        std::slice::from_ref(&b_enc.cert),
    )
    .unwrap();
    std::fs::write(d.join("sealed.der"), &sealed).unwrap();
    let (ok, out) = run(Command::new("openssl")
        .args(["cms", "-decrypt", "-inform", "DER", "-in"])
        .arg(d.join("sealed.der"))
        .args([
            "-recip", &b_enc_crt, "-inkey", &b_enc_key, "-binary", "-out",
        ])
        .arg(d.join("signed.der")));
    assert!(ok, "openssl cms -decrypt: {out}");
    let (ok, out) = run(Command::new("openssl")
        .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
        .arg(d.join("sealed.der")));
    assert!(
        ok && out.contains("aes-256-cbc"),
        "the content is not AES-256-CBC: {out}"
    );
    let (ok, out) = run(Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(d.join("signed.der"))
        .arg("-CAfile")
        .arg(&ca)
        .args(["-purpose", "any", "-binary", "-out"])
        .arg(d.join("payload.out")));
    assert!(ok, "openssl cms -verify: {out}");
    assert_eq!(std::fs::read(d.join("payload.out")).unwrap(), payload);

    // Sealed by openssl (signed by B, encrypted for B's encryption certificate), opened here.
    std::fs::write(d.join("in.xml"), payload).unwrap();
    let (ok, out) = run(Command::new("openssl")
        .args([
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-in",
        ])
        .arg(d.join("in.xml"))
        .args(["-signer", &b_sign_crt, "-inkey", &b_sign_key, "-out"])
        .arg(d.join("osigned.der")));
    assert!(ok, "openssl cms -sign: {out}");
    let (ok, out) = run(Command::new("openssl")
        .args([
            "cms", "-encrypt", "-binary", "-aes256", "-inform", "DER", "-outform", "DER", "-in",
        ])
        .arg(d.join("osigned.der"))
        .arg("-out")
        .arg(d.join("osealed.der"))
        .arg(&b_enc_crt));
    assert!(ok, "openssl cms -encrypt: {out}");
    let theirs = std::fs::read(d.join("osealed.der")).unwrap();
    let recipients = cms::recipients(&theirs).expect("the hub reads openssl's recipients");
    assert!(cms::addressed_to(&recipients, &b_enc.cert));
    assert!(!cms::addressed_to(&recipients, &a_sign.cert));
    let mut anchors = openssl::x509::store::X509StoreBuilder::new().unwrap();
    anchors
        .add_cert(X509::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .unwrap();
    let anchors = anchors.build();
    let opened = cms::open(&theirs, (&b_enc.cert, &b_enc.key), &b_sign.cert, &anchors).unwrap();
    assert_eq!(opened, payload);
    assert!(
        cms::open(&theirs, (&b_enc.cert, &b_enc.key), &a_sign.cert, &anchors).is_err(),
        "the wrong signer verified"
    );

    // AES-128 is not what the network agreed on: the hub refuses it.
    let (ok, out) = run(Command::new("openssl")
        .args([
            "cms", "-encrypt", "-binary", "-aes128", "-inform", "DER", "-outform", "DER", "-in",
        ])
        .arg(d.join("osigned.der"))
        .arg("-out")
        .arg(d.join("weak.der"))
        .arg(&b_enc_crt));
    assert!(ok, "{out}");
    let weak = cms::recipients(&std::fs::read(d.join("weak.der")).unwrap()).unwrap_err();
    assert!(weak.contains("AES-256-CBC"), "{weak}");
}

fn named(her_id: u32, name: &str, department: Option<(u32, &str)>) -> Named {
    Named {
        institution: (HerId::new(her_id).unwrap(), name.to_owned()),
        department: department.map(|(h, n)| (HerId::new(h).unwrap(), n.to_owned())),
    }
}

fn xmllint(dir: &Path, name: &str, document: &str, schema: &str) {
    let file = dir.join(name);
    std::fs::write(&file, document).unwrap();
    let (ok, out) = run(Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(Path::new(SCHEMAS).join(schema))
        .arg(&file));
    assert!(
        ok,
        "{name} does not validate against {schema}: {out}\n{document}"
    );
    assert!(
        helsenett_samsvar::validate(document.as_bytes()).is_valid(),
        "samsvar disagrees on {name}"
    );
}

#[test]
fn the_documents_the_exchange_writes_validate_with_xmllint() {
    let dir = tempfile::tempdir().unwrap();
    let sender = named(
        800_000_001,
        "SYNTETISK Legekontor & Co <test>",
        Some((800_000_002, "Lege \"Én\"")),
    );
    let receiver = named(800_000_010, "SYNTETISK Sykehus", None);
    let copies = [named(800_000_020, "SYNTETISK Kopimottaker", None)];
    let msghead = Outgoing {
        message_type: "DIALOG_HELSEFAGLIG",
        version: Version { major: 1, minor: 1 },
        msg_id: "a5e9665e-4982-4521-a50f-4b121fc25094",
        gen_date: Utc::now(),
        sender: &sender,
        receiver: &receiver,
        copies: &copies,
        sealed: b"\x30\x80not really CMS, schema-wise any base64",
    }
    .to_xml();
    xmllint(dir.path(), "msghead.xml", &msghead, "MsgHead-v1_2.xsd");

    for (version, schema) in [
        (AppRecVersion::V1_0, "apprec-v1.0.xsd"),
        (AppRecVersion::V1_1, "apprec-v1.1.xsd"),
    ] {
        for status in [
            AppRecStatus::Ok,
            AppRecStatus::Rejected,
            AppRecStatus::OkErrorInMessagePart,
        ] {
            let errors = match status {
                AppRecStatus::Ok => vec![],
                _ => vec![AppRecError::new(
                    "E35",
                    "Pasienten <finnes> ikke & så videre",
                )],
            };
            let apprec = NewAppRec {
                version,
                id: "9ebaaf44-7317-41b7-892a-2a568acd5111",
                gen_date: Utc::now(),
                software: "helsenett Meldingstjener",
                sender: &receiver,
                receiver: &sender,
                status,
                errors: &errors,
                original_type: "DIALOG_HELSEFAGLIG",
                original_issued: "2025-08-21T13:20:48+02:00",
                original_id: "a5e9665e-4982-4521-a50f-4b121fc25094",
            }
            .to_xml();
            xmllint(
                dir.path(),
                &format!("apprec-{schema}-{status:?}.xml"),
                &apprec,
                schema,
            );
        }
    }
}
