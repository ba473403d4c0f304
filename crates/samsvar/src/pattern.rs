//! XSD `pattern` facets as Rust regular expressions.
//!
//! An XSD regex always matches the whole value and has no anchors (`^` and `$` are ordinary
//! characters); its `.`, `\s` and `\w` differ from Rust's. Constructs without a faithful
//! translation (`\i`, `\c`, class subtraction, block escapes `\p{IsX}`) are refused, so that a
//! schema using them fails to compile instead of validating differently.

use regex::Regex;

pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let refuse = |what: &str| Err(format!("pattern '{pattern}': {what} is not supported"));
    let mut out = String::from("^(?:");
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(escaped) = chars.next() else {
                    return refuse("a trailing backslash");
                };
                match (escaped, in_class) {
                    ('s', false) => out.push_str(r"[ \t\n\r]"),
                    ('s', true) => out.push_str(r" \t\n\r"),
                    ('S', false) => out.push_str(r"[^ \t\n\r]"),
                    ('w', false) => out.push_str(r"[^\p{P}\p{Z}\p{C}]"),
                    ('W', false) => out.push_str(r"[\p{P}\p{Z}\p{C}]"),
                    // Rust's Unicode `\d` is XSD's `\p{Nd}`.
                    ('d' | 'D' | 'n' | 'r' | 't', _) => {
                        out.push('\\');
                        out.push(escaped);
                    }
                    ('p' | 'P', _) => {
                        let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                        if !name.starts_with('{') || name.starts_with("{Is") {
                            return refuse(&format!("\\{escaped}{name}}}"));
                        }
                        out.push_str(&format!("\\{escaped}{name}}}"));
                    }
                    (c, _) if r"\|.-^?*+{}()[]".contains(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    (c, _) => return refuse(&format!("the escape \\{c}")),
                }
            }
            '[' if in_class => return refuse("class subtraction"),
            '[' => {
                in_class = true;
                out.push('[');
                if chars.next_if_eq(&'^').is_some() {
                    out.push('^');
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '.' if !in_class => out.push_str(r"[^\n\r]"),
            // Anchors outside a class; set operators inside one in Rust's syntax.
            '^' | '$' if !in_class => {
                out.push('\\');
                out.push(c);
            }
            '&' | '~' | '^' if in_class => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push_str(")$");
    Regex::new(&out).map_err(|e| format!("pattern '{pattern}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn matches_whole_values_as_xsd_does() {
        let oid = compile(r"(\d+\.?)*\d+").unwrap();
        for (value, valid) in [
            ("2.16.578.1", true),
            ("1", true),
            ("1.", false),
            (".1", false),
            ("1..2", false),
            ("a", false),
            ("١.٢", true),
            ("", false),
        ] {
            assert_eq!(oid.is_match(value), valid, "{value:?}");
        }
        let boolean = compile("true|false").unwrap();
        assert!(
            boolean.is_match("false") && !boolean.is_match("truefalse") && !boolean.is_match("1")
        );
        let anchors = compile(r"^a$").unwrap();
        assert!(anchors.is_match("^a$") && !anchors.is_match("a"));
        let dot = compile("a.b").unwrap();
        assert!(dot.is_match("a-b") && !dot.is_match("a\nb") && !dot.is_match("a\rb"));
        let spaces = compile(r"\s[\s-]\S").unwrap();
        assert!(spaces.is_match(" -x") && !spaces.is_match("\u{a0}-x"));
        let class = compile(r"[a-c^&]+\p{Lu}").unwrap();
        assert!(class.is_match("a^&B") && !class.is_match("dB"));
        for unsupported in [
            r"\i\c*",
            r"[a-z-[aeiou]]",
            r"\p{IsBasicLatin}",
            r"a\",
            r"\q",
        ] {
            assert!(compile(unsupported).is_err(), "{unsupported}");
        }
    }
}
