//! Compiling the embedded XSD files into a [`SchemaSet`].
//!
//! Only the XSD constructs the KITH schemas use are understood. Anything else (an unknown child,
//! attribute or facet) is an error naming it, so a schema that needs more fails the unit tests
//! instead of being misread.

use rustc_hash::FxHashMap;

use crate::content::Automaton;
use crate::model::{
    ANY_TYPE, AttributeDecl, AttributeUse, ComplexType, Content, ElemId, ElementDecl, Facet,
    Globals, Leaf, Namespaces, Particle, Process, QName, SchemaSet, SimpleType, Term, TypeDef,
    TypeId, ValueConstraint, Variety, Wildcard, XSD_NS,
};
use crate::pattern;
use crate::types::Builtin;
use crate::xml::{Document, Element, NO_NS, XML_NS};

/// An XSD file compiled into the binary.
pub(crate) struct SchemaFile {
    pub name: &'static str,
    /// The prefix messages show its target namespace with.
    pub prefix: &'static str,
    pub bytes: &'static [u8],
}

/// The schemas' nesting is shallow; this only guards the parser.
const MAX_DEPTH: usize = 64;

/// Compiles the schemas `roots` name and everything they import, which must all be in `files`.
pub(crate) fn compile(files: &'static [SchemaFile], roots: &[&str]) -> Result<SchemaSet, String> {
    let sources = load(files, roots)?;
    let mut compiler = Compiler {
        sources: &sources,
        types: Vec::new(),
        definitions: Vec::new(),
        in_progress: Vec::new(),
        particles: Vec::new(),
        elements: Vec::new(),
        namespaces: FxHashMap::default(),
    };
    compiler.builtins()?;
    // Register every named component first, so references resolve in any order, even cyclic.
    let mut global_elements = Vec::new();
    let mut global_attributes = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        for &node in &source.doc.elements[0].children {
            let node = &source.doc.elements[node as usize];
            let Some(kind) = compiler.kind(s, node)? else {
                continue;
            };
            let local: Box<str> = compiler
                .required(s, node, "name")
                .unwrap_or_default()
                .into();
            let globals = compiler
                .namespaces
                .entry(source.target.clone())
                .or_default();
            let duplicate = match kind {
                "element" => {
                    let id = compiler.elements.len() as ElemId;
                    global_elements.push((id, s, node));
                    let name = QName {
                        ns: source.target.clone(),
                        local: local.clone(),
                    };
                    compiler.elements.push(ElementDecl {
                        name,
                        ty: ANY_TYPE,
                        value: None,
                    });
                    globals.elements.insert(local.clone(), id).is_some()
                }
                "attribute" => {
                    global_attributes.push((s, node));
                    false
                }
                _ => {
                    let id = compiler.types.len() as TypeId;
                    compiler.types.push(None);
                    compiler.definitions.push(Some((s, node)));
                    compiler.in_progress.push(false);
                    compiler.particles.push(None);
                    globals.types.insert(local.clone(), id).is_some()
                }
            };
            if duplicate || local.is_empty() {
                return Err(compiler.error(s, node, format!("missing or repeated name '{local}'")));
            }
        }
    }
    for (s, node) in global_attributes {
        let decl = compiler.attribute_decl(s, node, true)?;
        let globals = compiler.namespaces.entry(decl.name.ns.clone()).or_default();
        if globals
            .attributes
            .insert(decl.name.local.clone(), decl)
            .is_some()
        {
            return Err(compiler.error(s, node, "repeated name"));
        }
    }
    for id in 0..compiler.types.len() as TypeId {
        compiler.ensure(id)?;
    }
    for (id, s, node) in global_elements {
        compiler.check_attributes(s, node, &["name", "type", "fixed", "default"])?;
        let (ty, value) = compiler.element_type(s, node)?;
        let decl = &mut compiler.elements[id as usize];
        decl.ty = ty;
        decl.value = value;
    }
    let builtin_prefixes = [(XSD_NS.into(), "xs"), (XML_NS.into(), "xml")];
    let prefixes = sources
        .iter()
        .map(|s| (s.target.clone(), s.file.prefix))
        .chain(builtin_prefixes)
        .collect();
    let types = compiler
        .types
        .into_iter()
        .map(|t| t.ok_or("a type was never compiled"))
        .collect::<Result<_, _>>()?;
    Ok(SchemaSet {
        types,
        elements: compiler.elements,
        namespaces: compiler.namespaces,
        prefixes,
    })
}

/// One parsed schema document.
struct Source {
    file: &'static SchemaFile,
    doc: Document,
    target: Box<str>,
    qualified_elements: bool,
    qualified_attributes: bool,
}

/// Parses the root schemas and, transitively, what they import.
fn load(files: &'static [SchemaFile], roots: &[&str]) -> Result<Vec<Source>, String> {
    let mut sources: Vec<Source> = Vec::new();
    let mut queue: Vec<(String, Option<&str>)> =
        roots.iter().map(|&r| (r.to_string(), None)).collect();
    let mut imports = Vec::new();
    while let Some((name, importer)) = queue.pop() {
        let Some(file) = files.iter().find(|f| f.name == name.as_str()) else {
            return Err(format!(
                "{} imports '{name}', which is not embedded",
                importer.unwrap_or("the root list")
            ));
        };
        let name = file.name;
        if sources.iter().any(|s| s.file.name == name) {
            continue;
        }
        let doc = Document::parse(file.bytes, MAX_DEPTH)
            .map_err(|e| format!("{name}:{}: {}", e.line, e.message))?;
        let root = &doc.elements[0];
        if doc.ns(root.ns) != XSD_NS || &*root.local != "schema" {
            return Err(format!("{name} is not an XML Schema"));
        }
        let known = [
            "targetNamespace",
            "elementFormDefault",
            "attributeFormDefault",
            "version",
        ];
        if let Some(a) = doc
            .attributes(root)
            .iter()
            .find(|a| a.ns == NO_NS && !known.contains(&&*a.local))
        {
            return Err(format!(
                "{name}: attribute '{}' of <schema> is not supported",
                a.local
            ));
        }
        let qualified = |attribute| match doc.attribute(root, "", attribute) {
            None | Some("unqualified") => Ok(false),
            Some("qualified") => Ok(true),
            Some(other) => Err(format!("{name}: {attribute}='{other}'")),
        };
        let source = Source {
            file,
            target: doc
                .attribute(root, "", "targetNamespace")
                .unwrap_or_default()
                .into(),
            qualified_elements: qualified("elementFormDefault")?,
            qualified_attributes: qualified("attributeFormDefault")?,
            doc,
        };
        for &child in &source.doc.elements[0].children {
            let child = &source.doc.elements[child as usize];
            if &*child.local == "import" {
                let location = source.doc.attribute(child, "", "schemaLocation");
                let namespace = source
                    .doc
                    .attribute(child, "", "namespace")
                    .unwrap_or_default();
                let location =
                    location.ok_or_else(|| format!("{name}: an import without schemaLocation"))?;
                queue.push((location.to_string(), Some(name)));
                imports.push((name, location.to_string(), namespace.to_string()));
            }
        }
        if sources.iter().any(|s| s.target == source.target) {
            return Err(format!(
                "{name}: a second schema for namespace '{}'",
                source.target
            ));
        }
        sources.push(source);
    }
    for (importer, location, namespace) in imports {
        let imported = sources
            .iter()
            .find(|s| s.file.name == location)
            .map(|s| &*s.target);
        if imported != Some(namespace.as_str()) {
            return Err(format!(
                "{importer} imports namespace '{namespace}' from {location}, which has another"
            ));
        }
    }
    Ok(sources)
}

/// What a complex type declares besides its content type.
struct Parts {
    attributes: Vec<AttributeUse>,
    wildcard: Option<Wildcard>,
    particle: Option<Particle>,
}

struct Compiler<'s> {
    sources: &'s [Source],
    /// `None` until compiled; named types are compiled on first need, so a base comes first.
    types: Vec<Option<TypeDef>>,
    /// Where each named type is defined.
    definitions: Vec<Option<(usize, &'s Element)>>,
    in_progress: Vec<bool>,
    /// Each complex type's particle, which an extension of it continues.
    particles: Vec<Option<Particle>>,
    elements: Vec<ElementDecl>,
    namespaces: FxHashMap<Box<str>, Globals>,
}

impl<'s> Compiler<'s> {
    fn builtins(&mut self) -> Result<(), String> {
        let xs = |local: &str| {
            Some(QName {
                ns: XSD_NS.into(),
                local: local.into(),
            })
        };
        let any = Wildcard {
            namespaces: Namespaces::Any,
            process: Process::Lax,
        };
        let model = Particle {
            term: Term::Leaf(Leaf::Any(any.clone())),
            min: 0,
            max: None,
        };
        let any_type = ComplexType {
            name: xs("anyType"),
            base: None,
            is_abstract: false,
            content: Content::Elements {
                model: Automaton::compile(&model)?,
                mixed: true,
            },
            attributes: Vec::new(),
            attribute_wildcard: Some(any),
        };
        self.push(TypeDef::Complex(any_type), Some(model));
        for builtin in Builtin::ALL {
            let base = builtin.base().map_or(ANY_TYPE, Builtin::id);
            let variety = Variety::Atomic {
                builtin,
                facets: Vec::new(),
            };
            self.push(
                TypeDef::Simple(SimpleType {
                    name: xs(builtin.name()),
                    base,
                    variety,
                }),
                None,
            );
        }
        let globals = self.namespaces.entry(XSD_NS.into()).or_default();
        globals.types.insert("anyType".into(), ANY_TYPE);
        for builtin in Builtin::ALL {
            globals.types.insert(builtin.name().into(), builtin.id());
        }
        Ok(())
    }

    fn push(&mut self, ty: TypeDef, particle: Option<Particle>) -> TypeId {
        self.types.push(Some(ty));
        self.definitions.push(None);
        self.in_progress.push(false);
        self.particles.push(particle);
        (self.types.len() - 1) as TypeId
    }

    fn error(&self, s: usize, node: &Element, message: impl std::fmt::Display) -> String {
        format!(
            "{}:{}: <{}>: {message}",
            self.sources[s].file.name, node.line, node.local
        )
    }

    fn source(&self, s: usize) -> &'s Source {
        &self.sources[s]
    }

    fn doc(&self, s: usize) -> &'s Document {
        &self.source(s).doc
    }

    fn attribute(&self, s: usize, node: &Element, name: &str) -> Option<&'s str> {
        self.doc(s).attribute(node, "", name)
    }

    fn required(&self, s: usize, node: &Element, name: &str) -> Result<&'s str, String> {
        self.attribute(s, node, name)
            .ok_or_else(|| self.error(s, node, format!("missing attribute '{name}'")))
    }

    /// Refuses attributes outside `allowed` (foreign-namespace attributes are annotations).
    fn check_attributes(&self, s: usize, node: &Element, allowed: &[&str]) -> Result<(), String> {
        let doc = self.doc(s);
        match doc
            .attributes(node)
            .iter()
            .find(|a| doc.ns(a.ns).is_empty() && !allowed.contains(&&*a.local))
        {
            Some(a) => {
                Err(self.error(s, node, format!("attribute '{}' is not supported", a.local)))
            }
            None => Ok(()),
        }
    }

    /// The XSD children of `node` other than annotations.
    fn children(&self, s: usize, node: &Element) -> Result<Vec<&'s Element>, String> {
        let doc = self.doc(s);
        let mut children = Vec::new();
        for &child in &node.children {
            let child = &doc.elements[child as usize];
            if doc.ns(child.ns) != XSD_NS {
                return Err(self.error(s, child, "not an XML Schema element"));
            }
            if &*child.local != "annotation" {
                children.push(child);
            }
        }
        Ok(children)
    }

    /// What a top-level child of `<schema>` declares, `None` for imports and annotations.
    fn kind(&self, s: usize, node: &Element) -> Result<Option<&'static str>, String> {
        match &*node.local {
            "element" => Ok(Some("element")),
            "attribute" => Ok(Some("attribute")),
            "complexType" | "simpleType" => Ok(Some("type")),
            "import" | "annotation" => Ok(None),
            _ => Err(self.error(s, node, "not supported")),
        }
    }

    fn qname(
        &self,
        s: usize,
        node: &Element,
        value: &'s str,
    ) -> Result<(&'s str, &'s str), String> {
        self.doc(s)
            .resolve_qname(node, value)
            .ok_or_else(|| self.error(s, node, format!("'{value}' is not a resolvable QName")))
    }

    /// The type a QName-valued attribute names; it need not be compiled yet.
    fn type_ref(&self, s: usize, node: &Element, value: &'s str) -> Result<TypeId, String> {
        let (ns, local) = self.qname(s, node, value)?;
        let id = self.namespaces.get(ns).and_then(|g| g.types.get(local));
        id.copied()
            .ok_or_else(|| self.error(s, node, format!("unknown or unsupported type '{value}'")))
    }

    /// Compiles the named type `id` if it is not yet.
    fn ensure(&mut self, id: TypeId) -> Result<(), String> {
        let i = id as usize;
        if self.types[i].is_some() {
            return Ok(());
        }
        let Some((s, node)) = self.definitions[i] else {
            return Err(format!("type {id} has no definition"));
        };
        if std::mem::replace(&mut self.in_progress[i], true) {
            return Err(self.error(s, node, "circular type derivation"));
        }
        let name = Some(QName {
            ns: self.source(s).target.clone(),
            local: self.required(s, node, "name")?.into(),
        });
        let (ty, particle) = match &*node.local {
            "complexType" => {
                let (ty, particle) = self.complex_type(s, node, name)?;
                (TypeDef::Complex(ty), particle)
            }
            _ => (TypeDef::Simple(self.simple_type(s, node, name)?), None),
        };
        self.types[i] = Some(ty);
        self.particles[i] = particle;
        Ok(())
    }

    fn simple(&mut self, s: usize, node: &Element, id: TypeId) -> Result<&SimpleType, String> {
        self.ensure(id)?;
        match &self.types[id as usize] {
            Some(TypeDef::Simple(simple)) => Ok(simple),
            _ => Err(self.error(s, node, "a simple type is needed here")),
        }
    }

    /// An anonymous type, compiled where it stands.
    fn anonymous(&mut self, s: usize, node: &Element) -> Result<TypeId, String> {
        Ok(match &*node.local {
            "complexType" => {
                let (ty, particle) = self.complex_type(s, node, None)?;
                self.push(TypeDef::Complex(ty), particle)
            }
            "simpleType" => {
                let ty = self.simple_type(s, node, None)?;
                self.push(TypeDef::Simple(ty), None)
            }
            _ => return Err(self.error(s, node, "a type definition is needed here")),
        })
    }

    fn simple_type(
        &mut self,
        s: usize,
        node: &Element,
        name: Option<QName>,
    ) -> Result<SimpleType, String> {
        self.check_attributes(s, node, &["name"])?;
        let [derivation] = self.children(s, node)?[..] else {
            return Err(self.error(s, node, "one restriction or union is needed"));
        };
        match &*derivation.local {
            "restriction" => self.restriction(s, derivation, name),
            "union" => {
                self.check_attributes(s, derivation, &["memberTypes"])?;
                let mut members = Vec::new();
                for member in self
                    .attribute(s, derivation, "memberTypes")
                    .unwrap_or_default()
                    .split_whitespace()
                {
                    let id = self.type_ref(s, derivation, member)?;
                    self.simple(s, derivation, id)?;
                    members.push(id);
                }
                for child in self.children(s, derivation)? {
                    members.push(self.anonymous(s, child)?);
                }
                let base = Builtin::AnySimpleType.id();
                Ok(SimpleType {
                    name,
                    base,
                    variety: Variety::Union(members),
                })
            }
            _ => Err(self.error(s, derivation, "not supported")),
        }
    }

    fn restriction(
        &mut self,
        s: usize,
        node: &Element,
        name: Option<QName>,
    ) -> Result<SimpleType, String> {
        self.check_attributes(s, node, &["base"])?;
        let mut facets = self.children(s, node)?.into_iter().peekable();
        let base = match (
            self.attribute(s, node, "base"),
            facets.next_if(|f| &*f.local == "simpleType"),
        ) {
            (Some(base), None) => self.type_ref(s, node, base)?,
            (None, Some(inline)) => self.anonymous(s, inline)?,
            _ => return Err(self.error(s, node, "one base type is needed")),
        };
        let (builtin, mut inherited) = match &self.simple(s, node, base)?.variety {
            Variety::Atomic { builtin, facets } => (*builtin, facets.clone()),
            Variety::Union(members) => {
                let members = members.clone();
                if facets.peek().is_some() {
                    return Err(self.error(s, node, "facets on a union are not supported"));
                }
                return Ok(SimpleType {
                    name,
                    base,
                    variety: Variety::Union(members),
                });
            }
        };
        let (mut enumeration, mut patterns) = (Vec::new(), Vec::new());
        for facet in facets {
            self.check_attributes(s, facet, &["value"])?;
            let value = self.required(s, facet, "value")?;
            match &*facet.local {
                // Enumerations compare lexically, which is right only where values are strings.
                "enumeration" if builtin.compares_as_string() => {
                    enumeration.push(builtin.normalize(value).into_owned())
                }
                "pattern" => patterns.push((
                    value.to_string(),
                    pattern::compile(value).map_err(|e| self.error(s, facet, e))?,
                )),
                other => {
                    return Err(self.error(
                        s,
                        facet,
                        format!("facet '{other}' on xs:{} is not supported", builtin.name()),
                    ));
                }
            }
        }
        if !enumeration.is_empty() {
            inherited.push(Facet::Enumeration(enumeration));
        }
        if !patterns.is_empty() {
            inherited.push(Facet::Pattern(patterns));
        }
        Ok(SimpleType {
            name,
            base,
            variety: Variety::Atomic {
                builtin,
                facets: inherited,
            },
        })
    }

    fn complex_type(
        &mut self,
        s: usize,
        node: &Element,
        name: Option<QName>,
    ) -> Result<(ComplexType, Option<Particle>), String> {
        self.check_attributes(s, node, &["name", "mixed", "abstract"])?;
        let mut mixed = self.boolean(s, node, "mixed")?;
        let is_abstract = self.boolean(s, node, "abstract")?;
        let children = self.children(s, node)?;
        let (base, parts, simple) = match children.first().map(|c| &*c.local) {
            Some("simpleContent") => {
                let [content] = children[..] else {
                    return Err(self.error(s, node, "simpleContent must stand alone"));
                };
                self.check_attributes(s, content, &[])?;
                let derivation = self.derivation(s, content, "extension")?;
                let base = self.type_ref(s, derivation, self.required(s, derivation, "base")?)?;
                self.simple(s, derivation, base)?;
                let parts = self.parts(s, derivation)?;
                if parts.particle.is_some() {
                    return Err(self.error(s, derivation, "simple content has no particle"));
                }
                (base, parts, true)
            }
            Some("complexContent") => {
                let [content] = children[..] else {
                    return Err(self.error(s, node, "complexContent must stand alone"));
                };
                self.check_attributes(s, content, &["mixed"])?;
                if self.attribute(s, content, "mixed").is_some() {
                    mixed = self.boolean(s, content, "mixed")?;
                }
                let derivation = self.derivation(s, content, "")?;
                let base = self.type_ref(s, derivation, self.required(s, derivation, "base")?)?;
                let own = self.parts(s, derivation)?;
                let parts = self.derive(s, derivation, base, own)?;
                (base, parts, false)
            }
            _ => (ANY_TYPE, self.parts(s, node)?, false),
        };
        let content = match simple {
            true => Content::Simple(base),
            false => self.content(s, node, parts.particle.as_ref(), mixed)?,
        };
        let ty = ComplexType {
            name,
            base: Some(base),
            is_abstract,
            content,
            attributes: parts.attributes,
            attribute_wildcard: parts.wildcard,
        };
        Ok((ty, parts.particle))
    }

    /// What a complex-content `derivation` of `base` ends up with, given what it declares itself.
    fn derive(
        &mut self,
        s: usize,
        derivation: &Element,
        base: TypeId,
        own: Parts,
    ) -> Result<Parts, String> {
        self.ensure(base)?;
        let Some(TypeDef::Complex(base_type)) = &self.types[base as usize] else {
            return Err(self.error(s, derivation, "complex content derives from a complex type"));
        };
        let (inherited, inherited_wildcard) = (
            base_type.attributes.clone(),
            base_type.attribute_wildcard.clone(),
        );
        if &*derivation.local == "restriction" {
            // A restriction restates the content and the wildcard; base attributes stay unless
            // redeclared (or prohibited, which `parts` drops).
            let mut attributes: Vec<AttributeUse> = inherited
                .into_iter()
                .filter(|i| !own.attributes.iter().any(|o| o.decl.name == i.decl.name))
                .collect();
            attributes.extend(own.attributes);
            return Ok(Parts { attributes, ..own });
        }
        if matches!(base_type.content, Content::Simple(_))
            || (inherited_wildcard.is_some() && own.wildcard.is_some())
        {
            return Err(self.error(s, derivation, "this extension is not supported"));
        }
        let particle = match (self.particles[base as usize].clone(), own.particle) {
            (Some(first), Some(then)) => Some(Particle {
                term: Term::Sequence(vec![first, then]),
                min: 1,
                max: Some(1),
            }),
            (first, then) => first.or(then),
        };
        let attributes = inherited.into_iter().chain(own.attributes).collect();
        Ok(Parts {
            attributes,
            wildcard: inherited_wildcard.or(own.wildcard),
            particle,
        })
    }

    /// The one `extension` (or, with `only` empty, `restriction`) inside simple or complex content.
    fn derivation(&self, s: usize, content: &Element, only: &str) -> Result<&'s Element, String> {
        match self.children(s, content)?[..] {
            [d] if &*d.local == "extension" || (only.is_empty() && &*d.local == "restriction") => {
                self.check_attributes(s, d, &["base"])?;
                Ok(d)
            }
            _ => Err(self.error(s, content, "one supported derivation is needed")),
        }
    }

    fn content(
        &self,
        s: usize,
        node: &Element,
        particle: Option<&Particle>,
        mixed: bool,
    ) -> Result<Content, String> {
        Ok(match particle {
            None if !mixed => Content::Empty,
            None => Content::Elements {
                model: self.automaton(
                    s,
                    node,
                    &Particle {
                        term: Term::Sequence(Vec::new()),
                        min: 1,
                        max: Some(1),
                    },
                )?,
                mixed,
            },
            Some(particle) => Content::Elements {
                model: self.automaton(s, node, particle)?,
                mixed,
            },
        })
    }

    fn automaton(
        &self,
        s: usize,
        node: &Element,
        particle: &Particle,
    ) -> Result<Automaton, String> {
        Automaton::compile(particle).map_err(|e| self.error(s, node, e))
    }

    /// The attribute uses, attribute wildcard and particle among the children of a complex type
    /// or of its derivation.
    fn parts(&mut self, s: usize, node: &Element) -> Result<Parts, String> {
        let (mut attributes, mut wildcard, mut particle) = (Vec::new(), None, None);
        for child in self.children(s, node)? {
            match &*child.local {
                "attribute" => {
                    self.check_attributes(
                        s,
                        child,
                        &["name", "ref", "type", "use", "fixed", "default", "form"],
                    )?;
                    let decl = match self.attribute(s, child, "ref") {
                        Some(r) => {
                            let (ns, local) = self.qname(s, child, r)?;
                            let global = self
                                .namespaces
                                .get(ns)
                                .and_then(|g| g.attributes.get(local))
                                .cloned();
                            let mut decl = global.ok_or_else(|| {
                                self.error(s, child, format!("unknown attribute '{r}'"))
                            })?;
                            if let Some(value) = self.value_constraint(s, child)? {
                                decl.value = Some(value);
                            }
                            decl
                        }
                        None => self.attribute_decl(s, child, false)?,
                    };
                    match self.attribute(s, child, "use").unwrap_or("optional") {
                        "prohibited" => {}
                        "optional" => attributes.push(AttributeUse {
                            decl,
                            required: false,
                        }),
                        "required" => attributes.push(AttributeUse {
                            decl,
                            required: true,
                        }),
                        other => return Err(self.error(s, child, format!("use='{other}'"))),
                    }
                }
                "anyAttribute" if wildcard.is_none() => {
                    self.check_attributes(s, child, &["namespace", "processContents"])?;
                    wildcard = Some(self.wildcard(s, child)?);
                }
                "sequence" | "choice"
                    if particle.is_none() && attributes.is_empty() && wildcard.is_none() =>
                {
                    particle = Some(self.particle(s, child)?);
                }
                _ => return Err(self.error(s, child, "not supported here")),
            }
        }
        // An empty sequence is no particle: the content is empty, not element-only.
        if let Some(Particle {
            term: Term::Sequence(p),
            ..
        }) = &particle
            && p.is_empty()
        {
            particle = None;
        }
        Ok(Parts {
            attributes,
            wildcard,
            particle,
        })
    }

    fn attribute_decl(
        &mut self,
        s: usize,
        node: &Element,
        global: bool,
    ) -> Result<AttributeDecl, String> {
        if global {
            self.check_attributes(s, node, &["name", "type", "fixed", "default"])?;
        }
        let source = self.source(s);
        let qualified = match self.attribute(s, node, "form") {
            Some(form) => form == "qualified",
            None => global || source.qualified_attributes,
        };
        let ns = if qualified {
            source.target.clone()
        } else {
            "".into()
        };
        let name = QName {
            ns,
            local: self.required(s, node, "name")?.into(),
        };
        let ty = match (
            self.attribute(s, node, "type"),
            &self.children(s, node)?[..],
        ) {
            (Some(ty), []) => self.type_ref(s, node, ty)?,
            (None, [inline]) => self.anonymous(s, inline)?,
            (None, []) => Builtin::AnySimpleType.id(),
            _ => return Err(self.error(s, node, "one type is needed")),
        };
        self.simple(s, node, ty)?;
        Ok(AttributeDecl {
            name,
            ty,
            value: self.value_constraint(s, node)?,
        })
    }

    fn value_constraint(
        &self,
        s: usize,
        node: &Element,
    ) -> Result<Option<ValueConstraint>, String> {
        match (
            self.attribute(s, node, "default"),
            self.attribute(s, node, "fixed"),
        ) {
            (None, None) => Ok(None),
            (Some(value), None) => Ok(Some(ValueConstraint::Default(value.to_string()))),
            (None, Some(value)) => Ok(Some(ValueConstraint::Fixed(value.to_string()))),
            (Some(_), Some(_)) => Err(self.error(s, node, "both default and fixed")),
        }
    }

    /// The type and value constraint of an element declaration.
    fn element_type(
        &mut self,
        s: usize,
        node: &Element,
    ) -> Result<(TypeId, Option<ValueConstraint>), String> {
        let ty = match (
            self.attribute(s, node, "type"),
            &self.children(s, node)?[..],
        ) {
            (Some(ty), []) => self.type_ref(s, node, ty)?,
            (None, [inline]) => self.anonymous(s, inline)?,
            (None, []) => ANY_TYPE,
            _ => return Err(self.error(s, node, "one type is needed")),
        };
        Ok((ty, self.value_constraint(s, node)?))
    }

    fn particle(&mut self, s: usize, node: &Element) -> Result<Particle, String> {
        let (min, max) = self.occurs(s, node)?;
        let term = match &*node.local {
            "sequence" | "choice" => {
                self.check_attributes(s, node, &["minOccurs", "maxOccurs"])?;
                let mut particles = Vec::new();
                for child in self.children(s, node)? {
                    particles.push(self.particle(s, child)?);
                }
                match &*node.local {
                    "sequence" => Term::Sequence(particles),
                    _ => Term::Choice(particles),
                }
            }
            "any" => {
                self.check_attributes(
                    s,
                    node,
                    &["namespace", "processContents", "minOccurs", "maxOccurs"],
                )?;
                Term::Leaf(Leaf::Any(self.wildcard(s, node)?))
            }
            "element" => Term::Leaf(Leaf::Element(self.local_element(s, node)?)),
            _ => return Err(self.error(s, node, "not supported in a content model")),
        };
        Ok(Particle { term, min, max })
    }

    fn occurs(&self, s: usize, node: &Element) -> Result<(u32, Option<u32>), String> {
        let number = |name, default: &str| {
            let value = self.attribute(s, node, name).unwrap_or(default);
            match value {
                "unbounded" if name == "maxOccurs" => Ok(None),
                _ => value
                    .parse()
                    .map(Some)
                    .map_err(|_| self.error(s, node, format!("{name}='{value}'"))),
            }
        };
        let min = number("minOccurs", "1")?.unwrap_or_default();
        let max = number("maxOccurs", "1")?;
        if max.is_some_and(|max| max < min) {
            return Err(self.error(s, node, "maxOccurs is below minOccurs"));
        }
        Ok((min, max))
    }

    /// A local element declaration, or the global one a `ref` names.
    fn local_element(&mut self, s: usize, node: &Element) -> Result<ElemId, String> {
        if let Some(r) = self.attribute(s, node, "ref") {
            self.check_attributes(s, node, &["ref", "minOccurs", "maxOccurs"])?;
            let (ns, local) = self.qname(s, node, r)?;
            let id = self.namespaces.get(ns).and_then(|g| g.elements.get(local));
            return id
                .copied()
                .ok_or_else(|| self.error(s, node, format!("unknown element '{r}'")));
        }
        self.check_attributes(
            s,
            node,
            &[
                "name",
                "type",
                "minOccurs",
                "maxOccurs",
                "fixed",
                "default",
                "form",
            ],
        )?;
        let source = self.source(s);
        let qualified = match self.attribute(s, node, "form") {
            Some(form) => form == "qualified",
            None => source.qualified_elements,
        };
        let ns = if qualified {
            source.target.clone()
        } else {
            "".into()
        };
        let name = QName {
            ns,
            local: self.required(s, node, "name")?.into(),
        };
        let (ty, value) = self.element_type(s, node)?;
        self.elements.push(ElementDecl { name, ty, value });
        Ok((self.elements.len() - 1) as ElemId)
    }

    fn wildcard(&self, s: usize, node: &Element) -> Result<Wildcard, String> {
        let target = &self.source(s).target;
        let namespaces = match self.attribute(s, node, "namespace").unwrap_or("##any") {
            "##any" => Namespaces::Any,
            "##other" => Namespaces::Not(target.clone()),
            list => Namespaces::List(
                list.split_whitespace()
                    .map(|ns| match ns {
                        "##targetNamespace" => target.clone(),
                        "##local" => "".into(),
                        ns => ns.into(),
                    })
                    .collect(),
            ),
        };
        let process = match self
            .attribute(s, node, "processContents")
            .unwrap_or("strict")
        {
            "strict" => Process::Strict,
            "lax" => Process::Lax,
            "skip" => Process::Skip,
            other => return Err(self.error(s, node, format!("processContents='{other}'"))),
        };
        Ok(Wildcard {
            namespaces,
            process,
        })
    }

    fn boolean(&self, s: usize, node: &Element, name: &str) -> Result<bool, String> {
        match self.attribute(s, node, name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(self.error(s, node, format!("{name}='{other}'"))),
        }
    }
}
