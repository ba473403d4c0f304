//! Samsvar ("conformity"): schema validation of the KITH health-message standards the network
//! carries (MsgHead, AppRec, Dialogmelding), driven by the official XSD files.
//!
//! The schemas are embedded and compiled once, at first use, by a small XSD interpreter that
//! understands exactly the constructs they use. Validation follows what `xmllint --schema`
//! (libxml2) decides, with every schema visible at once: content under MsgHead's
//! `RefDoc/Content`, a strict wildcard, is validated by the schema of its own namespace.
//!
//! **Architecture Invariant:** [`validate`] is total. Whatever the bytes, it returns a [`Report`]
//! and never panics; its recursion is bounded by refusing elements nested more than 256 levels
//! below the root, as libxml2 does.

mod content;
mod instance;
mod lexical;
mod model;
mod pattern;
mod schema;
mod types;
mod xml;

use std::fmt;
use std::sync::LazyLock;

use model::SchemaSet;
use schema::SchemaFile;

/// Elements nested more levels than this below the root are refused rather than validated.
const MAX_DEPTH: usize = 256;

/// A message standard, recognized by the namespace and name of the document's root element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Standard {
    MsgHead12,
    AppRec10,
    AppRec11,
    Dialogmelding10,
    Dialogmelding11,
}

impl Standard {
    const ALL: [Standard; 5] = [
        Standard::MsgHead12,
        Standard::AppRec10,
        Standard::AppRec11,
        Standard::Dialogmelding10,
        Standard::Dialogmelding11,
    ];

    /// The root element's namespace, its local name and the schema that declares it.
    fn root(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Standard::MsgHead12 => (
                "http://www.kith.no/xmlstds/msghead/2006-05-24",
                "MsgHead",
                "MsgHead-v1_2.xsd",
            ),
            Standard::AppRec10 => (
                "http://www.kith.no/xmlstds/apprec/2004-11-21",
                "AppRec",
                "apprec-v1.0.xsd",
            ),
            Standard::AppRec11 => (
                "http://www.kith.no/xmlstds/apprec/2012-02-15",
                "AppRec",
                "apprec-v1.1.xsd",
            ),
            Standard::Dialogmelding10 => (
                "http://www.kith.no/xmlstds/dialog/2006-10-11",
                "Dialogmelding",
                "dialogmelding-v1.0.xsd",
            ),
            Standard::Dialogmelding11 => (
                "http://www.kith.no/xmlstds/dialog/2013-01-23",
                "Dialogmelding",
                "dialogmelding-v1.1.xsd",
            ),
        }
    }
}

impl fmt::Display for Standard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Standard::MsgHead12 => "MsgHead v1.2",
            Standard::AppRec10 => "AppRec v1.0",
            Standard::AppRec11 => "AppRec v1.1",
            Standard::Dialogmelding10 => "Dialogmelding v1.0",
            Standard::Dialogmelding11 => "Dialogmelding v1.1",
        })
    }
}

/// One way a document departs from its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: local names from the root, a position where siblings share a name, and `@name`
    /// for an attribute, e.g. `/MsgHead/MsgInfo/Sender/Organisation/Ident[1]/TypeId/@V`.
    /// `/` when the document could not be read at all.
    pub path: String,
    /// The line the element starts on (1-based).
    pub line: u32,
    /// What is wrong, naming the elements, types and values involved.
    pub message: String,
}

/// The outcome of validating one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The standard the root element names, if it names one.
    pub standard: Option<Standard>,
    /// Every problem found, in document order within each element. A document that is not
    /// well-formed has exactly one.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether the document conforms: no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A schema file embedded from `schemas/`, with the prefix its problems name it by.
macro_rules! schema_file {
    ($name:literal, $prefix:literal) => {
        SchemaFile {
            name: $name,
            prefix: $prefix,
            bytes: include_bytes!(concat!("../schemas/", $name)),
        }
    };
}

static FILES: [SchemaFile; 9] = [
    schema_file!("MsgHead-v1_2.xsd", "mh"),
    schema_file!("apprec-v1.0.xsd", "ar"),
    schema_file!("apprec-v1.1.xsd", "ar"),
    schema_file!("dialogmelding-v1.0.xsd", "dia"),
    schema_file!("dialogmelding-v1.1.xsd", "dia"),
    schema_file!("felleskomponent1.xsd", "fk1"),
    schema_file!("kith-base64.xsd", "b64"),
    schema_file!("kith.xsd", "kith"),
    schema_file!("xmldsig-core-schema.xsd", "ds"),
];

/// Compiled at first use. The schemas are constants, so an error here is a bug the unit tests
/// catch; `validate` reports it rather than panicking.
static SCHEMAS: LazyLock<Result<SchemaSet, String>> =
    LazyLock::new(|| schema::compile(&FILES, &Standard::ALL.map(|s| s.root().2)));

/// Validates `document` against the schema of the standard its root element names.
pub fn validate(document: &[u8]) -> Report {
    let fail = |standard, path: &str, line, message| Report {
        standard,
        problems: vec![Problem {
            path: path.into(),
            line,
            message,
        }],
    };
    let set = match &*SCHEMAS {
        Ok(set) => set,
        Err(e) => {
            return fail(
                None,
                "/",
                0,
                format!("the embedded schemas do not compile: {e}"),
            );
        }
    };
    let doc = match xml::Document::parse(document, MAX_DEPTH) {
        Ok(doc) => doc,
        Err(e) => return fail(None, "/", e.line, e.message),
    };
    let root = &doc.elements[0];
    let (ns, local) = (doc.ns(root.ns), &*root.local);
    let standard = Standard::ALL
        .into_iter()
        .find(|s| s.root().0 == ns && s.root().1 == local);
    let Some(decl) = standard.and_then(|_| set.global_element(ns, local)) else {
        let known: Vec<String> = Standard::ALL
            .iter()
            .map(|s| format!("{s} ({} in {})", s.root().1, s.root().0))
            .collect();
        let message = format!(
            "root element {local} in namespace '{ns}' is not a known message; known: {}",
            known.join(", ")
        );
        return fail(standard, &format!("/{local}"), root.line, message);
    };
    Report {
        standard,
        problems: instance::validate(set, &doc, decl),
    }
}

/// The compiled schemas, for unit tests of the modules that use them.
#[cfg(test)]
fn schema_set() -> &'static SchemaSet {
    SCHEMAS.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_schemas_compile() {
        let set = schema_set();
        assert_eq!(set.target_namespaces().len(), 9);
        for standard in Standard::ALL {
            let (ns, local, _) = standard.root();
            assert!(set.global_element(ns, local).is_some(), "{standard}");
        }
    }

    #[test]
    fn refuses_unknown_roots_naming_the_known_ones() {
        let report = validate(b"<MsgHead xmlns='urn:nope'/>");
        assert_eq!(report.standard, None);
        assert_eq!(report.problems[0].path, "/MsgHead");
        assert!(
            report.problems[0]
                .message
                .contains("http://www.kith.no/xmlstds/msghead/2006-05-24")
        );
        let report = validate(b"not xml");
        assert_eq!((report.problems.len(), report.problems[0].line), (1, 1));
    }
}
