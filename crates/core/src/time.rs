//! Dates and instants. helsenett stores instants as milliseconds since the Unix epoch (UTC) in
//! both backends, and calendar dates as ISO 8601 text, so the two backends compare alike.

use chrono::{NaiveDate, Utc};

/// Today's date in UTC.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Milliseconds since the Unix epoch, the storage form of an instant.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// Parses an ISO 8601 calendar date (`2026-11-22`) with an error that says which form is wanted.
pub fn parse_date(input: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(input, "%Y-%m-%d")
        .map_err(|e| format!("{input:?} is not a date of the form YYYY-MM-DD ({e})"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_date_explains_the_form() {
        assert_eq!(
            super::parse_date("2026-11-22").unwrap().to_string(),
            "2026-11-22"
        );
        assert!(
            super::parse_date("22.11.2026")
                .unwrap_err()
                .contains("YYYY-MM-DD")
        );
    }
}
