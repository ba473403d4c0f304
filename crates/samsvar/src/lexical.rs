//! The lexical spaces of the built-in types: pure checks of one string each.
//!
//! Where the XSD 1.0 grammar leaves room or libxml2 (which `xmllint` uses) reads a type in its own
//! way, these follow libxml2 2.9, so that both agree on what a document means; the exceptions are
//! named where they are made.

/// XML `S`: the only characters whitespace normalization and element-only content know.
pub(crate) fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// XSD `collapse`: runs of whitespace become one space, none at either end.
pub(crate) fn collapse(value: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = value.trim_matches(is_xml_whitespace);
    let mut last_space = false;
    let already = trimmed.chars().all(|c| {
        let ok = c == ' ' && !last_space || !is_xml_whitespace(c);
        last_space = c == ' ';
        ok
    });
    if already {
        return trimmed.into();
    }
    trimmed
        .split(is_xml_whitespace)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .into()
}

/// XSD `replace`: every whitespace character becomes a space.
pub(crate) fn replace(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\t', '\n', '\r']) {
        value.replace(['\t', '\n', '\r'], " ").into()
    } else {
        value.into()
    }
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A name without a colon (XML Namespaces `NCName`).
pub(crate) fn is_ncname(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// XML `Name`: an NCName that may contain colons.
pub(crate) fn is_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c == ':' || is_name_start(c))
        && chars.all(|c| c == ':' || is_name_char(c))
}

pub(crate) fn is_nmtoken(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c == ':' || is_name_char(c))
}

/// `xs:language`: `[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`.
pub(crate) fn is_language(value: &str) -> bool {
    value.split('-').enumerate().all(|(i, part)| {
        (1..=8).contains(&part.len())
            && part.bytes().all(|b| {
                if i == 0 {
                    b.is_ascii_alphabetic()
                } else {
                    b.is_ascii_alphanumeric()
                }
            })
    })
}

pub(crate) fn is_boolean(value: &str) -> bool {
    matches!(value, "true" | "false" | "1" | "0")
}

/// `xs:decimal`: optional sign, digits with at most one point, at least one digit. Unlike libxml2
/// there is no limit of 24 digits: XSD allows any precision, and certificate serial numbers
/// (`xs:integer` in XML Signature) are longer.
pub(crate) fn is_decimal(value: &str) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// `xs:integer` as a sign and the digits without leading zeros, for range checks.
pub(crate) fn integer(value: &str) -> Option<(bool, &str)> {
    let (negative, digits) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((negative, digits.trim_start_matches('0')))
}

/// `xs:double` and `xs:float` as libxml2 reads them: its exponent may have no digits (`1e`).
pub(crate) fn is_double(value: &str) -> bool {
    if matches!(value, "NaN" | "INF" | "-INF") {
        return true;
    }
    let rest = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent_ok = exponent.is_none_or(|e| {
        e.strip_prefix(['+', '-'])
            .unwrap_or(e)
            .bytes()
            .all(|b| b.is_ascii_digit())
    });
    !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && exponent_ok
}

/// The date and time types, by the fields they have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DateKind {
    DateTime,
    Date,
    Time,
    GYear,
    GYearMonth,
    GMonth,
    GDay,
    GMonthDay,
}

/// The date and time types. libxml2 does not collapse whitespace around them (so neither do we),
/// except that it skips leading whitespace before a `time`.
pub(crate) fn is_date_time(kind: DateKind, value: &str) -> bool {
    let mut s = Scanner(value.as_bytes());
    let valid = match kind {
        DateKind::DateTime => s.date().is_some() && s.eat(b'T') && s.time(),
        DateKind::Date => s.date().is_some(),
        DateKind::Time => {
            s.0 = s.0.trim_ascii_start();
            s.time()
        }
        DateKind::GYear => s.year().is_some(),
        DateKind::GYearMonth => {
            s.year().is_some()
                && s.eat(b'-')
                && s.two_digits().is_some_and(|m| (1..=12).contains(&m))
        }
        DateKind::GMonth => {
            s.eat(b'-') && s.eat(b'-') && s.two_digits().is_some_and(|m| (1..=12).contains(&m))
        }
        DateKind::GDay => {
            s.eat(b'-')
                && s.eat(b'-')
                && s.eat(b'-')
                && s.two_digits().is_some_and(|d| (1..=31).contains(&d))
        }
        DateKind::GMonthDay => s.eat(b'-') && s.eat(b'-') && s.month_day(2000),
    };
    valid && s.timezone() && s.0.is_empty()
}

struct Scanner<'a>(&'a [u8]);

impl Scanner<'_> {
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.0.first() == Some(&byte);
        if found {
            self.0 = &self.0[1..];
        }
        found
    }

    fn two_digits(&mut self) -> Option<u32> {
        match *self.0 {
            [a @ b'0'..=b'9', b @ b'0'..=b'9', ..] => {
                self.0 = &self.0[2..];
                Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            }
            _ => None,
        }
    }

    /// At least four digits, no leading zero beyond four, optional minus, never year 0.
    fn year(&mut self) -> Option<i64> {
        let negative = self.eat(b'-');
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at(len);
        if len < 4 || (len > 4 && digits[0] == b'0') {
            return None;
        }
        let year = digits.iter().try_fold(0i64, |y, &d| {
            y.checked_mul(10)?.checked_add(i64::from(d - b'0'))
        })?;
        self.0 = rest;
        (year != 0).then_some(if negative { -year } else { year })
    }

    fn date(&mut self) -> Option<()> {
        let year = self.year()?;
        (self.eat(b'-') && self.month_day(year)).then_some(())
    }

    fn month_day(&mut self, year: i64) -> bool {
        let Some(month) = self.two_digits() else {
            return false;
        };
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        self.eat(b'-') && self.two_digits().is_some_and(|d| (1..=days).contains(&d))
    }

    /// `hh:mm:ss(.s+)?`, where `24:00:00` is the end of the day.
    fn time(&mut self) -> bool {
        let (Some(h), true, Some(m), true, Some(sec)) = (
            self.two_digits(),
            self.eat(b':'),
            self.two_digits(),
            self.eat(b':'),
            self.two_digits(),
        ) else {
            return false;
        };
        let mut zero_fraction = true;
        if self.eat(b'.') {
            let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
            zero_fraction = self.0[..len].iter().all(|&b| b == b'0');
            self.0 = &self.0[len..];
            if len == 0 {
                return false;
            }
        }
        let end_of_day = h == 24 && m == 0 && sec == 0 && zero_fraction;
        (h < 24 && m < 60 && sec < 60) || end_of_day
    }

    /// `Z` or `±hh:mm` within ±14:00, or nothing.
    fn timezone(&mut self) -> bool {
        if self.eat(b'Z') {
            return true;
        }
        if !(self.eat(b'+') || self.eat(b'-')) {
            return true;
        }
        match (self.two_digits(), self.eat(b':'), self.two_digits()) {
            (Some(h), true, Some(m)) => m < 60 && h * 60 + m <= 14 * 60,
            _ => false,
        }
    }
}

/// `xs:base64Binary` as libxml2 checks it: characters outside the alphabet are ignored (RFC 2045
/// decoders skip them), the data is whole quanta, padding comes last and the bits it pads are zero.
pub(crate) fn is_base64(value: &str) -> bool {
    const PAD: u8 = 64;
    const OTHER: u8 = 255;
    // A table, as attachments make these the longest values by far.
    const SEXTETS: [u8; 256] = {
        let mut table = [OTHER; 256];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut i = 0;
        while i < 64 {
            table[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        table[b'=' as usize] = PAD;
        table
    };
    let (mut count, mut last, mut padding) = (0usize, 0u8, 0usize);
    for b in value.bytes() {
        match SEXTETS[b as usize] {
            OTHER => {}
            PAD => padding += 1,
            _ if padding > 0 => return false,
            s => (count, last) = (count + 1, s),
        }
    }
    match padding {
        0 => count % 4 == 0,
        1 => count % 4 == 3 && last & 0b11 == 0,
        2 => count % 4 == 2 && last & 0b1111 == 0,
        _ => false,
    }
}

/// `xs:anyURI` as libxml2 checks it: characters a URI cannot hold literally (spaces, non-ASCII and
/// the like) are allowed, and what remains must be an RFC 3986 URI reference.
pub(crate) fn is_any_uri(value: &str) -> bool {
    let escaped: Vec<u8> = value
        .bytes()
        .map(|b| match b {
            0..=31
            | 127..
            | b' '
            | b'<'
            | b'>'
            | b'"'
            | b'{'
            | b'}'
            | b'|'
            | b'\\'
            | b'^'
            | b'`'
            | b'\'' => b'_',
            b => b,
        })
        .collect();
    value.is_empty() || Uri(&escaped).absolute() || Uri(&escaped).relative()
}

/// A recursive-descent reader of RFC 3986, in the shape of libxml2's `xmlParse3986*`.
struct Uri<'a>(&'a [u8]);

impl Uri<'_> {
    fn peek(&self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }

    fn pct_encoded(&self) -> bool {
        self.peek(0) == b'%' && self.peek(1).is_ascii_hexdigit() && self.peek(2).is_ascii_hexdigit()
    }

    fn unreserved_or_sub_delim(&self) -> bool {
        let b = self.peek(0);
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
    }

    fn pchar(&self) -> bool {
        self.unreserved_or_sub_delim() || self.pct_encoded() || matches!(self.peek(0), b':' | b'@')
    }

    fn next(&mut self) {
        let len = if self.pct_encoded() { 3 } else { 1 };
        self.0 = &self.0[len.min(self.0.len())..];
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek(0) == byte;
        if found {
            self.0 = &self.0[1..];
        }
        found
    }

    fn absolute(mut self) -> bool {
        if !self.peek(0).is_ascii_alphabetic() {
            return false;
        }
        while self.peek(0).is_ascii_alphanumeric() || matches!(self.peek(0), b'+' | b'-' | b'.') {
            self.0 = &self.0[1..];
        }
        self.eat(b':') && self.hierarchy(false) && self.query_and_fragment()
    }

    fn relative(mut self) -> bool {
        self.hierarchy(true) && self.query_and_fragment()
    }

    /// `hier-part`, or with `no_scheme` the `relative-part`, whose first segment has no colon.
    fn hierarchy(&mut self, no_scheme: bool) -> bool {
        if self.0.starts_with(b"//") {
            self.0 = &self.0[2..];
            if !self.authority() {
                return false;
            }
        } else if self.pchar() {
            self.segment(no_scheme);
        }
        while self.eat(b'/') {
            self.segment(false);
        }
        true
    }

    fn segment(&mut self, no_colon: bool) {
        while self.pchar() && !(no_colon && self.peek(0) == b':') {
            self.next();
        }
    }

    fn authority(&mut self) -> bool {
        let start = self.0;
        while self.unreserved_or_sub_delim() || self.pct_encoded() || self.peek(0) == b':' {
            self.next();
        }
        if !self.eat(b'@') {
            self.0 = start;
        }
        if self.eat(b'[') {
            let Some(end) = self.0.iter().position(|&b| b == b']') else {
                return false;
            };
            self.0 = &self.0[end + 1..];
        } else {
            while self.unreserved_or_sub_delim() || self.pct_encoded() {
                self.next();
            }
        }
        if self.eat(b':') {
            let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
            let port = std::str::from_utf8(&self.0[..len])
                .ok()
                .and_then(|p| p.parse::<i32>().ok());
            self.0 = &self.0[len..];
            return port.is_some();
        }
        true
    }

    fn query_and_fragment(mut self) -> bool {
        if self.eat(b'?') {
            while self.pchar() || matches!(self.peek(0), b'/' | b'?') {
                self.next();
            }
        }
        if self.eat(b'#') {
            while self.pchar() || matches!(self.peek(0), b'/' | b'?' | b'[' | b']') {
                self.next();
            }
        }
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as `xmllint` (libxml2 2.9.14) judged it.
    #[test]
    fn date_times_agree_with_libxml2() {
        use DateKind::*;
        for (kind, value, valid) in [
            (DateTime, "2025-08-21T11:39:57", true),
            (DateTime, "2025-08-21T11:39:57.6815141Z", true),
            (DateTime, "2025-08-21T13:20:48+02:00", true),
            (DateTime, "2025-08-21T24:00:00", true),
            (DateTime, "2025-08-21T24:00:01", false),
            (DateTime, "2025-08-21T23:59:60", false),
            (DateTime, " 2025-08-21T11:39:57", false),
            (DateTime, "2025-02-29T00:00:00", false),
            (DateTime, "2024-02-29T00:00:00", true),
            (DateTime, "1900-02-29T00:00:00", false),
            (DateTime, "2000-02-29T00:00:00", true),
            (DateTime, "2025-04-31T00:00:00", false),
            (DateTime, "0000-01-01T00:00:00", false),
            (DateTime, "-0001-01-01T00:00:00", true),
            (DateTime, "12025-01-01T00:00:00", true),
            (DateTime, "02025-01-01T00:00:00", false),
            (DateTime, "2025-08-21T11:39", false),
            (DateTime, "2025-08-21", false),
            (DateTime, "2025-08-21T11:39:57+14:00", true),
            (DateTime, "2025-08-21T11:39:57-14:00", true),
            (DateTime, "2025-08-21T11:39:57+14:01", false),
            (DateTime, "2025-08-21T11:39:57+02:60", false),
            (DateTime, "2025-08-21T11:39:57+0200", false),
            (DateTime, "2025-08-21T11:39:57.", false),
            (DateTime, "2025-08-21T11:39:57z", false),
            (DateTime, "2025-8-21T11:39:57", false),
            (DateTime, "2025-13-01T00:00:00", false),
            (Date, "2025-08-21", true),
            (Date, "2025-08-21Z", true),
            (Date, "-2025-08-21", true),
            (Date, "+2025-08-21", false),
            (Date, "2025-08-21 ", false),
            (Date, "2025-08-21T", false),
            (Time, " 11:00:00", true),
            (Time, "11:00:00 ", false),
            (Time, "24:00:00.0", true),
            (Time, "24:00:00.1", false),
            (Time, "11:00", false),
            (Time, "11:00:00+13:59", true),
            (Time, "11:00:00+24:00", false),
            (GYear, "2025", true),
            (GYear, "999", false),
            (GYear, "-0000", false),
            (GYear, "10000", true),
            (GYear, "99999999999999999999", false),
            (GYearMonth, "2025-12Z", true),
            (GYearMonth, "2025-13", false),
            (GMonthDay, "--02-29", true),
            (GMonthDay, "--02-30", false),
            (GMonth, "--12", true),
            (GDay, "---31", true),
        ] {
            assert_eq!(is_date_time(kind, value), valid, "{kind:?} {value:?}");
        }
    }

    #[test]
    fn numbers_agree_with_libxml2() {
        for (value, valid) in [
            ("1", true),
            ("+.5", true),
            ("5.", true),
            (".", false),
            ("-", false),
            ("1e5", false),
        ] {
            assert_eq!(is_decimal(value), valid, "{value:?}");
        }
        for (value, valid) in [
            ("1e", true),
            ("1E+5", true),
            ("-INF", true),
            ("+INF", false),
            ("nan", false),
            ("e5", false),
            ("1e5.5", false),
            ("0x10", false),
            ("", false),
        ] {
            assert_eq!(is_double(value), valid, "{value:?}");
        }
        assert_eq!(integer("+0012"), Some((false, "12")));
        assert_eq!(integer("-0"), Some((true, "")));
        assert_eq!(integer("1.0"), None);
        assert_eq!(integer("+"), None);
    }

    #[test]
    fn base64_agrees_with_libxml2() {
        for (value, valid) in [
            ("QUJD", true),
            ("QUJ", false),
            ("QUI=", true),
            ("QUJ=", false),
            ("QQ==", true),
            ("QU==", false),
            ("Q===", false),
            ("!!QUJD!!", true),
            ("QU JD", true),
            ("QUJD=", false),
            ("QU==QUJD", false),
            ("", true),
            ("====", false),
            ("QUI=A", false),
            ("QUJDæ", true),
        ] {
            assert_eq!(is_base64(value), valid, "{value:?}");
        }
    }

    #[test]
    fn uris_agree_with_libxml2() {
        for (value, valid) in [
            ("http://x/y", true),
            ("tel:12345678", true),
            ("a b", true),
            ("%zz", false),
            ("%41", true),
            ("http://[::1]/", true),
            ("http://[bad/", false),
            ("#a#b", false),
            ("a[b", false),
            ("?x?y", true),
            ("::", false),
            (":a", false),
            ("a:", true),
            ("1a:b", false),
            ("http://a:b@c:99999/", true),
            ("http://a:port/", false),
            ("http://a:/", false),
            ("http://a:2147483648/", false),
            ("http://æøå", true),
            ("", true),
            ("\\\\server\\share", true),
            ("C:\\dir", true),
            ("//a//b", true),
            ("a%", false),
            ("[", false),
            ("urn:oid:2.16", true),
            ("http://x/%2", false),
            ("a#b%zz", false),
            ("http://user@[v1.x]/", true),
            ("a#[x]", true),
            ("a?[x]", false),
            ("http://a@b@c/", false),
            ("a/b:c", true),
            ("/a:b", true),
            ("http:", true),
            ("http://1.2.3.4:80", true),
            ("a:b:c", true),
        ] {
            assert_eq!(is_any_uri(value), valid, "{value:?}");
        }
    }

    #[test]
    fn names_and_whitespace() {
        assert!(is_ncname("a1") && is_ncname("_x") && is_ncname("æ"));
        assert!(!is_ncname("1a") && !is_ncname("a:b") && !is_ncname(""));
        assert!(is_name("a:b") && is_nmtoken("1a") && is_nmtoken("-") && !is_nmtoken("a b"));
        assert!(is_language("nb-NO") && !is_language("nb_NO"));
        assert_eq!(collapse("  a \t\n b  "), "a b");
        assert_eq!(collapse("a b"), "a b");
        assert_eq!(replace("a\tb"), "a b");
    }
}
