//! The tree both the schemas and the documents are read into: elements in document order with
//! resolved namespaces, the text of leaf elements and the line each element starts on.
//!
//! quick-xml checks tags and attribute syntax. What else a validator must not let through (one
//! root, legal characters and names, entity references, namespace bindings) is checked here, so
//! that everything after this module sees a namespace-well-formed document.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesDecl, BytesRef, BytesStart, Event};

use crate::lexical::{is_ncname, is_xml_whitespace};

pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// An interned namespace name; [`NO_NS`] is "no namespace".
pub(crate) type NsId = u32;
pub(crate) const NO_NS: NsId = 0;
const XML_NS_ID: NsId = 1;
const NONE: u32 = u32::MAX;

pub(crate) struct Document {
    /// In document order, so the root is element 0.
    pub elements: Vec<Element>,
    attributes: Vec<Attribute>,
    namespaces: Vec<Box<str>>,
    bindings: Vec<Binding>,
}

pub(crate) struct Element {
    pub ns: NsId,
    pub local: Box<str>,
    pub line: u32,
    pub parent: Option<u32>,
    pub children: Vec<u32>,
    /// Character data, kept only while the element has no child elements: text beside child
    /// elements is never a value, and dropping it keeps mixed content cheap.
    pub text: String,
    /// Any character data at all, even whitespace (an empty content type allows none).
    pub has_text: bool,
    /// Character data other than whitespace, or a CDATA section, which libxml2 never treats as
    /// ignorable whitespace.
    pub has_significant_text: bool,
    attributes: Range<u32>,
    /// The innermost prefix binding in scope, for prefixed names and QName-valued attributes.
    scope: u32,
    /// The default namespace in scope, kept apart because most names use it.
    default_ns: NsId,
}

pub(crate) struct Attribute {
    pub ns: NsId,
    pub local: Box<str>,
    pub value: String,
}

struct Binding {
    prefix: Box<str>,
    ns: NsId,
    outer: u32,
}

/// Why a document could not be read into a tree; validation cannot start.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub line: u32,
    pub message: String,
}

impl Document {
    /// Reads `bytes` (UTF-8 or ISO-8859-1, as the XML declaration says), refusing elements nested
    /// more than `max_depth` levels below the root.
    pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Document, ParseError> {
        let text = decode(bytes)?;
        if let Some(pos) = illegal_char(&text) {
            let c = text[pos..].chars().next().unwrap_or_default();
            return Err(ParseError {
                line: line_of(&text, pos),
                message: format!("character U+{:04X} is not allowed in XML", c as u32),
            });
        }
        let mut builder = Builder {
            doc: Document {
                // Typical messages have an element per 40 bytes and fewer attributes.
                elements: Vec::with_capacity(text.len() / 40),
                attributes: Vec::with_capacity(text.len() / 60),
                namespaces: vec!["".into(), XML_NS.into()],
                bindings: Vec::new(),
            },
            stack: Vec::new(),
            max_depth,
        };
        let mut reader = Reader::from_str(&text);
        reader.config_mut().check_comments = true;
        let mut lines = Lines {
            text: &text,
            pos: 0,
            line: 1,
        };
        loop {
            let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let fail = |line, message| Err(ParseError { line, message });
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                    return fail(lines.at(at), format!("not well-formed XML: {e}"));
                }
            };
            let line = lines.at(start);
            let step = match event {
                Event::Start(e) => builder.open(&e, line, true),
                Event::Empty(e) => builder.open(&e, line, false),
                Event::End(_) => {
                    builder.stack.pop();
                    Ok(())
                }
                Event::Text(t) => match t.xml10_content() {
                    Ok(s) if s.contains("]]>") => Err("']]>' is not allowed in text".into()),
                    Ok(s) => builder.text(&s, false),
                    Err(e) => Err(e.to_string()),
                },
                Event::CData(c) => match c.xml10_content() {
                    Ok(s) => builder.text(&s, true),
                    Err(e) => Err(e.to_string()),
                },
                Event::GeneralRef(_) if builder.stack.is_empty() => {
                    Err("references are not allowed outside the root element".into())
                }
                Event::GeneralRef(r) => {
                    reference(&r).and_then(|c| builder.text(c.encode_utf8(&mut [0; 4]), false))
                }
                Event::Decl(d) if start == 0 => declaration(&d),
                Event::Decl(_) => Err("the XML declaration must be at the very start".into()),
                // Entity declarations could expand without bound, and no health message has one.
                Event::DocType(_) => Err("DOCTYPE declarations are not accepted".into()),
                Event::Comment(_) | Event::PI(_) => Ok(()),
                Event::Eof => break,
            };
            if let Err(message) = step {
                return fail(line, message);
            }
        }
        let end = lines.at(text.len());
        if let Some(&open) = builder.stack.last() {
            let message = format!(
                "element '{}' is not closed",
                builder.doc.elements[open as usize].local
            );
            return Err(ParseError { line: end, message });
        }
        if builder.doc.elements.is_empty() {
            return Err(ParseError {
                line: end,
                message: "the document has no root element".into(),
            });
        }
        Ok(builder.doc)
    }

    pub fn ns(&self, id: NsId) -> &str {
        &self.namespaces[id as usize]
    }

    pub fn attributes(&self, element: &Element) -> &[Attribute] {
        &self.attributes[element.attributes.start as usize..element.attributes.end as usize]
    }

    pub fn attribute(&self, element: &Element, ns: &str, local: &str) -> Option<&str> {
        self.attributes(element)
            .iter()
            .find(|a| same(&a.local, local) && same(self.ns(a.ns), ns))
            .map(|a| a.value.as_str())
    }

    /// The namespace and local name of the QName `value` as written on `element`; an unprefixed
    /// name is in the default namespace, as XSD reads QName values.
    pub fn resolve_qname<'a>(
        &'a self,
        element: &Element,
        value: &'a str,
    ) -> Option<(&'a str, &'a str)> {
        let value = value.trim_matches(is_xml_whitespace);
        let (prefix, local) = value.split_once(':').unwrap_or(("", value));
        if !(prefix.is_empty() || is_ncname(prefix)) || !is_ncname(local) {
            return None;
        }
        let ns = if prefix.is_empty() {
            element.default_ns
        } else {
            self.lookup(element.scope, prefix)?
        };
        Some((self.ns(ns), local))
    }

    /// The namespace `prefix` (not empty) is bound to in `scope`.
    fn lookup(&self, mut scope: u32, prefix: &str) -> Option<NsId> {
        while scope != NONE {
            let binding = &self.bindings[scope as usize];
            if &*binding.prefix == prefix {
                return Some(binding.ns);
            }
            scope = binding.outer;
        }
        (prefix == "xml").then_some(XML_NS_ID)
    }

    fn intern(&mut self, ns: &str) -> NsId {
        match self.namespaces.iter().position(|n| &**n == ns) {
            Some(id) => id as NsId,
            None => {
                self.namespaces.push(ns.into());
                (self.namespaces.len() - 1) as NsId
            }
        }
    }
}

struct Builder {
    doc: Document,
    /// The open elements, innermost last.
    stack: Vec<u32>,
    max_depth: usize,
}

impl Builder {
    fn open(&mut self, start: &BytesStart, line: u32, has_end: bool) -> Result<(), String> {
        if self.stack.len() > self.max_depth {
            return Err(format!(
                "elements are nested more than {} levels below the root",
                self.max_depth
            ));
        }
        let parent = self.stack.last().map(|&p| &self.doc.elements[p as usize]);
        let mut scope = parent.map_or(NONE, |p| p.scope);
        let mut default_ns = parent.map_or(NO_NS, |p| p.default_ns);
        let parent = self.stack.last().copied();
        let mut attributes = Vec::new();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| format!("not well-formed XML: {e}"))?;
            let name = utf8(attribute.key.into_inner())?;
            let value = attribute_value(&attribute.value)?;
            let prefix = match name.split_once(':') {
                None if name == "xmlns" => Some(""),
                Some(("xmlns", prefix)) => Some(prefix),
                _ => None,
            };
            match prefix {
                Some(prefix) => match self.declare(prefix, &value)? {
                    Some(ns) if prefix.is_empty() => default_ns = ns,
                    Some(ns) => {
                        self.doc.bindings.push(Binding {
                            prefix: prefix.into(),
                            ns,
                            outer: scope,
                        });
                        scope = (self.doc.bindings.len() - 1) as u32;
                    }
                    None => {}
                },
                None => attributes.push((name, value)),
            }
        }
        let name = utf8(start.name().into_inner())?;
        let (ns, local) = self.resolve(scope, default_ns, name)?;
        let first = self.doc.attributes.len();
        for (name, value) in attributes {
            let (ns, local) = self.resolve(scope, NO_NS, name)?;
            let previous = &self.doc.attributes[first..];
            if previous.iter().any(|a| a.ns == ns && *a.local == *local) {
                return Err(format!("attribute '{name}' is given twice"));
            }
            self.doc.attributes.push(Attribute {
                ns,
                local: local.into(),
                value,
            });
        }
        let id = self.doc.elements.len() as u32;
        match parent {
            Some(p) => {
                let parent = &mut self.doc.elements[p as usize];
                if parent.children.is_empty() {
                    parent.text = String::new();
                }
                parent.children.push(id);
            }
            None if id > 0 => return Err("a document has exactly one root element".into()),
            None => {}
        }
        self.doc.elements.push(Element {
            ns,
            local: local.into(),
            line,
            parent,
            children: Vec::new(),
            text: String::new(),
            has_text: false,
            has_significant_text: false,
            attributes: first as u32..self.doc.attributes.len() as u32,
            scope,
            default_ns,
        });
        if has_end {
            self.stack.push(id);
        }
        Ok(())
    }

    /// Checks a namespace declaration; `None` when it binds nothing new (`xmlns:xml`).
    fn declare(&mut self, prefix: &str, ns: &str) -> Result<Option<NsId>, String> {
        let reserved = |what: &str| Err(format!("namespace declaration {what} is not allowed"));
        match (prefix, ns) {
            ("xml", XML_NS) => Ok(None),
            ("xml", _) | ("xmlns", _) => reserved(&format!("of prefix '{prefix}'")),
            (_, XML_NS | XMLNS_NS) => reserved(&format!("binding '{ns}'")),
            (p, "") if !p.is_empty() => reserved(&format!("undeclaring prefix '{p}'")),
            (p, _) if !p.is_empty() && !is_ncname(p) => {
                Err(format!("'{p}' is not a valid namespace prefix"))
            }
            _ => Ok(Some(self.doc.intern(ns))),
        }
    }

    /// Splits a tag or attribute name into its namespace and local name; unprefixed, it is in
    /// `unprefixed` (the default namespace for elements, none for attributes).
    fn resolve<'n>(
        &self,
        scope: u32,
        unprefixed: NsId,
        name: &'n str,
    ) -> Result<(NsId, &'n str), String> {
        let (prefix, local) = name.split_once(':').unwrap_or(("", name));
        if !(prefix.is_empty() || is_ncname(prefix)) || !is_ncname(local) {
            return Err(format!("'{name}' is not a valid XML name"));
        }
        if prefix.is_empty() {
            return Ok((unprefixed, local));
        }
        match self.doc.lookup(scope, prefix) {
            Some(ns) => Ok((ns, local)),
            None => Err(format!(
                "namespace prefix '{prefix}' of '{name}' is not declared"
            )),
        }
    }

    fn text(&mut self, text: &str, cdata: bool) -> Result<(), String> {
        let significant = cdata || !text.chars().all(is_xml_whitespace);
        let Some(&open) = self.stack.last() else {
            return match significant {
                true => Err("text is not allowed outside the root element".into()),
                false => Ok(()),
            };
        };
        let element = &mut self.doc.elements[open as usize];
        element.has_text |= cdata || !text.is_empty();
        element.has_significant_text |= significant;
        if element.children.is_empty() {
            element.text.push_str(text);
        }
        Ok(())
    }
}

/// Checks the version and standalone values of the XML declaration (its encoding was read
/// before parsing).
fn declaration(declaration: &BytesDecl) -> Result<(), String> {
    let version = declaration
        .version()
        .map_err(|e| format!("bad XML declaration: {e}"))?;
    // libxml2 takes `1.` and any digits (warning about other than 1.0) and refuses the rest.
    let version_ok = version
        .strip_prefix(b"1.")
        .is_some_and(|v| v.iter().all(u8::is_ascii_digit));
    let standalone = declaration
        .standalone()
        .map(|s| s.map_err(|e| e.to_string()));
    let standalone_ok = matches!(
        standalone.as_ref().map(|s| s.as_deref()),
        None | Some(Ok(b"yes" | b"no"))
    );
    match (version_ok, standalone_ok) {
        (true, true) => Ok(()),
        (false, _) => Err(format!(
            "XML version '{}' is not 1.x",
            String::from_utf8_lossy(&version)
        )),
        (_, false) => Err("standalone in the XML declaration is neither 'yes' nor 'no'".into()),
    }
}

/// The character an entity or character reference in text stands for. Only the predefined
/// entities exist: documents have no DTD.
fn reference(reference: &BytesRef) -> Result<char, String> {
    let name = utf8(reference)?;
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ if reference.is_char_ref() => match reference.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => c,
            _ => return Err(format!("'&{name};' is not a valid character reference")),
        },
        _ => return Err(format!("entity '&{name};' is not defined")),
    };
    Ok(c)
}

/// An attribute value as XML 1.0 §3.3.3 delivers it: literal tabs and line ends become spaces
/// (CR LF as one), then references are replaced.
fn attribute_value(raw: &[u8]) -> Result<String, String> {
    let raw = utf8(raw)?;
    if raw.contains('<') {
        return Err("'<' is not allowed in attribute values".into());
    }
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                value.push(' ');
            }
            '\n' | '\t' => value.push(' '),
            c => value.push(c),
        }
    }
    if !value.contains('&') {
        return Ok(value);
    }
    match quick_xml::escape::unescape(&value) {
        Ok(unescaped) if unescaped.chars().all(is_xml_char) => Ok(unescaped.into_owned()),
        Ok(_) => {
            Err("a character reference in an attribute value is not a legal XML character".into())
        }
        Err(e) => Err(format!("bad reference in attribute value: {e}")),
    }
}

/// String equality for names, inlined: the library comparison calls `memcmp` even for names of
/// one letter, and name comparisons are most of what validation does.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(a, b)| a == b)
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "markup splits a UTF-8 sequence".to_string())
}

/// The document as text, decoded as its XML declaration says.
fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let refuse = |message: String| ParseError { line: 1, message };
    if [&b"\xFE\xFF"[..], b"\xFF\xFE", b"\0<", b"<\0"]
        .iter()
        .any(|bom| bytes.starts_with(bom))
    {
        return Err(refuse(
            "UTF-16 documents are not supported; use UTF-8".into(),
        ));
    }
    let encoding = declared_encoding(bytes).map(|e| e.to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("utf-8" | "utf8") => {
            std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
                let line = line_of_bytes(&bytes[..e.valid_up_to()]);
                ParseError {
                    line,
                    message: "the document is not valid UTF-8".into(),
                }
            })
        }
        Some("us-ascii" | "ascii") => match bytes.iter().position(|b| !b.is_ascii()) {
            None => Ok(Cow::Borrowed(
                std::str::from_utf8(bytes).unwrap_or_default(),
            )),
            Some(at) => Err(ParseError {
                line: line_of_bytes(&bytes[..at]),
                message: "a byte outside US-ASCII in a document declared US-ASCII".into(),
            }),
        },
        Some("iso-8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1") => {
            Ok(Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()))
        }
        Some(other) => Err(refuse(format!(
            "encoding '{other}' is not supported; use UTF-8 or ISO-8859-1"
        ))),
    }
}

/// The `encoding` of the XML declaration, if there is one.
fn declared_encoding(bytes: &[u8]) -> Option<&str> {
    let declaration = bytes.strip_prefix(b"<?xml")?;
    let end = declaration.windows(2).position(|w| w == b"?>")?;
    let declaration = &declaration[..end];
    let at = declaration.windows(8).position(|w| w == b"encoding")?;
    let rest = declaration[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let (&quote, rest) = rest.split_first()?;
    let len = rest.iter().position(|&b| b == quote)?;
    std::str::from_utf8(&rest[..len]).ok()
}

/// Where `text` has a character that is not an XML 1.0 `Char`. A byte scan, as this runs over
/// every document: the only ones are ASCII controls and U+FFFE/U+FFFF (`EF BF BE`/`EF BF BF`),
/// and blocks without a control or an `EF` byte are passed over whole.
fn illegal_char(text: &str) -> Option<usize> {
    const BLOCK: usize = 64;
    let bytes = text.as_bytes();
    let suspect = |b: u8| (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r') | (b == 0xEF);
    let illegal = |i: usize| match bytes[i] {
        0xEF => matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])),
        b => b < 0x20,
    };
    bytes.chunks(BLOCK).enumerate().find_map(|(n, block)| {
        let start = n * BLOCK;
        if !block.iter().fold(false, |any, &b| any | suspect(b)) {
            return None;
        }
        (start..start + block.len()).find(|&i| suspect(bytes[i]) && illegal(i))
    })
}

/// XML 1.0 `Char`; Rust strings hold no surrogates.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{FFFD}' | '\u{10000}'..) && c != '\u{FFFE}'
}

fn line_of(text: &str, pos: usize) -> u32 {
    line_of_bytes(&text.as_bytes()[..pos])
}

fn line_of_bytes(bytes: &[u8]) -> u32 {
    // A fold over fixed-size blocks, which the compiler vectorizes; this runs over every document.
    let newlines = |block: &[u8]| block.iter().fold(0u32, |n, &b| n + u32::from(b == b'\n'));
    let blocks = bytes.chunks(u16::MAX as usize);
    blocks.fold(1u32, |line, block| line.saturating_add(newlines(block)))
}

/// Line numbers of positions met in increasing order, counting each newline once.
struct Lines<'t> {
    text: &'t str,
    pos: usize,
    line: u32,
}

impl Lines<'_> {
    fn at(&mut self, pos: usize) -> u32 {
        let pos = pos.min(self.text.len());
        if pos < self.pos {
            return line_of_bytes(&self.text.as_bytes()[..pos]);
        }
        let newlines = line_of_bytes(&self.text.as_bytes()[self.pos..pos]) - 1;
        self.line = self.line.saturating_add(newlines);
        self.pos = pos;
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Document, String> {
        Document::parse(text.as_bytes(), 8).map_err(|e| format!("{}: {}", e.line, e.message))
    }

    #[test]
    fn resolves_namespaces_text_and_lines() {
        let doc = parse("<?xml version='1.0'?>\n<a xmlns='urn:a' xmlns:b='urn:b'>\n <b:c x='1&#10;2' b:y='&lt;'>t&amp;u</b:c>\n</a>").unwrap();
        let (a, c) = (&doc.elements[0], &doc.elements[1]);
        assert_eq!((doc.ns(a.ns), &*a.local, a.line), ("urn:a", "a", 2));
        assert_eq!(
            (doc.ns(c.ns), &*c.local, c.line, c.text.as_str()),
            ("urn:b", "c", 3, "t&u")
        );
        assert_eq!(doc.attribute(c, "", "x"), Some("1\n2"));
        assert_eq!(doc.attribute(c, "urn:b", "y"), Some("<"));
        assert!(a.has_text && !a.has_significant_text && a.text.is_empty());
        assert_eq!(doc.resolve_qname(c, "b:t"), Some(("urn:b", "t")));
        assert_eq!(doc.resolve_qname(c, "t"), Some(("urn:a", "t")));
        assert_eq!(doc.resolve_qname(c, "q:t"), None);
    }

    #[test]
    fn decodes_latin1_as_declared() {
        let doc = Document::parse(
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xf8</a>",
            8,
        )
        .unwrap();
        assert_eq!(doc.elements[0].text, "\u{f8}");
    }

    #[test]
    fn refuses_what_is_not_namespace_well_formed() {
        for (text, expected) in [
            ("<a>", "not closed"),
            ("<a></b>", "not well-formed"),
            ("<a/><b/>", "exactly one root"),
            ("<a/>x", "outside the root"),
            ("<a>&x;</a>", "not defined"),
            ("<a>&#1;</a>", "character reference"),
            ("<a>\u{1}</a>", "U+0001"),
            ("<a b='<'/>", "'<'"),
            ("<a b='1' b='2'/>", "not well-formed"),
            (
                "<a xmlns:p='urn:x' xmlns:q='urn:x' p:b='1' q:b='2'/>",
                "twice",
            ),
            ("<p:a/>", "not declared"),
            ("<a xmlns:p=''/>", "undeclaring"),
            ("<1a/>", "valid XML name"),
            ("<!DOCTYPE a><a/>", "DOCTYPE"),
            ("<a>]]></a>", "']]>'"),
            ("<?xml version='2.0'?><a/>", "not 1.x"),
            ("<?xml version='1.0'?>&#32;<a/>", "outside the root"),
            ("<?xml version='1.0' standalone='maybe'?><a/>", "standalone"),
            ("<!-- a -- b --><a/>", "not well-formed"),
            (
                "<a><a><a><a><a><a><a><a><a><a/></a></a></a></a></a></a></a></a></a>",
                "more than 8 levels",
            ),
            ("", "no root"),
        ] {
            let error = parse(text).err().unwrap_or_default();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let nine_deep = "<a><a><a><a><a><a><a><a><a/></a></a></a></a></a></a></a></a>";
        assert!(parse(nine_deep).is_ok());
        let late = format!("<a>{}\u{FFFF}</a>", "x\n".repeat(100));
        assert_eq!(
            parse(&late).err().unwrap_or_default(),
            "101: character U+FFFF is not allowed in XML"
        );
        let latin = Document::parse(b"<?xml version='1.0' encoding='UTF-16'?><a/>", 8);
        assert!(latin.is_err_and(|e| e.message.contains("not supported")));
    }
}
