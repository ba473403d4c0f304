//! AppRec, the application receipt (KITH v1.0 2004-11-21 and v1.1 2012-02-15): its status
//! (kodeverk 8220), its error codes (kodeverk 8221), reading one a receiver sent and writing one
//! for a receiver (POST /Messages/{id}/apprec) or for the hub's non-delivery notice.

use chrono::{DateTime, SecondsFormat, Utc};
use helsenett_core::HerId;
use quick_xml::escape::escape;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    error::{Refusal, at},
    xml::Element,
};

pub const NS_V1_0: &str = "http://www.kith.no/xmlstds/apprec/2004-11-21";
pub const NS_V1_1: &str = "http://www.kith.no/xmlstds/apprec/2012-02-15";
/// Kodeverk 8221, "Feil i applikasjonskvittering".
pub const ERROR_OID: &str = "2.16.578.1.12.4.1.1.8221";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppRecVersion {
    V1_0,
    V1_1,
}

impl AppRecVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            Self::V1_0 => NS_V1_0,
            Self::V1_1 => NS_V1_1,
        }
    }

    fn mig_version(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0 2004-11-21",
            Self::V1_1 => "v1.1 2012-02-15",
        }
    }

    /// The version a CPA names ("1.0", "1.1"); anything else has no AppRec schema.
    pub fn from_cpa(major: u16, minor: u16) -> Option<Self> {
        match (major, minor) {
            (1, 0) => Some(Self::V1_0),
            (1, 1) => Some(Self::V1_1),
            _ => None,
        }
    }
}

/// Kodeverk 8220, as the API names its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AppRecStatus {
    #[serde(alias = "1")]
    Ok,
    #[serde(alias = "2")]
    Rejected,
    #[serde(alias = "3")]
    OkErrorInMessagePart,
}

impl AppRecStatus {
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 1,
            Self::Rejected => 2,
            Self::OkErrorInMessagePart => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Ok),
            2 => Some(Self::Rejected),
            3 => Some(Self::OkErrorInMessagePart),
            _ => None,
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Rejected => "Avvist",
            Self::OkErrorInMessagePart => "OK, feil i delmelding",
        }
    }
}

/// Kodeverk 8221: the errors an AppRec may name, with their display names.
pub const ERROR_CODES: &[(&str, &str)] = &[
    ("E10", "Ugyldig meldingsidentifikator"),
    ("E20", "Lege finnes ikke"),
    ("E21", "Mottaker finnes ikke"),
    ("E30", "Pasientens fødselsnummer mangler"),
    ("E31", "Pasientens fødselsnummer er feil"),
    ("E32", "Pasientens navn mangler"),
    ("E35", "Pasienten finnes ikke i mottakersystemet"),
    ("S01", "Feil på signatur"),
    ("S02", "Ugyldig sertifikat"),
    ("S03", "Tilbaketrukket sertifikat"),
    ("S99", "Annen feil på signatur eller sertifikat"),
    ("T01", "Ikke XML / ikke 'well formed' / uleselig"),
    ("T02", "XML validerer ikke"),
    ("T10", "Støtter ikke meldingsformatet"),
    ("T99", "Annen feil på format"),
    ("X99", "Annen feil"),
];

/// The display name of a kodeverk 8221 code.
pub fn error_name(code: &str) -> Option<&'static str> {
    ERROR_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

/// One error of an AppRec, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppRecError {
    /// The code, from kodeverk 8221 unless `oid` names another code system.
    pub error_code: String,
    /// Free text about this occurrence (the `OT` of the code in the document).
    #[serde(default)]
    pub details: Option<String>,
    /// The code's display name (`DN`).
    #[serde(default)]
    pub description: Option<String>,
    /// The code system (`S`).
    #[serde(default)]
    pub oid: Option<String>,
}

impl AppRecError {
    pub fn new(code: &str, details: impl Into<String>) -> Self {
        Self {
            error_code: code.to_owned(),
            details: Some(details.into()),
            description: error_name(code).map(str::to_owned),
            oid: Some(ERROR_OID.to_owned()),
        }
    }

    /// Checks the code against its code system and fills in what kodeverk 8221 gives.
    pub fn checked(mut self) -> Result<Self, String> {
        let oid = self.oid.get_or_insert_with(|| ERROR_OID.to_owned());
        if *oid == ERROR_OID {
            let name = error_name(&self.error_code).ok_or_else(|| {
                format!(
                    "errorCode {:?} is not in kodeverk 8221 ({})",
                    self.error_code,
                    ERROR_CODES
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            self.description.get_or_insert_with(|| name.to_owned());
        } else if !is_oid(oid) || self.error_code.trim().is_empty() {
            return Err(format!(
                "an error of code system {oid:?} needs a dotted OID and a code"
            ));
        }
        Ok(self)
    }
}

fn is_oid(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// An AppRec's content that the hub acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRec {
    pub version: AppRecVersion,
    pub id: String,
    pub gen_date: String,
    pub sender: HerId,
    pub receiver: HerId,
    pub status: AppRecStatus,
    pub errors: Vec<AppRecError>,
    pub original_type: String,
    pub original_id: String,
}

impl AppRec {
    /// Reads an AppRec (the schema has been checked; this reads what routing needs).
    pub fn read(root: &Element) -> Result<Self, Refusal> {
        let version = match root.ns.as_str() {
            NS_V1_0 => AppRecVersion::V1_0,
            NS_V1_1 => AppRecVersion::V1_1,
            other => {
                return Err(Refusal::format(
                    "T10",
                    "/AppRec",
                    format!("unknown AppRec namespace {other:?}"),
                ));
            }
        };
        let id = required_text(root, "Id", "/AppRec/Id")?;
        let gen_date = required_text(root, "GenDate", "/AppRec/GenDate")?;
        let party = |role: &str| {
            let hcp = root
                .at(&[role, "HCP"])
                .ok_or_else(|| Refusal::format("T02", at(&["AppRec", role]), "HCP is missing"))?;
            hcp_her_id(hcp).ok_or_else(|| {
                Refusal::format(
                    "E21",
                    at(&["AppRec", role, "HCP"]),
                    "no institution or department with a HER-id",
                )
            })
        };
        let sender = party("Sender")?;
        let receiver = party("Receiver")?;
        let status = root
            .code_of("Status")
            .and_then(|v| v.parse().ok())
            .and_then(AppRecStatus::from_code)
            .ok_or_else(|| {
                Refusal::format(
                    "T02",
                    "/AppRec/Status/@V",
                    "Status must be 1 (OK), 2 (Avvist) or 3 (OK, feil i delmelding)",
                )
            })?;
        let mut errors = Vec::new();
        for (i, error) in root.children_named("Error").enumerate() {
            let path = format!("/AppRec/Error[{}]", i + 1);
            let error = AppRecError {
                error_code: error.attr("V").unwrap_or_default().trim().to_owned(),
                details: error.attr("OT").map(str::to_owned),
                description: error.attr("DN").map(str::to_owned),
                oid: error.attr("S").map(str::to_owned),
            }
            .checked()
            .map_err(|e| Refusal::format("T02", path, e))?;
            errors.push(error);
        }
        if status == AppRecStatus::Rejected && errors.is_empty() {
            return Err(Refusal::format(
                "T02",
                "/AppRec/Error",
                "an AppRec with status 2 (Avvist) must name its errors",
            ));
        }
        let original = root.child("OriginalMsgId").ok_or_else(|| {
            Refusal::format("T02", "/AppRec/OriginalMsgId", "OriginalMsgId is missing")
        })?;
        Ok(AppRec {
            version,
            id,
            gen_date,
            sender,
            receiver,
            status,
            errors,
            original_type: original.code_of("MsgType").unwrap_or_default().to_owned(),
            original_id: required_text(original, "Id", "/AppRec/OriginalMsgId/Id")?,
        })
    }
}

fn required_text(parent: &Element, name: &str, path: &str) -> Result<String, Refusal> {
    match parent.text_of(name) {
        Some(text) if !text.is_empty() => Ok(text.to_owned()),
        _ => Err(Refusal::format("T02", path, format!("{name} is missing"))),
    }
}

/// The innermost HER-id of an AppRec HCP: a department's, else the institution's.
fn hcp_her_id(hcp: &Element) -> Option<HerId> {
    let inst = hcp.child("Inst")?;
    let her = |e: &Element| match e.code_of("TypeId") {
        Some("HER") => e.text_of("Id").and_then(|id| id.parse().ok()),
        _ => None,
    };
    inst.children_named("Dept")
        .filter_map(her)
        .last()
        .or_else(|| her(inst))
}

/// A party as an AppRec names it: its institution and, for a unit, the unit as a department.
#[derive(Debug, Clone)]
pub struct Named {
    pub institution: (HerId, String),
    pub department: Option<(HerId, String)>,
}

/// What an AppRec the hub writes says.
#[derive(Debug, Clone)]
pub struct NewAppRec<'a> {
    pub version: AppRecVersion,
    pub id: &'a str,
    pub gen_date: DateTime<Utc>,
    pub software: &'a str,
    pub sender: &'a Named,
    pub receiver: &'a Named,
    pub status: AppRecStatus,
    pub errors: &'a [AppRecError],
    pub original_type: &'a str,
    pub original_issued: &'a str,
    pub original_id: &'a str,
}

impl NewAppRec<'_> {
    /// The AppRec document, UTF-8.
    pub fn to_xml(&self) -> String {
        let mut x = String::with_capacity(1_500);
        x.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        x.push_str(&format!(
            r#"<AppRec xmlns="{}"><MsgType V="APPREC" DN="Applikasjonskvittering"/><MIGversion>{}</MIGversion><SoftwareName>{}</SoftwareName><GenDate>{}</GenDate><Id>{}</Id>"#,
            self.version.namespace(),
            self.version.mig_version(),
            escape(self.software),
            self.gen_date.to_rfc3339_opts(SecondsFormat::Millis, true),
            escape(self.id),
        ));
        for (role, party) in [("Sender", self.sender), ("Receiver", self.receiver)] {
            x.push_str(&format!("<{role}><HCP><Inst>"));
            hcp_unit(&mut x, &party.institution);
            if let Some(department) = &party.department {
                x.push_str("<Dept>");
                hcp_unit(&mut x, department);
                x.push_str("</Dept>");
            }
            x.push_str(&format!("</Inst></HCP></{role}>"));
        }
        x.push_str(&format!(
            r#"<Status V="{}" DN="{}"/>"#,
            self.status.code(),
            self.status.display_name()
        ));
        for error in self.errors {
            x.push_str(&format!(r#"<Error V="{}""#, escape(&error.error_code)));
            for (name, value) in [
                ("S", &error.oid),
                ("DN", &error.description),
                ("OT", &error.details),
            ] {
                if let Some(value) = value {
                    x.push_str(&format!(r#" {name}="{}""#, escape(value)));
                }
            }
            x.push_str("/>");
        }
        x.push_str(&format!(
            r#"<OriginalMsgId><MsgType V="{}"/><IssueDate>{}</IssueDate><Id>{}</Id></OriginalMsgId></AppRec>"#,
            escape(self.original_type),
            escape(self.original_issued),
            escape(self.original_id)
        ));
        x
    }
}

fn hcp_unit(x: &mut String, (her_id, name): &(HerId, String)) {
    x.push_str(&format!(
        r#"<Name>{}</Name><Id>{her_id}</Id><TypeId V="HER" DN="HER-id"/>"#,
        escape(name)
    ));
}
