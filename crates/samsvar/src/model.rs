//! The compiled schema set: the components of every embedded schema, in arenas indexed by id so
//! that recursive structures (an `Organisation` inside an `Organisation`) are plain numbers.

use regex::Regex;
use rustc_hash::FxHashMap;

use crate::content::Automaton;
use crate::types::Builtin;

pub(crate) type TypeId = u32;
pub(crate) type ElemId = u32;

/// `xs:anyType`, the root of every derivation; the built-in simple types follow it.
pub(crate) const ANY_TYPE: TypeId = 0;
pub(crate) const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct QName {
    /// Empty for no namespace.
    pub ns: Box<str>,
    pub local: Box<str>,
}

pub(crate) struct SchemaSet {
    pub types: Vec<TypeDef>,
    pub elements: Vec<ElementDecl>,
    pub namespaces: FxHashMap<Box<str>, Globals>,
    /// The prefix each namespace is shown with in messages.
    pub prefixes: Vec<(Box<str>, &'static str)>,
}

/// The named top-level components of one target namespace.
#[derive(Default)]
pub(crate) struct Globals {
    pub elements: FxHashMap<Box<str>, ElemId>,
    pub types: FxHashMap<Box<str>, TypeId>,
    pub attributes: FxHashMap<Box<str>, AttributeDecl>,
}

pub(crate) struct ElementDecl {
    pub name: QName,
    pub ty: TypeId,
    pub value: Option<ValueConstraint>,
}

#[derive(Clone)]
pub(crate) struct AttributeDecl {
    pub name: QName,
    pub ty: TypeId,
    pub value: Option<ValueConstraint>,
}

#[derive(Clone)]
pub(crate) struct AttributeUse {
    pub decl: AttributeDecl,
    pub required: bool,
}

#[derive(Clone)]
pub(crate) enum ValueConstraint {
    /// Stands in for an empty element; never checked against what is there.
    Default(String),
    /// Stands in for an empty element, and anything there must equal it.
    Fixed(String),
}

pub(crate) enum TypeDef {
    Simple(SimpleType),
    Complex(ComplexType),
}

pub(crate) struct SimpleType {
    pub name: Option<QName>,
    pub base: TypeId,
    pub variety: Variety,
}

pub(crate) enum Variety {
    /// A built-in type and every facet of each restriction step on the way from it.
    Atomic {
        builtin: Builtin,
        facets: Vec<Facet>,
    },
    Union(Vec<TypeId>),
}

#[derive(Clone)]
pub(crate) enum Facet {
    Enumeration(Vec<String>),
    /// The patterns of one restriction step: a value must match one of them.
    Pattern(Vec<(String, Regex)>),
}

pub(crate) struct ComplexType {
    pub name: Option<QName>,
    /// `None` only for `xs:anyType`.
    pub base: Option<TypeId>,
    pub is_abstract: bool,
    pub content: Content,
    pub attributes: Vec<AttributeUse>,
    pub attribute_wildcard: Option<Wildcard>,
}

pub(crate) enum Content {
    Empty,
    Simple(TypeId),
    Elements { model: Automaton, mixed: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wildcard {
    pub namespaces: Namespaces,
    pub process: Process,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Namespaces {
    Any,
    /// `##other`: neither this namespace nor none.
    Not(Box<str>),
    /// Empty string for `##local`.
    List(Vec<Box<str>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Process {
    Strict,
    Lax,
    Skip,
}

impl Wildcard {
    pub fn allows(&self, ns: &str) -> bool {
        match &self.namespaces {
            Namespaces::Any => true,
            Namespaces::Not(not) => !ns.is_empty() && ns != &**not,
            Namespaces::List(list) => list.iter().any(|n| &**n == ns),
        }
    }
}

/// A content model before it is compiled to an [`Automaton`].
#[derive(Clone)]
pub(crate) struct Particle {
    pub term: Term,
    pub min: u32,
    /// `None` for unbounded.
    pub max: Option<u32>,
}

#[derive(Clone)]
pub(crate) enum Term {
    Leaf(Leaf),
    Sequence(Vec<Particle>),
    Choice(Vec<Particle>),
}

/// What one child element can match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Leaf {
    Element(ElemId),
    Any(Wildcard),
}

impl SchemaSet {
    pub fn global_element(&self, ns: &str, local: &str) -> Option<ElemId> {
        self.namespaces.get(ns)?.elements.get(local).copied()
    }

    pub fn global_type(&self, ns: &str, local: &str) -> Option<TypeId> {
        self.namespaces.get(ns)?.types.get(local).copied()
    }

    pub fn global_attribute(&self, ns: &str, local: &str) -> Option<&AttributeDecl> {
        self.namespaces.get(ns)?.attributes.get(local)
    }

    /// The target namespaces of the set, for messages that list them.
    pub fn target_namespaces(&self) -> Vec<&str> {
        let mut namespaces: Vec<&str> = self
            .namespaces
            .keys()
            .map(|ns| &**ns)
            .filter(|&ns| ns != XSD_NS)
            .collect();
        namespaces.sort_unstable();
        namespaces
    }

    /// `name` as messages show it: `mh:CS`, `xs:dateTime`, or `{urn:x}y` for a namespace the set
    /// does not know.
    pub fn display(&self, ns: &str, local: &str) -> String {
        match self.prefixes.iter().find(|(n, _)| &**n == ns) {
            _ if ns.is_empty() => local.to_string(),
            Some((_, prefix)) => format!("{prefix}:{local}"),
            None => format!("{{{ns}}}{local}"),
        }
    }

    pub fn type_name(&self, ty: TypeId) -> String {
        match &self.types[ty as usize] {
            TypeDef::Simple(SimpleType { name: Some(n), .. })
            | TypeDef::Complex(ComplexType { name: Some(n), .. }) => self.display(&n.ns, &n.local),
            TypeDef::Simple(SimpleType {
                variety: Variety::Union(members),
                ..
            }) => {
                let names: Vec<String> = members.iter().map(|&m| self.type_name(m)).collect();
                format!("union of ({})", names.join(", "))
            }
            TypeDef::Simple(SimpleType { base, .. }) => {
                format!("restriction of {}", self.type_name(*base))
            }
            TypeDef::Complex(_) => "anonymous complex type".into(),
        }
    }

    /// Whether `ty` is `ancestor` or derived from it, for `xsi:type`.
    pub fn derives_from(&self, mut ty: TypeId, ancestor: TypeId) -> bool {
        loop {
            if ty == ancestor {
                return true;
            }
            ty = match &self.types[ty as usize] {
                TypeDef::Simple(simple) => simple.base,
                TypeDef::Complex(ComplexType {
                    base: Some(base), ..
                }) => *base,
                TypeDef::Complex(_) => return false,
            };
        }
    }
}
