//! Fødselsnummer and D-nummer: the 11-digit national identity numbers of the population register.
//!
//! Layout `DDMMYY III K1 K2`: birth date, individual number (whose range gives the century and
//! whose parity gives legal sex), and two modulus-11 check digits. A D-nummer adds 40 to the day.
//! Synthetic numbers add 80 to the month (the convention of the Norwegian test registers), so a
//! synthetic number can never be a real person's.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use super::{IdError, digits, mod11::check_digit, string_identifier};

const WHAT: &str = "fødselsnummer";
const K1_WEIGHTS: [u8; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const K2_WEIGHTS: [u8; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
const D_NUMBER_DAY_OFFSET: u8 = 40;
const SYNTHETIC_MONTH_OFFSET: u8 = 80;

/// A checked fødselsnummer or D-nummer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fodselsnummer([u8; 11]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NumberKind {
    /// Assigned at birth or immigration.
    Fodselsnummer,
    /// Assigned to people with a temporary connection to Norway.
    DNummer,
}

/// Legal sex as encoded in the individual number (odd: male, even: female).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Sex {
    Female,
    Male,
}

impl Fodselsnummer {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let d: [u8; 11] = digits(WHAT, input, true)?;
        let k1 = check_digit(&d[..9], &K1_WEIGHTS);
        if k1 != Some(d[9]) {
            return Err(IdError::redacted(WHAT, "first check digit (K1) is wrong"));
        }
        let k2 = check_digit(&d[..10], &K2_WEIGHTS);
        if k2 != Some(d[10]) {
            return Err(IdError::redacted(WHAT, "second check digit (K2) is wrong"));
        }
        let fnr = Self(d);
        fnr.decode_birth_date()?;
        Ok(fnr)
    }

    /// Builds the number for a birth date and individual number (0..=999), or `None` where that
    /// individual number does not fit the century or gives a check digit of 10 (such numbers are
    /// never issued; the caller tries the next individual number).
    pub fn new(
        birth_date: NaiveDate,
        individual: u16,
        kind: NumberKind,
        synthetic: bool,
    ) -> Option<Self> {
        if individual > 999
            || century(
                u32::from(birth_date.year().rem_euclid(100) as u16),
                individual,
            )? != birth_date.year() / 100
        {
            return None;
        }
        let day = birth_date.day() as u8
            + if kind == NumberKind::DNummer {
                D_NUMBER_DAY_OFFSET
            } else {
                0
            };
        let month = birth_date.month() as u8 + if synthetic { SYNTHETIC_MONTH_OFFSET } else { 0 };
        let year = birth_date.year().rem_euclid(100) as u8;
        let i = individual;
        let mut d = [
            day / 10,
            day % 10,
            month / 10,
            month % 10,
            year / 10,
            year % 10,
            (i / 100) as u8,
            (i / 10 % 10) as u8,
            (i % 10) as u8,
            0,
            0,
        ];
        d[9] = check_digit(&d[..9], &K1_WEIGHTS)?;
        d[10] = check_digit(&d[..10], &K2_WEIGHTS)?;
        Some(Self(d))
    }

    pub fn kind(&self) -> NumberKind {
        if self.0[0] >= D_NUMBER_DAY_OFFSET / 10 {
            NumberKind::DNummer
        } else {
            NumberKind::Fodselsnummer
        }
    }

    /// True for numbers from the synthetic series (month + 80), which no real person has.
    pub fn is_synthetic(&self) -> bool {
        self.pair(2) > SYNTHETIC_MONTH_OFFSET
    }

    pub fn sex(&self) -> Sex {
        if self.0[8].is_multiple_of(2) {
            Sex::Female
        } else {
            Sex::Male
        }
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.decode_birth_date().expect("checked when parsed")
    }

    fn pair(&self, at: usize) -> u8 {
        self.0[at] * 10 + self.0[at + 1]
    }

    fn decode_birth_date(&self) -> Result<NaiveDate, IdError> {
        let mut day = self.pair(0);
        if day > D_NUMBER_DAY_OFFSET {
            day -= D_NUMBER_DAY_OFFSET;
        }
        let mut month = self.pair(2);
        if month > SYNTHETIC_MONTH_OFFSET {
            month -= SYNTHETIC_MONTH_OFFSET;
        }
        let yy = u32::from(self.pair(4));
        let individual =
            u16::from(self.0[6]) * 100 + u16::from(self.0[7]) * 10 + u16::from(self.0[8]);
        let century = century(yy, individual).ok_or_else(|| {
            IdError::redacted(
                WHAT,
                "individual number does not match any century for this birth year",
            )
        })?;
        NaiveDate::from_ymd_opt(century * 100 + yy as i32, u32::from(month), u32::from(day))
            .ok_or_else(|| {
                IdError::redacted(WHAT, "the first six digits are not a valid birth date")
            })
    }
}

/// The century (18, 19 or 20) that an individual number stands for with a two-digit year.
fn century(yy: u32, individual: u16) -> Option<i32> {
    match individual {
        0..=499 => Some(19),
        500..=749 if yy >= 54 => Some(18),
        500..=999 if yy <= 39 => Some(20),
        900..=999 if yy >= 40 => Some(19),
        _ => None,
    }
}

impl fmt::Display for Fodselsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|d| write!(f, "{d}"))
    }
}

/// Debug never prints the whole number: it would end up in logs.
impl fmt::Debug for Fodselsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fodselsnummer({}{}xxxxxxxxx)", self.0[0], self.0[1])
    }
}

string_identifier!(Fodselsnummer);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn parses_a_known_valid_number() {
        let fnr =
            Fodselsnummer::new(date(1985, 3, 12), 123, NumberKind::Fodselsnummer, false).unwrap();
        let again = Fodselsnummer::parse(&fnr.to_string()).unwrap();
        assert_eq!(again, fnr);
        assert_eq!(again.birth_date(), date(1985, 3, 12));
        assert_eq!(again.sex(), Sex::Male);
        assert_eq!(again.kind(), NumberKind::Fodselsnummer);
        assert!(!again.is_synthetic());
    }

    #[test]
    fn check_digits_match_hand_computation() {
        // 010190 001 -> K1 = 11 - (0*3+1*7+0*6+1*1+9*8+0*9+0*4+0*5+1*2) % 11 = 11 - 82 % 11 = 6
        // K2 = 11 - (0*5+1*4+0*3+1*2+9*7+0*6+0*5+0*4+1*3+6*2) % 11 = 11 - 84 % 11 = 4
        let fnr = Fodselsnummer::parse("01019000164").unwrap();
        assert_eq!(fnr.birth_date(), date(1990, 1, 1));
        assert!(Fodselsnummer::parse("01019000165").is_err());
        assert!(Fodselsnummer::parse("01019000154").is_err());
    }

    #[test]
    fn synthetic_and_d_numbers_are_recognised() {
        let d = date(2001, 11, 30);
        let synthetic = Fodselsnummer::new(d, 512, NumberKind::Fodselsnummer, true).unwrap();
        assert!(synthetic.to_string()[2..4].eq("91"));
        let parsed = Fodselsnummer::parse(&synthetic.to_string()).unwrap();
        assert!(parsed.is_synthetic());
        assert_eq!(parsed.birth_date(), d);
        let dnr = Fodselsnummer::new(d, 514, NumberKind::DNummer, true).unwrap();
        let parsed = Fodselsnummer::parse(&dnr.to_string()).unwrap();
        assert_eq!(parsed.kind(), NumberKind::DNummer);
        assert_eq!(parsed.birth_date(), d);
        assert_eq!(parsed.sex(), Sex::Female);
    }

    #[test]
    fn errors_are_specific_and_never_echo_the_number() {
        let e = Fodselsnummer::parse("0101900016").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid fødselsnummer: must be exactly 11 digits, got 10 characters"
        );
        let e = Fodselsnummer::parse("0101900016x").unwrap_err();
        assert!(e.to_string().contains("position 11"), "{e}");
        let e = Fodselsnummer::parse("01019000165").unwrap_err();
        assert!(!e.to_string().contains("0101900016"), "{e}");
        // 31 February does not exist: find check digits that are valid so only the date is wrong.
        let impossible = (0..500u16)
            .find_map(|i| {
                let mut d = [
                    3,
                    1,
                    0,
                    2,
                    9,
                    0,
                    (i / 100) as u8,
                    (i / 10 % 10) as u8,
                    (i % 10) as u8,
                    0,
                    0,
                ];
                d[9] = check_digit(&d[..9], &K1_WEIGHTS)?;
                d[10] = check_digit(&d[..10], &K2_WEIGHTS)?;
                Some(d.iter().map(|d| char::from(b'0' + d)).collect::<String>())
            })
            .unwrap();
        let e = Fodselsnummer::parse(&impossible).unwrap_err();
        assert_eq!(e.reason, "the first six digits are not a valid birth date");
        assert!(format!("{:?}", Fodselsnummer::parse("01019000164").unwrap()).contains("xxxx"));
    }

    #[test]
    fn individual_number_outside_century_is_refused() {
        // 800 with a 1985 birth year: 750-899 is not used for 1940-1999.
        assert!(
            Fodselsnummer::new(date(1985, 1, 1), 800, NumberKind::Fodselsnummer, false).is_none()
        );
        assert!(
            Fodselsnummer::new(date(2010, 1, 1), 100, NumberKind::Fodselsnummer, false).is_none()
        );
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (1900i32..2039, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| date(y, m, d))
    }

    proptest! {
        #[test]
        fn every_generated_number_parses_back(birth in any_date(), individual in 0u16..1000, d in any::<bool>(), synthetic in any::<bool>()) {
            let kind = if d { NumberKind::DNummer } else { NumberKind::Fodselsnummer };
            if let Some(fnr) = Fodselsnummer::new(birth, individual, kind, synthetic) {
                let parsed = Fodselsnummer::parse(&fnr.to_string()).unwrap();
                prop_assert_eq!(parsed.birth_date(), birth);
                prop_assert_eq!(parsed.kind(), kind);
                prop_assert_eq!(parsed.is_synthetic(), synthetic);
                prop_assert_eq!(parsed.sex() == Sex::Male, individual % 2 == 1);
            }
        }

        #[test]
        fn any_single_digit_change_is_detected(birth in any_date(), individual in 0u16..500, pos in 0usize..11, delta in 1u8..10) {
            if let Some(fnr) = Fodselsnummer::new(birth, individual, NumberKind::Fodselsnummer, true) {
                let mut d = fnr.0;
                d[pos] = (d[pos] + delta) % 10;
                let s: String = d.iter().map(|d| char::from(b'0' + d)).collect();
                prop_assert!(Fodselsnummer::parse(&s).is_err());
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = Fodselsnummer::parse(&s);
        }
    }
}
