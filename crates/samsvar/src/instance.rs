//! Walking a document against the schema set: each element against its declaration's type,
//! each run of children against its parent's content model. Every problem is recorded and the
//! walk goes on, so one pass reports all of them.

use rustc_hash::FxHashSet;

use crate::Problem;
use crate::content::{Automaton, StateId};
use crate::model::{
    ANY_TYPE, AttributeDecl, AttributeUse, ComplexType, Content, ElemId, ElementDecl, Leaf,
    Namespaces, Process, SchemaSet, TypeDef, TypeId, ValueConstraint, Wildcard,
};
use crate::types;
use crate::xml::{Attribute, Document, Element, same};

const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// How much of a bad value a message quotes.
const QUOTE_CHARS: usize = 60;

/// Validates the document whose root `root` declares.
pub(crate) fn validate(set: &SchemaSet, doc: &Document, root: ElemId) -> Vec<Problem> {
    let mut walk = Walk {
        set,
        doc,
        ids: FxHashSet::default(),
        problems: Vec::new(),
    };
    walk.element(0, Some(&set.elements[root as usize]));
    walk.problems
}

struct Walk<'a> {
    set: &'a SchemaSet,
    doc: &'a Document,
    /// The ID values seen so far, which must be unique.
    ids: FxHashSet<String>,
    problems: Vec<Problem>,
}

impl<'a> Walk<'a> {
    /// Validates `el` against `decl`, or as `xs:anyType` where a lax wildcard has none.
    fn element(&mut self, el: u32, decl: Option<&'a ElementDecl>) {
        let e = &self.doc.elements[el as usize];
        let ty = self.xsi_type(el, decl.map_or(ANY_TYPE, |d| d.ty));
        if self.doc.attribute(e, XSI_NS, "nil").is_some() {
            self.problem(
                el,
                Some("nil"),
                e.line,
                "xsi:nil is not allowed: the element is not nillable".into(),
            );
        }
        let value = decl.and_then(|d| d.value.as_ref());
        match &self.set.types[ty as usize] {
            TypeDef::Simple(_) => {
                self.attributes(el, &[], None);
                self.simple_content(el, ty, value);
            }
            TypeDef::Complex(complex) => {
                self.attributes(el, &complex.attributes, complex.attribute_wildcard.as_ref());
                match &complex.content {
                    Content::Empty => {
                        if let Some(&child) = e.children.first() {
                            let message = format!(
                                "element {} is not allowed: {} must be empty",
                                self.local(child),
                                e.local
                            );
                            self.problem(child, None, self.line(child), message);
                        } else if e.has_text {
                            let message = format!(
                                "text is not allowed: {} must be empty (it has attributes only)",
                                e.local
                            );
                            self.problem(el, None, e.line, message);
                        }
                    }
                    Content::Simple(simple) => self.simple_content(el, *simple, value),
                    Content::Elements { model, mixed } => {
                        if !mixed && e.has_significant_text {
                            let message = format!(
                                "text is not allowed in {}, which holds only elements",
                                e.local
                            );
                            self.problem(el, None, e.line, message);
                        }
                        self.children(el, model);
                    }
                }
            }
        }
    }

    /// The type `xsi:type` puts in place of the declared one, if it may.
    fn xsi_type(&mut self, el: u32, declared: TypeId) -> TypeId {
        let e = &self.doc.elements[el as usize];
        let Some(value) = self.doc.attribute(e, XSI_NS, "type") else {
            return self.concrete(el, declared);
        };
        let refuse = |walk: &mut Self, why: String| {
            walk.problem(
                el,
                Some("type"),
                e.line,
                format!("xsi:type '{value}' {why}"),
            );
            declared
        };
        let Some((ns, local)) = self.doc.resolve_qname(e, value) else {
            return refuse(self, "is not a QName with a declared prefix".into());
        };
        let Some(ty) = self.set.global_type(ns, local) else {
            return refuse(self, "names a type this validator does not know".into());
        };
        if !self.set.derives_from(ty, declared) {
            let why = format!(
                "is not derived from {}, the declared type",
                self.set.type_name(declared)
            );
            return refuse(self, why);
        }
        self.concrete(el, ty)
    }

    /// `ty`, after a problem if it is abstract and so cannot be an element's type.
    fn concrete(&mut self, el: u32, ty: TypeId) -> TypeId {
        if let TypeDef::Complex(ComplexType {
            is_abstract: true, ..
        }) = &self.set.types[ty as usize]
        {
            let message = format!(
                "type {} is abstract: xsi:type must name a type derived from it",
                self.set.type_name(ty)
            );
            self.problem(el, None, self.line(el), message);
        }
        ty
    }

    fn simple_content(&mut self, el: u32, ty: TypeId, constraint: Option<&ValueConstraint>) {
        let e = &self.doc.elements[el as usize];
        if let Some(&child) = e.children.first() {
            let message = format!(
                "element {} is not allowed: {} holds a value of {}",
                self.local(child),
                e.local,
                self.set.type_name(ty)
            );
            self.problem(child, None, self.line(child), message);
            return;
        }
        // An empty element takes the default or fixed value.
        let value = match constraint {
            Some(ValueConstraint::Default(v) | ValueConstraint::Fixed(v)) if !e.has_text => {
                v.as_str()
            }
            _ => e.text.as_str(),
        };
        if let Some(message) = self.value(ty, value, constraint) {
            self.problem(el, None, e.line, message);
        }
    }

    /// What is wrong with `value` as a `ty` under `constraint`, or `None`; records it if an ID.
    fn value(
        &mut self,
        ty: TypeId,
        value: &str,
        constraint: Option<&ValueConstraint>,
    ) -> Option<String> {
        let normalized = match types::check(self.set, ty, value) {
            Ok(normalized) => normalized,
            Err(why) => return Some(format!("value {} {why}", quote(value))),
        };
        if let Some(ValueConstraint::Fixed(fixed)) = constraint {
            let fixed_normalized =
                types::check(self.set, ty, fixed).unwrap_or_else(|_| fixed.into());
            if fixed_normalized != normalized {
                return Some(format!(
                    "value {} is not the fixed value {}",
                    quote(value),
                    quote(fixed)
                ));
            }
        }
        if types::is_id(self.set, ty) && !self.ids.insert(normalized.to_string()) {
            return Some(format!("ID {} is not unique in the document", quote(value)));
        }
        None
    }

    fn attributes(&mut self, el: u32, uses: &'a [AttributeUse], wildcard: Option<&'a Wildcard>) {
        let e = &self.doc.elements[el as usize];
        for attribute in self.doc.attributes(e) {
            let ns = self.doc.ns(attribute.ns);
            let local = &*attribute.local;
            if ns == XSI_NS {
                if !matches!(
                    local,
                    "type" | "nil" | "schemaLocation" | "noNamespaceSchemaLocation"
                ) {
                    self.problem(
                        el,
                        Some(local),
                        e.line,
                        format!("attribute xsi:{local} is not allowed"),
                    );
                }
                continue;
            }
            if let Some(found) = uses
                .iter()
                .find(|u| same(&u.decl.name.local, local) && same(&u.decl.name.ns, ns))
            {
                self.attribute_value(el, attribute, &found.decl);
                continue;
            }
            match wildcard {
                Some(wildcard) if wildcard.allows(ns) => {
                    match (wildcard.process, self.set.global_attribute(ns, local)) {
                        (Process::Skip, _) | (Process::Lax, None) => {}
                        (_, Some(decl)) => self.attribute_value(el, attribute, decl),
                        (Process::Strict, None) => {
                            let message = format!(
                                "attribute {} has no declaration",
                                self.set.display(ns, local)
                            );
                            self.problem(el, Some(local), e.line, message);
                        }
                    }
                }
                _ => {
                    let message = format!(
                        "attribute {} is not allowed on {}",
                        self.set.display(ns, local),
                        e.local
                    );
                    self.problem(el, Some(local), e.line, message);
                }
            }
        }
        for required in uses.iter().filter(|u| u.required) {
            let name = &required.decl.name;
            if self.doc.attribute(e, &name.ns, &name.local).is_none() {
                let message = format!("required attribute {} is missing", name.local);
                self.problem(el, Some(&name.local), e.line, message);
            }
        }
    }

    fn attribute_value(&mut self, el: u32, attribute: &Attribute, decl: &AttributeDecl) {
        if let Some(message) = self.value(decl.ty, &attribute.value, decl.value.as_ref()) {
            self.problem(el, Some(&attribute.local), self.line(el), message);
        }
    }

    /// Runs the children of `el` through its content model. A child the model does not expect
    /// is reported and skipped; if it would fit after elements that are missing, those are
    /// reported instead and the model moves on past them.
    fn children(&mut self, el: u32, model: &'a Automaton) {
        let mut state = Automaton::START;
        // Elements reported missing, and the child they were missing before: one that turns up
        // later is out of order rather than unknown.
        let mut missed: Vec<(&'a Leaf, &'a str)> = Vec::new();
        for &child in &self.doc.elements[el as usize].children {
            let c = &self.doc.elements[child as usize];
            if let Some((leaf, next)) = model.step(state, |leaf| self.matches(leaf, c)) {
                state = next;
                self.matched(child, leaf);
                continue;
            }
            let fits = |s: StateId| model.step(s, |leaf| self.matches(leaf, c)).is_some();
            match model.shortest_path(state, fits) {
                Some((missing, at)) => {
                    let message = format!("{} missing before {}", self.missing(&missing), c.local);
                    self.problem(el, None, c.line, message);
                    missed.extend(missing.into_iter().map(|leaf| (leaf, &*c.local)));
                    if let Some((leaf, next)) = model.step(at, |leaf| self.matches(leaf, c)) {
                        state = next;
                        self.matched(child, leaf);
                    }
                }
                None => {
                    let message = match missed.iter().find(|(leaf, _)| self.matches(leaf, c)) {
                        Some((_, before)) => format!(
                            "element {} is out of order: it belongs before {before}",
                            c.local
                        ),
                        None => self.unexpected(c, model, state),
                    };
                    self.problem(child, None, c.line, message);
                }
            }
        }
        if !model.accepts(state)
            && let Some((missing, _)) = model.shortest_path(state, |s| model.accepts(s))
        {
            let e = &self.doc.elements[el as usize];
            let place = match e.children.last() {
                Some(&last) => format!("after {}", self.local(last)),
                None => format!("in {}", e.local),
            };
            self.problem(
                el,
                None,
                e.line,
                format!("{} missing {place}", self.missing(&missing)),
            );
        }
    }

    fn matches(&self, leaf: &Leaf, child: &Element) -> bool {
        match leaf {
            Leaf::Element(id) => {
                let name = &self.set.elements[*id as usize].name;
                same(&name.local, &child.local) && same(&name.ns, self.doc.ns(child.ns))
            }
            Leaf::Any(wildcard) => wildcard.allows(self.doc.ns(child.ns)),
        }
    }

    /// Validates a child by what it matched in its parent's model.
    fn matched(&mut self, child: u32, leaf: &'a Leaf) {
        let c = &self.doc.elements[child as usize];
        let (ns, local) = (self.doc.ns(c.ns), &*c.local);
        match leaf {
            Leaf::Element(id) => self.element(child, Some(&self.set.elements[*id as usize])),
            Leaf::Any(wildcard) => match (wildcard.process, self.set.global_element(ns, local)) {
                (Process::Skip, _) => {}
                (_, Some(id)) => self.element(child, Some(&self.set.elements[id as usize])),
                // What a lax wildcard does not know is checked as xs:anyType: its children still
                // are, where they are known.
                (Process::Lax, None) => self.element(child, None),
                (Process::Strict, None) => {
                    let message = match self.set.namespaces.contains_key(ns) {
                        true => format!(
                            "no element {} is declared in its namespace",
                            self.set.display(ns, local)
                        ),
                        false => format!(
                            "element {local} is in {}, which is not known here; known namespaces: {}",
                            namespace(ns),
                            self.set.target_namespaces().join(", ")
                        ),
                    };
                    self.problem(child, None, c.line, message);
                }
            },
        }
    }

    fn missing(&self, leaves: &[&Leaf]) -> String {
        let names: Vec<String> = leaves.iter().map(|leaf| self.describe(leaf)).collect();
        match &names[..] {
            [one] => format!("required element {one} is"),
            _ => format!("required elements {} are", names.join(", ")),
        }
    }

    /// Why `child` cannot be where it is: nothing more is allowed, the name is right but the
    /// namespace wrong, or something else was expected.
    fn unexpected(&self, child: &Element, model: &Automaton, state: StateId) -> String {
        let ns = self.doc.ns(child.ns);
        let expected: Vec<&Leaf> = model.expected(state).collect();
        let same_name = expected.iter().find_map(|leaf| match leaf {
            Leaf::Element(id) => {
                Some(&self.set.elements[*id as usize].name).filter(|n| *n.local == *child.local)
            }
            Leaf::Any(_) => None,
        });
        if let Some(name) = same_name {
            let (is, expected) = (namespace(ns), namespace(&name.ns));
            return format!(
                "element {} is in {is}, but {expected} is expected",
                child.local
            );
        }
        let names: Vec<String> = expected.iter().map(|leaf| self.describe(leaf)).collect();
        match &names[..] {
            [] => format!(
                "element {} is not expected: no more elements are allowed here",
                child.local
            ),
            _ => format!(
                "element {} is not expected here; expected {}",
                child.local,
                names.join(" or ")
            ),
        }
    }

    fn describe(&self, leaf: &Leaf) -> String {
        match leaf {
            Leaf::Element(id) => self.set.elements[*id as usize].name.local.to_string(),
            Leaf::Any(Wildcard {
                namespaces: Namespaces::Any,
                ..
            }) => "any element".into(),
            Leaf::Any(Wildcard {
                namespaces: Namespaces::Not(ns),
                ..
            }) => format!("an element not in namespace '{ns}'"),
            Leaf::Any(Wildcard {
                namespaces: Namespaces::List(list),
                ..
            }) => {
                format!("an element in namespace '{}'", list.join("' or '"))
            }
        }
    }

    fn local(&self, el: u32) -> &'a str {
        &self.doc.elements[el as usize].local
    }

    fn line(&self, el: u32) -> u32 {
        self.doc.elements[el as usize].line
    }

    fn problem(&mut self, el: u32, attribute: Option<&str>, line: u32, message: String) {
        let mut path = self.path(el);
        if let Some(attribute) = attribute {
            path.push_str("/@");
            path.push_str(attribute);
        }
        self.problems.push(Problem {
            path,
            line,
            message,
        });
    }

    /// `/MsgHead/Document[2]/RefDoc`: local names, with a position where siblings share a name.
    fn path(&self, el: u32) -> String {
        let mut chain = vec![el];
        while let Some(parent) = self.doc.elements[*chain.last().unwrap_or(&el) as usize].parent {
            chain.push(parent);
        }
        let mut path = String::new();
        for &id in chain.iter().rev() {
            let e = &self.doc.elements[id as usize];
            path.push('/');
            path.push_str(&e.local);
            if let Some(parent) = e.parent {
                let siblings = &self.doc.elements[parent as usize].children;
                let namesake = |s: &&u32| {
                    let s = &self.doc.elements[**s as usize];
                    s.local == e.local && s.ns == e.ns
                };
                if siblings.iter().filter(namesake).count() > 1 {
                    let position = siblings
                        .iter()
                        .take_while(|&&s| s != id)
                        .filter(namesake)
                        .count()
                        + 1;
                    path.push_str(&format!("[{position}]"));
                }
            }
        }
        path
    }
}

fn namespace(ns: &str) -> String {
    match ns {
        "" => "no namespace".into(),
        ns => format!("namespace '{ns}'"),
    }
}

/// A value as messages quote it: at most [`QUOTE_CHARS`] characters, control characters escaped.
fn quote(value: &str) -> String {
    let mut quoted: String = value
        .chars()
        .take(QUOTE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(QUOTE_CHARS).is_some() {
        quoted.push('…');
    }
    format!("'{quoted}'")
}
