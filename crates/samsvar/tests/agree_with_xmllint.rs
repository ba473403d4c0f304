//! Every document in `tests/corpus` gets the same verdict from `samsvar::validate` as from
//! `xmllint --schema` (libxml2), the reference validator of the KITH standards.
//!
//! xmllint validates against one schema, and a strict wildcard (MsgHead's `RefDoc/Content`) only
//! finds declarations that schema imports: `MsgHead-v1_2.xsd` alone refuses NHN's own example,
//! whose content is a Dialogmelding. So xmllint is given a wrapper schema that imports every
//! embedded schema, which is what samsvar sees: all of them at once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use helsenett_samsvar::{Report, Standard, validate};

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A schema importing each file in `schemas/` by its target namespace.
fn wrapper_schema() -> PathBuf {
    let mut imports = String::new();
    let mut schemas: Vec<PathBuf> = std::fs::read_dir(crate_dir().join("schemas"))
        .expect("schemas/ is readable")
        .map(|entry| entry.expect("schemas/ is readable").path())
        .collect();
    schemas.sort();
    for schema in schemas {
        let text = String::from_utf8_lossy(&std::fs::read(&schema).expect("a schema is readable"))
            .into_owned();
        let target = text
            .split("targetNamespace=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next());
        let target =
            target.unwrap_or_else(|| panic!("{} has no targetNamespace", schema.display()));
        let location = schema.to_str().expect("a UTF-8 path").replace(' ', "%20");
        writeln!(
            imports,
            r#"  <import namespace="{target}" schemaLocation="{location}"/>"#
        )
        .unwrap();
    }
    let wrapper = Path::new(env!("CARGO_TARGET_TMPDIR")).join("samsvar-all-schemas.xsd");
    let text = format!("<schema xmlns=\"http://www.w3.org/2001/XMLSchema\">\n{imports}</schema>\n");
    std::fs::write(&wrapper, text).expect("the wrapper schema is written");
    wrapper
}

/// xmllint's verdict: exit code 0 is valid, 3 invalid and 1 not well-formed; anything else means
/// the wrapper schema itself failed.
fn xmllint_valid(schema: &Path, document: &Path) -> bool {
    let output = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(schema)
        .arg(document)
        .output()
        .expect("xmllint runs");
    match output.status.code() {
        Some(0) => true,
        Some(1 | 3) => false,
        _ => panic!(
            "xmllint failed on {}: {}",
            document.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn corpus() -> Vec<(String, Vec<u8>, PathBuf)> {
    let mut files: Vec<_> = std::fs::read_dir(crate_dir().join("tests/corpus"))
        .expect("tests/corpus is readable")
        .map(|entry| {
            let path = entry.expect("tests/corpus is readable").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 name")
                .to_string();
            (
                name,
                std::fs::read(&path).expect("a corpus file is readable"),
                path,
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn samsvar_and_xmllint_agree_on_every_corpus_document() {
    if Command::new("xmllint").arg("--version").output().is_err() {
        panic!("xmllint is not on PATH: install it (Debian/Ubuntu: apt-get install libxml2-utils)");
    }
    let schema = wrapper_schema();
    let corpus = corpus();
    assert!(
        corpus.len() >= 40,
        "the corpus has only {} documents",
        corpus.len()
    );
    let mut disagreements = Vec::new();
    for (name, bytes, path) in &corpus {
        let xmllint = xmllint_valid(&schema, path);
        let report = validate(bytes);
        // The name says what the document is meant to be; xmllint checks the corpus itself.
        let meant = name.starts_with("valid-");
        if xmllint != report.is_valid() || xmllint != meant {
            let first = report
                .problems
                .first()
                .map(|p| format!("{}:{} {}", p.path, p.line, p.message));
            disagreements.push(format!(
                "{name:<55} {xmllint:<8} {:<8} {}",
                report.is_valid(),
                first.unwrap_or_default()
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "verdicts differ (valid?):\n{:<55} {:<8} {:<8} first samsvar problem\n{}",
        "document",
        "xmllint",
        "samsvar",
        disagreements.join("\n")
    );
}

fn report(name: &str) -> Report {
    validate(
        &std::fs::read(crate_dir().join("tests/corpus").join(name))
            .expect("a corpus file is readable"),
    )
}

#[test]
fn the_first_problem_points_at_the_fault() {
    for (name, path, words) in [
        (
            "invalid-msghead-migversion.xml",
            "/MsgHead/MsgInfo/MIGversion",
            "fixed value 'v1.2 2006-05-24'",
        ),
        (
            "invalid-msghead-missing-msgid.xml",
            "/MsgHead/MsgInfo",
            "MsgId",
        ),
        (
            "invalid-msghead-missing-receiver.xml",
            "/MsgHead/MsgInfo",
            "Receiver",
        ),
        (
            "invalid-msghead-out-of-order.xml",
            "/MsgHead/MsgInfo",
            "MIGversion is missing before GenDate",
        ),
        (
            "invalid-msghead-unknown-element.xml",
            "/MsgHead/MsgInfo/Priority",
            "not expected",
        ),
        (
            "invalid-msghead-wrong-namespace.xml",
            "/MsgHead/MsgInfo/MsgId",
            "2006-03-01",
        ),
        (
            "invalid-msghead-bad-gendate.xml",
            "/MsgHead/MsgInfo/GenDate",
            "xs:dateTime",
        ),
        (
            "invalid-msghead-bad-dateofbirth.xml",
            "/MsgHead/MsgInfo/Patient/DateOfBirth",
            "'1970-02-30'",
        ),
        (
            "invalid-msghead-bad-oid.xml",
            "/MsgHead/MsgInfo/Patient/Ident/TypeId/@S",
            "pattern",
        ),
        (
            "invalid-msghead-signature-no-algorithm.xml",
            "/MsgHead/Signature/SignedInfo/SignatureMethod/@Algorithm",
            "required",
        ),
        (
            "invalid-msghead-text-in-element-only.xml",
            "/MsgHead/MsgInfo/Sender",
            "text",
        ),
        (
            "invalid-msghead-bad-base64.xml",
            "/MsgHead/Document[2]/RefDoc/Content/Base64Container",
            "base64Binary",
        ),
        (
            "invalid-msghead-strict-unknown-namespace.xml",
            "/MsgHead/Document[2]/RefDoc/Content/Base64Container",
            "known namespaces",
        ),
        (
            "invalid-msghead-dialog-payload.xml",
            "/MsgHead/Document[1]/RefDoc/Content/Dialogmelding/Notat",
            "TemaKodet",
        ),
        (
            "invalid-msghead-root-namespace.xml",
            "/MsgHead",
            "http://www.kith.no/xmlstds/msghead/2006-05-24",
        ),
        ("invalid-apprec10-missing-status.xml", "/AppRec", "Status"),
        (
            "invalid-msghead-not-well-formed.xml",
            "/",
            "not well-formed",
        ),
    ] {
        let report = report(name);
        let first = report
            .problems
            .first()
            .unwrap_or_else(|| panic!("{name} has no problem"));
        assert!(
            first.path == path && first.message.contains(words),
            "{name}: {first:?}"
        );
    }
    let migversion = report("invalid-msghead-migversion.xml");
    assert_eq!(migversion.problems[0].line, 6);
    assert_eq!(
        report("invalid-msghead-not-well-formed.xml").problems.len(),
        1
    );
    let both = report("invalid-msghead-two-faults.xml");
    let paths: Vec<&str> = both.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/MsgHead/MsgInfo/Patient/DateOfBirth",
            "/MsgHead/Document[2]/RefDoc/MimeType/@type"
        ]
    );
}

#[test]
fn the_standard_is_named_by_the_root() {
    for (name, _, _) in corpus() {
        let expected = match name.split('-').nth(1) {
            Some("msghead") => Standard::MsgHead12,
            Some("apprec10") => Standard::AppRec10,
            Some("apprec11") => Standard::AppRec11,
            Some("dialog10") => Standard::Dialogmelding10,
            Some("dialog11") => Standard::Dialogmelding11,
            _ => panic!("{name} does not name its standard"),
        };
        let standard = report(&name).standard;
        let unread = [
            "invalid-msghead-not-well-formed.xml",
            "invalid-msghead-undefined-entity.xml",
            "invalid-msghead-root-namespace.xml",
        ];
        assert_eq!(
            standard,
            (!unread.contains(&name.as_str())).then_some(expected),
            "{name}"
        );
    }
    assert_eq!(Standard::MsgHead12.to_string(), "MsgHead v1.2");
}
