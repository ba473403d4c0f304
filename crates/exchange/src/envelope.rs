//! The MsgHead v1.2 envelope: what the hub reads from a business document to route it. The
//! payload in `Document/RefDoc/Content` is the sender's business; when it is sealed (a CMS blob
//! in a KITH Base64Container) the hub never opens it.

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use helsenett_core::{Fodselsnummer, HerId};
use helsenett_register::model::Version;

use quick_xml::escape::escape;

use crate::{
    apprec::Named,
    error::{Refusal, at},
    xml::Element,
};

pub const MSGHEAD_NS: &str = "http://www.kith.no/xmlstds/msghead/2006-05-24";
pub const BASE64_NS: &str = "http://www.kith.no/xmlstds/base64container";
pub const MIG_VERSION: &str = "v1.2 2006-05-24";
/// Kodeverk 9051's OID: an identifier that is a HER-id.
const HER_OID: &str = "2.16.578.1.12.4.1.1.9051";
/// The MIME type of a sealed payload (RFC 8551).
pub const SEALED_MIME: &str = "application/pkcs7-mime";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MsgInfo/Type/@V`: the process (DIALOG_HELSEFAGLIG, HENVISNING, ...).
    pub message_type: String,
    /// The version of the business standard, as the sender declares it in the first
    /// document's `ContentType/@V`: the hub cannot read it from the sealed payload.
    pub version: Version,
    pub gen_date: String,
    pub gen_at: DateTime<Utc>,
    pub msg_id: String,
    pub sender: HerId,
    /// The receiver first, then copy receivers that are organisations.
    pub receivers: Vec<HerId>,
    /// Sealed payloads (CMS DER), one per document with content.
    pub sealed: Vec<Vec<u8>>,
}

impl Envelope {
    /// Reads a MsgHead whose schema has been checked.
    pub fn read(root: &Element) -> Result<Self, Vec<Refusal>> {
        let mut faults = Vec::new();
        let info = root.child("MsgInfo");
        let Some(info) = info else {
            return Err(vec![missing(&["MsgHead", "MsgInfo"])]);
        };
        let message_type = info.code_of("Type").unwrap_or_default().to_owned();
        if message_type.is_empty() {
            faults.push(Refusal::format(
                "T02",
                "/MsgHead/MsgInfo/Type/@V",
                "the message type is missing",
            ));
        }
        let msg_id = info.text_of("MsgId").unwrap_or_default().to_owned();
        if msg_id.is_empty() {
            faults.push(Refusal::format(
                "E10",
                "/MsgHead/MsgInfo/MsgId",
                "MsgId is missing",
            ));
        } else if msg_id.len() > 100 {
            faults.push(Refusal::format(
                "E10",
                "/MsgHead/MsgInfo/MsgId",
                "MsgId is longer than 100 characters",
            ));
        }
        let gen_date = info.text_of("GenDate").unwrap_or_default().to_owned();
        let gen_at = parse_date_time(&gen_date);
        if gen_at.is_none() {
            faults.push(Refusal::format(
                "T02",
                "/MsgHead/MsgInfo/GenDate",
                format!("{gen_date:?} is not an xs:dateTime"),
            ));
        }
        let sender = organisation_her_id(info, "Sender", &mut faults);
        let mut receivers = Vec::new();
        receivers.extend(organisation_her_id(info, "Receiver", &mut faults));
        for (i, other) in info.children_named("OtherReceiver").enumerate() {
            if let Some(organisation) = other.child("Organisation") {
                let path = format!("/MsgHead/MsgInfo/OtherReceiver[{}]/Organisation", i + 1);
                match innermost_her_id(organisation) {
                    Some(her_id) if !receivers.contains(&her_id) => receivers.push(her_id),
                    Some(_) => {}
                    None => faults.push(Refusal::format("E21", path, "no HER-id")),
                }
            }
        }
        if let Some(patient) = info.child("Patient") {
            check_patient(patient, &mut faults);
        }
        let (version, sealed) = read_documents(root, &mut faults);
        match (faults.is_empty(), sender, gen_at, version) {
            (true, Some(sender), Some(gen_at), Some(version)) => Ok(Envelope {
                message_type,
                version,
                gen_date,
                gen_at,
                msg_id,
                sender,
                receivers,
                sealed,
            }),
            _ => Err(faults),
        }
    }
}

fn missing(path: &[&str]) -> Refusal {
    Refusal::format(
        "T02",
        at(path),
        format!("{} is missing", path.last().unwrap_or(&"")),
    )
}

/// The HER-id of `MsgInfo/{role}/Organisation`: the innermost organisation that has one (a
/// department within a hospital is addressed by the department's HER-id).
fn organisation_her_id(info: &Element, role: &str, faults: &mut Vec<Refusal>) -> Option<HerId> {
    let Some(organisation) = info.at(&[role, "Organisation"]) else {
        faults.push(missing(&["MsgHead", "MsgInfo", role, "Organisation"]));
        return None;
    };
    let her_id = innermost_her_id(organisation);
    if her_id.is_none() {
        let code = if role == "Receiver" { "E21" } else { "T02" };
        faults.push(Refusal::format(
            code,
            at(&["MsgHead", "MsgInfo", role, "Organisation"]),
            "no organisation ident of type HER with a valid HER-id",
        ));
    }
    her_id
}

fn innermost_her_id(organisation: &Element) -> Option<HerId> {
    let inner = organisation
        .child("Organisation")
        .and_then(innermost_her_id);
    inner.or_else(|| {
        organisation
            .children_named("Ident")
            .find(|ident| ident.code_of("TypeId") == Some("HER"))
            .and_then(|ident| ident.text_of("Id"))
            .and_then(|id| id.parse().ok())
    })
}

/// A patient's fødselsnummer or D-nummer, when given, must be one.
fn check_patient(patient: &Element, faults: &mut Vec<Refusal>) {
    for (i, ident) in patient.children_named("Ident").enumerate() {
        if matches!(ident.code_of("TypeId"), Some("FNR" | "DNR")) {
            let id = ident.text_of("Id").unwrap_or_default();
            if let Err(e) = id.parse::<Fodselsnummer>() {
                // The number itself is not repeated: it is a person's identity.
                faults.push(Refusal::format(
                    "E31",
                    format!("/MsgHead/MsgInfo/Patient/Ident[{}]/Id", i + 1),
                    format!("not a valid fødselsnummer or D-nummer: {e}"),
                ));
            }
        }
    }
}

/// The declared version of the business standard, and the sealed payloads. Every document's
/// content must be sealed: a payload in the clear would be readable by the hub and anyone who
/// can read its store.
fn read_documents(root: &Element, faults: &mut Vec<Refusal>) -> (Option<Version>, Vec<Vec<u8>>) {
    let mut sealed = Vec::new();
    let version = match root
        .at(&["Document", "ContentType"])
        .and_then(|c| c.attr("V"))
    {
        Some(v) => match v.trim().parse::<Version>() {
            Ok(version) => Some(version),
            Err(e) => {
                faults.push(Refusal::format(
                    "T10",
                    "/MsgHead/Document[1]/ContentType/@V",
                    e,
                ));
                None
            }
        },
        None => {
            faults.push(Refusal::format(
                "T10",
                "/MsgHead/Document[1]/ContentType/@V",
                "the version of the business document is not declared (ContentType V=\"major.minor\"): \
                 the hub cannot read it from a sealed payload",
            ));
            None
        }
    };
    for (i, document) in root.children_named("Document").enumerate() {
        let path = format!("/MsgHead/Document[{}]/RefDoc", i + 1);
        let Some(refdoc) = document.child("RefDoc") else {
            continue;
        };
        if refdoc.child("FileReference").is_some() {
            faults.push(Refusal::format(
                "T10",
                format!("{path}/FileReference"),
                "file references are not supported: the payload travels in Content",
            ));
        }
        let Some(content) = refdoc.child("Content") else {
            continue;
        };
        let mime = refdoc.text_of("MimeType").unwrap_or_default();
        match content.children.as_slice() {
            [payload]
                if payload.ns == BASE64_NS
                    && payload.name == "Base64Container"
                    && mime.starts_with(SEALED_MIME) =>
            {
                let text: String = payload.text.split_ascii_whitespace().collect();
                match base64::engine::general_purpose::STANDARD.decode(text) {
                    Ok(der) => sealed.push(der),
                    Err(e) => faults.push(Refusal::format(
                        "T02",
                        format!("{path}/Content/Base64Container"),
                        format!("not base64: {e}"),
                    )),
                }
            }
            _ => faults.push(Refusal::format(
                "S99",
                format!("{path}/Content"),
                format!(
                    "the payload is not sealed: Content must hold one Base64Container with CMS \
                     (MimeType {SEALED_MIME}), signed by the sender and encrypted for the receiver"
                ),
            )),
        }
    }
    (version, sealed)
}

/// An xs:dateTime: with an offset, that instant; without, read as UTC (NHN's own examples omit
/// the zone; the instant only orders mailboxes).
pub fn parse_date_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|naive| naive.and_utc())
        })
}

/// A MsgHead a sender writes around a sealed payload: routing in the clear, the rest sealed.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub message_type: &'a str,
    pub version: Version,
    pub msg_id: &'a str,
    pub gen_date: DateTime<Utc>,
    pub sender: &'a Named,
    pub receiver: &'a Named,
    /// Copy receivers.
    pub copies: &'a [Named],
    /// The sealed payload (CMS DER), from [`crate::cms::seal`].
    pub sealed: &'a [u8],
}

impl Outgoing<'_> {
    /// The MsgHead document, UTF-8.
    pub fn to_xml(&self) -> String {
        let gen_date = self.gen_date.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut x = String::with_capacity(1_024 + self.sealed.len() * 4 / 3);
        x.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        x.push_str(&format!(
            r#"<MsgHead xmlns="{MSGHEAD_NS}"><MsgInfo><Type V="{}"/><MIGversion>{MIG_VERSION}</MIGversion><GenDate>{gen_date}</GenDate><MsgId>{}</MsgId>"#,
            escape(self.message_type),
            escape(self.msg_id),
        ));
        x.push_str("<Sender>");
        organisation(&mut x, self.sender);
        x.push_str("</Sender><Receiver>");
        organisation(&mut x, self.receiver);
        x.push_str("</Receiver>");
        for copy in self.copies {
            x.push_str(r#"<OtherReceiver><RoleReceiver V="KI" DN="Kopimottaker"/>"#);
            organisation(&mut x, copy);
            x.push_str("</OtherReceiver>");
        }
        x.push_str(&format!(
            r#"</MsgInfo><Document><ContentType V="{}" DN="{} v{}"/><RefDoc><IssueDate V="{gen_date}"/><MsgType V="XML" DN="XML-instans"/><MimeType>{SEALED_MIME}</MimeType><Content><Base64Container xmlns="{BASE64_NS}">"#,
            self.version,
            escape(self.message_type),
            self.version,
        ));
        x.push_str(&base64::engine::general_purpose::STANDARD.encode(self.sealed));
        x.push_str("</Base64Container></Content></RefDoc></Document></MsgHead>");
        x
    }
}

/// An `Organisation` element: the institution, and the unit inside it.
fn organisation(x: &mut String, named: &Named) {
    let unit = |x: &mut String, (her_id, name): &(HerId, String)| {
        x.push_str(&format!(
            r#"<OrganisationName>{}</OrganisationName><Ident><Id>{her_id}</Id><TypeId V="HER" S="{HER_OID}" DN="HER-id"/></Ident>"#,
            escape(name)
        ));
    };
    x.push_str("<Organisation>");
    unit(x, &named.institution);
    if let Some(department) = &named.department {
        x.push_str("<Organisation>");
        unit(x, department);
        x.push_str("</Organisation>");
    }
    x.push_str("</Organisation>");
}
