//! Synthetic Norway: a deterministic country of any size, for the demo, the test lab and the
//! benchmarks. Every person has a synthetic fødselsnummer (month + 80), every organisation a
//! synthetic organisasjonsnummer (leading 3), so no record can be mistaken for a real one.

mod changes;
mod cpp;
mod export;
mod generate;
mod gp;
mod hpr;
mod kjernejournal;
mod people;
pub mod pki;
mod plan;
mod providers;
mod reference;

use std::path::Path;

pub use changes::{Changes, run as events};
pub use generate::{Options, Summary, generate};
pub use plan::{Plan, Size};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(
        "the store already holds a synthetic country (size {size}, seed {seed}); use an empty data dir or database"
    )]
    AlreadyGenerated { size: String, seed: u64 },
    #[error(
        "the store holds country data but no finished country (an import, or a run of an older version); use an empty data dir or database"
    )]
    Incomplete,
    #[error(
        "the country's date {0} is outside 2000-01-01 to 2039-12-31, the years in which a fødselsnummer can encode everyone's birth date"
    )]
    AsOf(chrono::NaiveDate),
    #[error("the store holds no country yet; run `helsenett synth` first")]
    NoCountry,
    #[error(transparent)]
    Store(#[from] helsenett_store::StoreError),
    #[error("cannot write export {path}: {cause}")]
    Export {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("certificate authority: {0}")]
    Pki(openssl::error::ErrorStack),
    #[error("the store writer stopped")]
    WriterStopped,
    #[error("{0}")]
    Thread(String),
}

impl SynthError {
    fn export(path: &Path, cause: std::io::Error) -> Self {
        SynthError::Export {
            path: path.to_owned(),
            cause,
        }
    }
}

// By hand rather than `#[from]`: the cause is in the message, so it is not also a `source()`.
impl From<openssl::error::ErrorStack> for SynthError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        SynthError::Pki(e)
    }
}

/// The random stream named `stream` of the country with `seed`. Streams are independent, so a
/// part of the country can be generated alone and still come out the same.
pub(crate) fn seeded_rng(seed: u64, stream: &str) -> ChaCha20Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    // FNV-1a of the stream name: a stable, dependency-free 64-bit hash.
    let hash = stream.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    key[8..16].copy_from_slice(&hash.to_le_bytes());
    ChaCha20Rng::from_seed(key)
}
