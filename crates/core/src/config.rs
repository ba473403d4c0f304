//! Server configuration: defaults, then a TOML file, then `HELSENETT_*` environment variables,
//! then command-line flags (applied by the binary). An unknown key in the file is an error, not
//! a silent no-op: a misspelt `databse_url` must not start a node on the wrong store.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite store (and nothing else when PostgreSQL is used).
    pub data_dir: PathBuf,
    /// `postgres://...` to run on PostgreSQL; absent means the embedded SQLite store.
    pub database_url: Option<String>,
    /// Largest accepted request body.
    pub max_request_bytes: usize,
    /// Time a request may take before it is answered 408.
    pub request_timeout_seconds: u64,
    /// Time in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    pub log_format: LogFormat,
    /// The URL clients reach this node by (scheme, host, port; no path), as seen through any
    /// proxy. DPoP proofs name it, and HelseID's issuer is `{public_url}/helseid`. Absent: the
    /// listen address over plain HTTP.
    pub public_url: Option<String>,
    pub helseid: HelseIdConfig,
    pub exchange: ExchangeConfig,
    pub kjernejournal: KjernejournalConfig,
}

/// The `[kjernejournal]` table: the snooping rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KjernejournalConfig {
    /// How often each node runs the snooping rules over new audit records.
    pub detect_seconds: u64,
    /// Different patients one person may look up in an hour before an alert is raised.
    pub patients_per_hour: u32,
    /// Time after an emergency access within which a treatment relation must follow (an
    /// episode at the organisation, or the patient on the user's list), or an alert is raised.
    pub emergency_follow_up_hours: u32,
}

impl Default for KjernejournalConfig {
    fn default() -> Self {
        Self {
            detect_seconds: 5,
            // An emergency department doctor on a long shift sees a few dozen patients.
            patients_per_hour: 40,
            emergency_follow_up_hours: 24,
        }
    }
}

/// The `[exchange]` table: the message exchange's delivery guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// A message not marked read this long after it arrived is re-delivered (NHN: 12 hours).
    pub redelivery_seconds: u64,
    /// Re-deliveries before the exchange gives up and sends the sender a non-delivery notice.
    pub redelivery_attempts: u32,
    /// A message read but not answered with an AppRec this long after it was read raises a
    /// non-delivery notice, when the CPA says the receiver returns AppRecs.
    pub apprec_deadline_seconds: u64,
    /// How often each node looks for deliveries that fell due.
    pub watch_seconds: u64,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            redelivery_seconds: 12 * 3600,
            redelivery_attempts: 5,
            apprec_deadline_seconds: 24 * 3600,
            watch_seconds: 60,
        }
    }
}

/// The `[helseid]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HelseIdConfig {
    /// Lifetime of access and ID tokens. A retired signing key stays published this long.
    pub access_token_seconds: u64,
    /// Bearer token for dynamic client registration (RFC 7591); registration is off without it.
    pub admin_token: Option<String>,
}

impl Default for HelseIdConfig {
    fn default() -> Self {
        Self {
            access_token_seconds: 300,
            admin_token: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err(format!("{s:?} is not a log format (json or pretty)")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("helsenett-data"),
            database_url: None,
            // MsgHead documents with attachments (images, PDFs) are the largest bodies; NHN's
            // MSH API takes requests up to 35 MB.
            max_request_bytes: 35 * 1024 * 1024,
            request_timeout_seconds: 30,
            shutdown_grace_seconds: 30,
            log_format: LogFormat::Json,
            public_url: None,
            helseid: HelseIdConfig::default(),
            exchange: ExchangeConfig::default(),
            kjernejournal: KjernejournalConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        name: &'static str,
        value: String,
        message: String,
    },
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment read through `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
                    path: path.into(),
                    cause,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    message: e.message().to_owned() + &location(&text, e.span()),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                message: e.to_string(),
                value,
            })
        }
        if let Some(v) = env("HELSENETT_LISTEN") {
            self.listen = parse("HELSENETT_LISTEN", v)?;
        }
        if let Some(v) = env("HELSENETT_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("HELSENETT_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(v);
        }
        if let Some(v) = env("HELSENETT_MAX_REQUEST_BYTES") {
            self.max_request_bytes = parse("HELSENETT_MAX_REQUEST_BYTES", v)?;
        }
        if let Some(v) = env("HELSENETT_REQUEST_TIMEOUT_SECONDS") {
            self.request_timeout_seconds = parse("HELSENETT_REQUEST_TIMEOUT_SECONDS", v)?;
        }
        if let Some(v) = env("HELSENETT_SHUTDOWN_GRACE_SECONDS") {
            self.shutdown_grace_seconds = parse("HELSENETT_SHUTDOWN_GRACE_SECONDS", v)?;
        }
        if let Some(v) = env("HELSENETT_LOG_FORMAT") {
            self.log_format = parse("HELSENETT_LOG_FORMAT", v)?;
        }
        if let Some(v) = env("HELSENETT_PUBLIC_URL").filter(|v| !v.is_empty()) {
            self.public_url = Some(v);
        }
        if let Some(v) = env("HELSENETT_HELSEID_ACCESS_TOKEN_SECONDS") {
            self.helseid.access_token_seconds = parse("HELSENETT_HELSEID_ACCESS_TOKEN_SECONDS", v)?;
        }
        if let Some(v) = env("HELSENETT_HELSEID_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            self.helseid.admin_token = Some(v);
        }
        Ok(())
    }
}

/// " (line L, column C)" for a byte span of `text`, so a user can find the bad key.
fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(" (line {line}, column {column})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let f =
            write("listen = \"0.0.0.0:9000\"\nmax_request_bytes = 1024\nlog_format = \"pretty\"\n");
        let c = Config::load(
            Some(f.path()),
            env(&[("HELSENETT_MAX_REQUEST_BYTES", "2048")]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_request_bytes, 2048);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(
            c.request_timeout_seconds,
            Config::default().request_timeout_seconds
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let f = write("listen = \"127.0.0.1:1\"\ndatabse_url = \"postgres://x\"\n");
        let e = Config::load(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `databse_url`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_environment_value_is_named() {
        let e = Config::load(None, env(&[("HELSENETT_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("environment variable HELSENETT_LISTEN=\"nowhere\": "),
            "{e}"
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = Config::load(Some(Path::new("/nonexistent/helsenett.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read config file /nonexistent/helsenett.toml"),
            "{e}"
        );
    }
}
