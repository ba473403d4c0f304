//! A namespace-aware element tree over quick-xml, just enough to read MsgHead and AppRec: the
//! documents are small (the payload, if large, is one text node) and read once.

use quick_xml::{
    NsReader,
    events::Event,
    name::{Namespace, ResolveResult},
};

/// Nesting deeper than this is refused: no health message is near it, and the parser's callers
/// recurse over the tree.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The namespace URI, empty when the element has none.
    pub ns: String,
    pub name: String,
    /// Attributes without a namespace (the only kind these standards use), by local name.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The element's own text, concatenated.
    pub text: String,
}

/// Why a document is not well-formed XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotXml(pub String);

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The descendant at `path` of child names, taking the first match at each step.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text of the child `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The `V` attribute of the child `name` (a KITH code: CS or CV).
    pub fn code_of(&self, name: &str) -> Option<&str> {
        self.child(name).and_then(|c| c.attr("V")).map(str::trim)
    }
}

/// Parses `document` (UTF-8) into its root element.
pub fn parse(document: &[u8]) -> Result<Element, NotXml> {
    let text = std::str::from_utf8(document)
        .map_err(|e| NotXml(format!("the document is not UTF-8: {e}")))?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let position = reader.buffer_position();
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| NotXml(format!("at byte {position}: {e}")))?;
        let ns = match resolved {
            ResolveResult::Bound(Namespace(ns)) => String::from_utf8_lossy(ns).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(prefix) => {
                return Err(NotXml(format!(
                    "at byte {position}: undeclared namespace prefix {}",
                    String::from_utf8_lossy(&prefix)
                )));
            }
        };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(NotXml(format!(
                    "at byte {position}: content after the root element"
                )));
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(NotXml(format!(
                        "elements nest deeper than {MAX_DEPTH} levels"
                    )));
                }
                let mut element = Element {
                    ns,
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    attrs: Vec::new(),
                    children: Vec::new(),
                    text: String::new(),
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| NotXml(format!("at byte {position}: {e}")))?;
                    let (attr_ns, local) = reader.resolve_attribute(attr.key);
                    if !matches!(attr_ns, ResolveResult::Unbound) {
                        continue;
                    }
                    let value = attr
                        .unescape_value()
                        .map_err(|e| NotXml(format!("at byte {position}: {e}")))?;
                    element.attrs.push((
                        String::from_utf8_lossy(local.as_ref()).into_owned(),
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| {
                    NotXml(format!("at byte {position}: an end tag with no start"))
                })?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let text = text
                    .decode()
                    .map_err(|e| NotXml(format!("at byte {position}: {e}")))?;
                append_text(&mut stack, &text, position)?;
            }
            Event::CData(data) => {
                let text = data
                    .decode()
                    .map_err(|e| NotXml(format!("at byte {position}: {e}")))?;
                append_text(&mut stack, &text, position)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match &*reference {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            return Err(NotXml(format!(
                                "at byte {position}: undeclared entity &{};",
                                String::from_utf8_lossy(other)
                            )));
                        }
                    },
                    Err(e) => return Err(NotXml(format!("at byte {position}: {e}"))),
                };
                append_text(&mut stack, resolved.encode_utf8(&mut [0; 4]), position)?;
            }
            Event::DocType(_) => {
                // Entities a DTD could declare are how XML bombs work; these standards have none.
                return Err(NotXml("a DOCTYPE is not allowed".into()));
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(NotXml(format!(
            "the document ends inside <{}>",
            stack.last().map(|e| e.name.as_str()).unwrap_or_default()
        )));
    }
    root.ok_or_else(|| NotXml("the document has no root element".into()))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn append_text(stack: &mut [Element], text: &str, position: u64) -> Result<(), NotXml> {
    match stack.last_mut() {
        Some(element) => {
            element.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(NotXml(format!(
            "at byte {position}: text outside the root element"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_namespaces_attributes_and_references() {
        let root = parse(
            br#"<?xml version="1.0" encoding="UTF-8"?>
            <a:R xmlns:a="urn:a" xmlns="urn:b" V="x &amp; y"><C>1 &lt; 2 &#65;</C><D/></a:R>"#,
        )
        .unwrap();
        assert_eq!((root.ns.as_str(), root.name.as_str()), ("urn:a", "R"));
        assert_eq!(root.attr("V"), Some("x & y"));
        assert_eq!(root.child("C").unwrap().ns, "urn:b");
        assert_eq!(root.text_of("C"), Some("1 < 2 A"));
        assert!(root.child("D").is_some());
    }

    #[test]
    fn refuses_what_is_not_well_formed() {
        for bad in [
            &b"not xml"[..],
            b"<a><b></a>",
            b"<a>",
            b"<a/><b/>",
            b"<p:a/>",
            b"<a>&bomb;</a>",
            b"<!DOCTYPE a [<!ENTITY x 'y'>]><a/>",
            b"\xff\xfe<a/>",
            b"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).unwrap_err().0.contains("nest"));
    }
}
