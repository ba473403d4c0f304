//! The full export: newline-delimited JSON, a header line then one party per line, as of one
//! event. A mirror loads it and then follows the feed from `asOfEventId`; `helsenett register
//! import` reads the same format.

use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{directory::Snapshot, model::Party};

pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// The format's name and version, so that a reader can refuse what it does not know.
pub const FORMAT: &str = "helsenett-adresseregister-export/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Header {
    pub format: String,
    /// The last event the export includes: follow the feed with `afterEventId` set to this.
    pub as_of_event_id: i64,
    pub parties: usize,
    pub exported_at: DateTime<Utc>,
}

/// Writes `snapshot` in the export format.
pub fn write(snapshot: &Snapshot, out: &mut impl Write) -> io::Result<()> {
    let header = Header {
        format: FORMAT.into(),
        as_of_event_id: snapshot.event_id,
        parties: snapshot.len(),
        exported_at: Utc::now(),
    };
    serde_json::to_writer(&mut *out, &header)?;
    out.write_all(b"\n")?;
    for party in snapshot.parties() {
        serde_json::to_writer(&mut *out, &**party)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Why an export cannot be read, with the line it is on.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads an export's header and then calls `each` with every party, in order.
pub fn read(
    input: impl BufRead,
    mut each: impl FnMut(Party) -> Result<(), ReadError>,
) -> Result<Header, ReadError> {
    let mut lines = input.lines().enumerate();
    let bad = |line: usize, reason: String| ReadError::Line {
        line: line + 1,
        reason,
    };
    let (n, first) = lines
        .next()
        .ok_or_else(|| bad(0, "the file is empty".into()))?;
    let header: Header =
        serde_json::from_str(&first?).map_err(|e| bad(n, format!("not an export header: {e}")))?;
    if header.format != FORMAT {
        return Err(bad(
            n,
            format!("format {:?} is not {FORMAT:?}", header.format),
        ));
    }
    let mut count = 0;
    for (n, line) in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let party: Party = serde_json::from_str(&line).map_err(|e| bad(n, e.to_string()))?;
        each(party)?;
        count += 1;
    }
    if count != header.parties {
        return Err(bad(
            count + 1,
            format!(
                "the header announces {} parties but the file holds {count}: it is truncated or altered",
                header.parties
            ),
        ));
    }
    Ok(header)
}
