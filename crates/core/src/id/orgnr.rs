//! Organisasjonsnummer: the 9-digit number of the Central Coordinating Register for Legal
//! Entities, with a modulus-11 check digit (weights 3,2,7,6,5,4,3,2).
//!
//! Real numbers begin with 8 or 9. Synthetic organisations get numbers beginning with 3 (as the
//! national test registers do), so they can never collide with a real organisation.

use std::fmt;

use super::{IdError, digits, mod11::check_digit, string_identifier};

const WHAT: &str = "organisasjonsnummer";
const WEIGHTS: [u8; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
const SYNTHETIC_FIRST_DIGIT: u8 = 3;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Organisasjonsnummer([u8; 9]);

impl Organisasjonsnummer {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let d: [u8; 9] = digits(WHAT, input, false)?;
        match check_digit(&d[..8], &WEIGHTS) {
            Some(k) if k == d[8] => Ok(Self(d)),
            Some(_) => Err(IdError::new(WHAT, input, "check digit is wrong")),
            None => Err(IdError::new(
                WHAT,
                input,
                "no valid organisasjonsnummer has these first eight digits",
            )),
        }
    }

    /// The synthetic number with sequence `seq` (0..10^7) after the leading 3, or `None` where
    /// the check digit would be 10 (the caller moves on to the next sequence number).
    pub fn synthetic(seq: u32) -> Option<Self> {
        if seq >= 10_000_000 {
            return None;
        }
        let mut d = [SYNTHETIC_FIRST_DIGIT, 0, 0, 0, 0, 0, 0, 0, 0];
        for (i, slot) in d[1..8].iter_mut().enumerate() {
            *slot = (seq / 10u32.pow(6 - i as u32) % 10) as u8;
        }
        d[8] = check_digit(&d[..8], &WEIGHTS)?;
        Some(Self(d))
    }

    pub fn is_synthetic(&self) -> bool {
        self.0[0] == SYNTHETIC_FIRST_DIGIT
    }
}

impl fmt::Display for Organisasjonsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|d| write!(f, "{d}"))
    }
}

impl fmt::Debug for Organisasjonsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Organisasjonsnummer({self})")
    }
}

string_identifier!(Organisasjonsnummer);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers() {
        // Norsk helsenett SF and the Norwegian Directorate of Health, as published.
        assert!(Organisasjonsnummer::parse("994598759").is_ok());
        assert!(Organisasjonsnummer::parse("983544622").is_ok());
        let e = Organisasjonsnummer::parse("994598758").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid organisasjonsnummer \"994598758\": check digit is wrong"
        );
        let e = Organisasjonsnummer::parse("99459875").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid organisasjonsnummer \"99459875\": must be exactly 9 digits, got 8 characters"
        );
    }

    #[test]
    fn synthetic_numbers_are_marked() {
        let n = (0..).find_map(Organisasjonsnummer::synthetic).unwrap();
        assert!(n.is_synthetic());
        assert!(n.to_string().starts_with('3'));
        assert!(
            !Organisasjonsnummer::parse("994598759")
                .unwrap()
                .is_synthetic()
        );
        assert!(Organisasjonsnummer::synthetic(10_000_000).is_none());
    }

    /// An independent formulation of the rule: the weighted sum of all nine digits, with the
    /// check digit weighted 1, is divisible by 11.
    fn valid_by_sum(s: &str) -> bool {
        let w = [3, 2, 7, 6, 5, 4, 3, 2, 1];
        s.len() == 9
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.bytes()
                .zip(w)
                .map(|(b, w)| u32::from(b - b'0') * w)
                .sum::<u32>()
                % 11
                == 0
    }

    proptest! {
        #[test]
        fn agrees_with_the_weighted_sum_rule(s in "[0-9]{9}") {
            prop_assert_eq!(Organisasjonsnummer::parse(&s).is_ok(), valid_by_sum(&s));
        }

        #[test]
        fn synthetic_numbers_parse_back(seq in 0u32..10_000_000) {
            if let Some(n) = Organisasjonsnummer::synthetic(seq) {
                prop_assert_eq!(Organisasjonsnummer::parse(&n.to_string()).unwrap(), n);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = Organisasjonsnummer::parse(&s);
        }
    }
}
