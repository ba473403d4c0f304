//! A system client's credentials as `helsenett synth` writes them: one JSON object per line
//! (`client_id`, `orgnr_parent`, `private_jwk`).

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::jose::{Es256Key, PrivateJwk};

#[derive(Deserialize)]
struct Line {
    client_id: String,
    #[serde(default)]
    orgnr_parent: Option<String>,
    private_jwk: PrivateJwk,
}

/// A HelseID system client: its id, the organisation it acts for, and its signing key.
pub struct SystemClient {
    pub id: String,
    pub organisation: Option<String>,
    pub kid: Option<String>,
    pub key: Es256Key,
}

/// The first `max` clients of a clients file.
pub fn load_clients(path: &Path, max: usize) -> Result<Vec<SystemClient>> {
    load(path, max, |_| true)
}

/// The client of organisation `orgnr` in a clients file.
pub fn client_of(path: &Path, orgnr: &str) -> Result<SystemClient> {
    load(path, 1, |line| line.orgnr_parent.as_deref() == Some(orgnr))?
        .pop()
        .with_context(|| format!("{} has no client of organisation {orgnr}", path.display()))
}

fn load(path: &Path, max: usize, wanted: impl Fn(&Line) -> bool) -> Result<Vec<SystemClient>> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut clients = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        if clients.len() == max {
            break;
        }
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let c: Line = serde_json::from_str(&line).with_context(at)?;
        if !wanted(&c) {
            continue;
        }
        clients.push(SystemClient {
            key: Es256Key::from_jwk(&c.private_jwk).with_context(at)?,
            kid: c.private_jwk.kid,
            id: c.client_id,
            organisation: c.orgnr_parent,
        });
    }
    if clients.is_empty() {
        bail!("{} has no such clients", path.display());
    }
    Ok(clients)
}
