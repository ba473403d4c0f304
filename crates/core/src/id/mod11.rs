//! The modulus-11 check digit used by fødselsnummer (twice) and organisasjonsnummer.

/// The check digit for `digits` under `weights`, or `None` where the rule gives 10, which means no
/// valid number exists with these leading digits.
pub(crate) fn check_digit(digits: &[u8], weights: &[u8]) -> Option<u8> {
    debug_assert_eq!(digits.len(), weights.len());
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(&d, &w)| u32::from(d) * u32::from(w))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k as u8),
    }
}
