//! The readers of untrusted bytes on stable, as the fuzz targets in `fuzz/` exercise them under
//! libFuzzer: valid documents mutated byte by byte, cut short and spliced, and random bytes.
//! Whatever comes in, each reader answers (a value or a refusal) and never panics.

use helsenett_exchange::{apprec::AppRec, cms, envelope::Envelope, xml};
use proptest::prelude::*;

/// The documents mutations start from: every file of the validator's corpus.
fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samsvar/tests/corpus");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() > 20,
        "the corpus in {} is missing",
        dir.display()
    );
    seeds
}

fn read_everything(bytes: &[u8]) {
    if let Ok(root) = xml::parse(bytes) {
        let _ = Envelope::read(&root);
        let _ = AppRec::read(&root);
    }
    let _ = helsenett_samsvar::validate(bytes);
    let _ = cms::recipients(bytes);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Cut { at: usize },
    Repeat { from: usize, len: usize, to: usize },
    Delete { from: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (any::<usize>(), 1usize..64, any::<usize>()).prop_map(|(from, len, to)| Mutation::Repeat {
            from,
            len,
            to
        }),
        (any::<usize>(), 1usize..64).prop_map(|(from, len)| Mutation::Delete { from, len }),
    ]
}

fn apply(document: &mut Vec<u8>, mutation: &Mutation) {
    let n = document.len().max(1);
    match *mutation {
        Mutation::Flip { at, byte } => {
            if let Some(b) = document.get_mut(at % n) {
                *b = byte;
            }
        }
        Mutation::Cut { at } => document.truncate(at % n),
        Mutation::Repeat { from, len, to } => {
            let from = from % n;
            let end = (from + len).min(document.len());
            let piece = document.get(from..end).unwrap_or_default().to_vec();
            let to = (to % n).min(document.len());
            document.splice(to..to, piece);
        }
        Mutation::Delete { from, len } => {
            let from = from % n;
            let end = (from + len).min(document.len());
            if from < end {
                document.drain(from..end);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_documents_are_answered_not_panicked_on(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let seeds = seeds();
        let mut document = seeds[seed.index(seeds.len())].clone();
        for m in &mutations {
            apply(&mut document, m);
        }
        read_everything(&document);
    }

    #[test]
    fn random_bytes_are_answered_not_panicked_on(bytes in prop::collection::vec(any::<u8>(), 0..2_048)) {
        read_everything(&bytes);
    }
}

#[test]
fn sealed_payloads_cut_short_are_refused() {
    // A real seal, then every prefix of it: the DER walk must refuse each, not read past the end.
    let key = openssl::rsa::Rsa::generate(2048).unwrap();
    let key = openssl::pkey::PKey::from_rsa(key).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "SYNTETISK test").unwrap();
    let name = name.build();
    let mut builder = openssl::x509::X509Builder::new().unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    builder
        .sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let cert = builder.build();
    let sealed = cms::seal(b"payload", (&cert, &key), std::slice::from_ref(&cert)).unwrap();
    let recipients = cms::recipients(&sealed).unwrap();
    assert!(cms::addressed_to(&recipients, &cert));
    for end in 0..sealed.len() {
        assert!(
            cms::recipients(&sealed[..end]).is_err(),
            "a seal cut at {end} was read"
        );
    }
}
