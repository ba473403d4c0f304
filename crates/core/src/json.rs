//! Request bodies as JSON, with errors that name the field they are in.

use serde::Deserialize;

/// A body that is not the JSON expected: the field (`cpp[0].versions[1]`, or `body`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// Reads one JSON value from `bytes`, and nothing after it.
pub fn from_body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, FieldError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let field = match e.path().to_string() {
            path if path == "." => "body".to_owned(),
            path => path,
        };
        FieldError {
            field,
            reason: e.into_inner().to_string(),
        }
    })?;
    json.end().map_err(|e| FieldError {
        field: "body".to_owned(),
        reason: e.to_string(),
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_body::<Outer>(br#"{"inner":[{"n":1},{"n":"x"}]}"#).unwrap_err();
        assert_eq!(e.field, "inner[1].n");
        assert_eq!(from_body::<Outer>(b"{}").unwrap_err().field, "body");
        assert_eq!(
            from_body::<Outer>(br#"{"inner":[]} x"#).unwrap_err().field,
            "body"
        );
    }
}
