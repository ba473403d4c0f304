//! HER-id and HPR-nummer: positive register numbers without a check digit.

use std::fmt;

use super::{IdError, string_identifier};

/// Parses 1 to 9 ASCII digits as a positive number.
fn positive(what: &'static str, input: &str) -> Result<u32, IdError> {
    if input.is_empty() || input.len() > 9 {
        return Err(IdError::new(what, input, "must be 1 to 9 digits"));
    }
    if let Some(i) = input.bytes().position(|b| !b.is_ascii_digit()) {
        return Err(IdError::new(
            what,
            input,
            format!("must contain only digits (position {} is not)", i + 1),
        ));
    }
    match input.parse::<u32>() {
        Ok(0) => Err(IdError::new(what, input, "must be greater than zero")),
        Ok(n) => Ok(n),
        Err(e) => Err(IdError::new(what, input, e)),
    }
}

macro_rules! register_number {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $ty(u32);

        impl $ty {
            pub fn parse(input: &str) -> Result<Self, IdError> {
                positive($what, input).map(Self)
            }

            pub fn new(n: u32) -> Result<Self, IdError> {
                Self::parse(&n.to_string())
            }

            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        string_identifier!($ty);
    };
}

register_number!(
    /// The address register's identifier of a communication party (organisation, department,
    /// service or person). Messages are routed by HER-id.
    HerId,
    "HER-id"
);

register_number!(
    /// A health professional's number in Helsepersonellregisteret.
    HprNummer,
    "HPR-nummer"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn errors_name_the_field_and_rule() {
        assert_eq!(
            HerId::parse("0").unwrap_err().to_string(),
            "invalid HER-id \"0\": must be greater than zero"
        );
        assert_eq!(
            HerId::parse("12a").unwrap_err().to_string(),
            "invalid HER-id \"12a\": must contain only digits (position 3 is not)"
        );
        assert_eq!(
            HprNummer::parse("").unwrap_err().to_string(),
            "invalid HPR-nummer \"\": must be 1 to 9 digits"
        );
        assert_eq!(
            HprNummer::parse("1234567890").unwrap_err().reason,
            "must be 1 to 9 digits"
        );
        assert_eq!(HerId::parse("8142519").unwrap().get(), 8_142_519);
    }

    #[test]
    fn serde_uses_the_string_form_and_checks_it() {
        assert_eq!(
            serde_json::to_string(&HerId::new(42).unwrap()).unwrap(),
            "\"42\""
        );
        assert!(serde_json::from_str::<HprNummer>("\"-1\"").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(n in 1u32..1_000_000_000) {
            prop_assert_eq!(HerId::parse(&n.to_string()).unwrap().get(), n);
            prop_assert_eq!(HprNummer::new(n).unwrap().to_string(), n.to_string());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = HerId::parse(&s);
        }
    }
}
