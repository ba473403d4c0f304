//! Simple types: the built-ins, and checking a value against a (derived or union) simple type.

use std::borrow::Cow;

use crate::lexical::{self, DateKind};
use crate::model::{Facet, SchemaSet, TypeDef, TypeId, Variety};

/// Declares the built-ins once: the enum and `Builtin::ALL` in declaration order.
macro_rules! builtins {
    ($($name:ident),* $(,)?) => {
        /// The built-in simple types this validator knows, in the order they follow `xs:anyType`
        /// in the type arena. The list types, `QName`, `NOTATION`, `duration`, `hexBinary` and
        /// the `IDREF`/`ENTITY` family are missing: no embedded schema uses them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Builtin {
            $($name),*
        }

        impl Builtin {
            pub const ALL: [Builtin; [$(Builtin::$name),*].len()] = [$(Builtin::$name),*];
        }
    };
}

builtins! {
    AnySimpleType,
    String,
    NormalizedString,
    Token,
    Language,
    Name,
    NcName,
    Id,
    NmToken,
    Boolean,
    Decimal,
    Integer,
    NonPositiveInteger,
    NegativeInteger,
    Long,
    Int,
    Short,
    Byte,
    NonNegativeInteger,
    UnsignedLong,
    UnsignedInt,
    UnsignedShort,
    UnsignedByte,
    PositiveInteger,
    Float,
    Double,
    DateTime,
    Date,
    Time,
    GYear,
    GYearMonth,
    GMonth,
    GDay,
    GMonthDay,
    Base64Binary,
    AnyUri,
}

impl Builtin {
    /// Its id in the type arena.
    pub fn id(self) -> TypeId {
        self as TypeId + 1
    }

    pub fn name(self) -> &'static str {
        use Builtin::*;
        match self {
            AnySimpleType => "anySimpleType",
            String => "string",
            NormalizedString => "normalizedString",
            Token => "token",
            Language => "language",
            Name => "Name",
            NcName => "NCName",
            Id => "ID",
            NmToken => "NMTOKEN",
            Boolean => "boolean",
            Decimal => "decimal",
            Integer => "integer",
            NonPositiveInteger => "nonPositiveInteger",
            NegativeInteger => "negativeInteger",
            Long => "long",
            Int => "int",
            Short => "short",
            Byte => "byte",
            NonNegativeInteger => "nonNegativeInteger",
            UnsignedLong => "unsignedLong",
            UnsignedInt => "unsignedInt",
            UnsignedShort => "unsignedShort",
            UnsignedByte => "unsignedByte",
            PositiveInteger => "positiveInteger",
            Float => "float",
            Double => "double",
            DateTime => "dateTime",
            Date => "date",
            Time => "time",
            GYear => "gYear",
            GYearMonth => "gYearMonth",
            GMonth => "gMonth",
            GDay => "gDay",
            GMonthDay => "gMonthDay",
            Base64Binary => "base64Binary",
            AnyUri => "anyURI",
        }
    }

    /// The type it restricts; `None` for `anySimpleType`, whose base is `xs:anyType`.
    pub fn base(self) -> Option<Builtin> {
        use Builtin::*;
        Some(match self {
            AnySimpleType => return None,
            NormalizedString => String,
            Token => NormalizedString,
            Language | Name | NmToken => Token,
            NcName => Name,
            Id => NcName,
            Integer => Decimal,
            NonPositiveInteger | Long | NonNegativeInteger => Integer,
            NegativeInteger => NonPositiveInteger,
            Int => Long,
            Short => Int,
            Byte => Short,
            UnsignedLong | PositiveInteger => NonNegativeInteger,
            UnsignedInt => UnsignedLong,
            UnsignedShort => UnsignedInt,
            UnsignedByte => UnsignedShort,
            _ => AnySimpleType,
        })
    }

    /// The value after the type's `whiteSpace` facet. libxml2 leaves the date and time types
    /// unnormalized (it refuses `<GenDate> 2025-01-01T00:00:00</GenDate>`), and so do we.
    /// Base64 skips whitespace anyway, and its values are large.
    pub fn normalize(self, value: &str) -> Cow<'_, str> {
        use Builtin::*;
        match self {
            AnySimpleType | String | DateTime | Date | Time | GYear | GYearMonth | GMonth
            | GDay | GMonthDay | Base64Binary => value.into(),
            NormalizedString => lexical::replace(value),
            _ => lexical::collapse(value),
        }
    }

    /// Whether values compare equal exactly when their normalized lexical forms do, which is
    /// what enumerations are checked by.
    pub fn compares_as_string(self) -> bool {
        use Builtin::*;
        matches!(
            self,
            String | NormalizedString | Token | Language | Name | NcName | Id | NmToken | AnyUri
        )
    }

    fn is_valid(self, value: &str) -> bool {
        use Builtin::*;
        match self {
            AnySimpleType | String | NormalizedString | Token => true,
            Language => lexical::is_language(value),
            Name => lexical::is_name(value),
            NcName | Id => lexical::is_ncname(value),
            NmToken => lexical::is_nmtoken(value),
            Boolean => lexical::is_boolean(value),
            Decimal => lexical::is_decimal(value),
            Float | Double => lexical::is_double(value),
            DateTime => lexical::is_date_time(DateKind::DateTime, value),
            Date => lexical::is_date_time(DateKind::Date, value),
            Time => lexical::is_date_time(DateKind::Time, value),
            GYear => lexical::is_date_time(DateKind::GYear, value),
            GYearMonth => lexical::is_date_time(DateKind::GYearMonth, value),
            GMonth => lexical::is_date_time(DateKind::GMonth, value),
            GDay => lexical::is_date_time(DateKind::GDay, value),
            GMonthDay => lexical::is_date_time(DateKind::GMonthDay, value),
            Base64Binary => lexical::is_base64(value),
            AnyUri => lexical::is_any_uri(value),
            Integer | NonPositiveInteger | NegativeInteger | Long | Int | Short | Byte
            | NonNegativeInteger | UnsignedLong | UnsignedInt | UnsignedShort | UnsignedByte
            | PositiveInteger => lexical::integer(value)
                .is_some_and(|(negative, digits)| self.in_range(negative, digits)),
        }
    }

    /// Whether an integer, given as sign and digits without leading zeros, is in the type's range.
    fn in_range(self, negative: bool, digits: &str) -> bool {
        use Builtin::*;
        let (min, max): (Option<i128>, Option<i128>) = match self {
            NonPositiveInteger => (None, Some(0)),
            NegativeInteger => (None, Some(-1)),
            Long => (Some(i64::MIN.into()), Some(i64::MAX.into())),
            Int => (Some(i32::MIN.into()), Some(i32::MAX.into())),
            Short => (Some(i16::MIN.into()), Some(i16::MAX.into())),
            Byte => (Some(i8::MIN.into()), Some(i8::MAX.into())),
            NonNegativeInteger => (Some(0), None),
            UnsignedLong => (Some(0), Some(u64::MAX.into())),
            UnsignedInt => (Some(0), Some(u32::MAX.into())),
            UnsignedShort => (Some(0), Some(u16::MAX.into())),
            UnsignedByte => (Some(0), Some(u8::MAX.into())),
            PositiveInteger => (Some(1), None),
            _ => (None, None),
        };
        // 30 digits fit an i128; any bound is smaller than that.
        match digits.parse::<i128>() {
            Ok(magnitude) if digits.len() <= 30 => {
                let value = if negative { -magnitude } else { magnitude };
                min.is_none_or(|min| value >= min) && max.is_none_or(|max| value <= max)
            }
            _ if digits.is_empty() => {
                min.is_none_or(|min| min <= 0) && max.is_none_or(|max| max >= 0)
            }
            _ if negative => min.is_none(),
            _ => max.is_none(),
        }
    }
}

/// Checks `value` against the simple type `ty`. On success gives the value as the type's
/// whitespace facet normalizes it, which is what fixed values and IDs compare; on failure, what
/// is wrong, to follow "value '…'".
pub(crate) fn check<'v>(
    set: &SchemaSet,
    ty: TypeId,
    value: &'v str,
) -> Result<Cow<'v, str>, String> {
    let TypeDef::Simple(simple) = &set.types[ty as usize] else {
        return Err(format!(
            "cannot be checked against complex type {}",
            set.type_name(ty)
        ));
    };
    match &simple.variety {
        Variety::Atomic { builtin, facets } => {
            let normalized = builtin.normalize(value);
            if !builtin.is_valid(&normalized) {
                return Err(format!("is not a valid xs:{}", builtin.name()));
            }
            for facet in facets {
                match facet {
                    Facet::Enumeration(values) if !values.iter().any(|v| *v == *normalized) => {
                        let allowed = values.join("', '");
                        return Err(format!("is not one of '{allowed}' ({})", set.type_name(ty)));
                    }
                    Facet::Pattern(patterns)
                        if !patterns.iter().any(|(_, re)| re.is_match(&normalized)) =>
                    {
                        let pattern = &patterns[0].0;
                        return Err(format!(
                            "does not match the pattern '{pattern}' of {}",
                            set.type_name(ty)
                        ));
                    }
                    _ => {}
                }
            }
            Ok(normalized)
        }
        Variety::Union(members) => {
            let collapsed = lexical::collapse(value);
            if members
                .iter()
                .any(|&member| check(set, member, &collapsed).is_ok())
            {
                return Ok(collapsed);
            }
            let names: Vec<String> = members.iter().map(|&m| set.type_name(m)).collect();
            Err(format!("is not a valid {}", names.join(" or ")))
        }
    }
}

/// Whether values of `ty` are IDs, which must be unique in a document.
pub(crate) fn is_id(set: &SchemaSet, ty: TypeId) -> bool {
    matches!(&set.types[ty as usize], TypeDef::Simple(s) if matches!(s.variety, Variety::Atomic { builtin: Builtin::Id, .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema_set;

    fn builtin(b: Builtin, value: &str) -> bool {
        check(schema_set(), b.id(), value).is_ok()
    }

    #[test]
    fn builtins_normalize_then_check() {
        use Builtin::*;
        assert!(builtin(Integer, " 12 ") && builtin(Integer, "+0012") && !builtin(Integer, "1.0"));
        assert!(
            builtin(Byte, "-128")
                && !builtin(Byte, "128")
                && builtin(UnsignedLong, "18446744073709551615")
        );
        assert!(!builtin(UnsignedLong, "18446744073709551616") && !builtin(PositiveInteger, "0"));
        assert!(builtin(NonNegativeInteger, "-0") && !builtin(NegativeInteger, "-0"));
        let huge = "1234567890123456789012345678901234567890";
        assert!(builtin(Integer, huge) && builtin(PositiveInteger, huge) && !builtin(Long, huge));
        assert!(
            !builtin(NonPositiveInteger, huge) && builtin(NonPositiveInteger, &format!("-{huge}"))
        );
        assert!(builtin(Token, "  a   b ") && builtin(String, "\t"));
        assert!(builtin(Boolean, " true ") && !builtin(Boolean, "TRUE"));
        assert!(builtin(Id, " a1 ") && !builtin(Id, "1a") && !builtin(Id, "a b"));
        assert!(!builtin(DateTime, " 2025-08-21T11:39:57") && builtin(Time, " 11:00:00"));
        assert!(builtin(AnyUri, " http://x/y ") && builtin(Base64Binary, " QUJD\n QUJD "));
        assert_eq!(check(schema_set(), Token.id(), " a \n b ").unwrap(), "a b");
    }

    #[test]
    fn facets_and_unions_of_the_embedded_schemas() {
        let set = schema_set();
        let kith = "http://www.kith.no/xmlstds";
        let oid = set.global_type(kith, "oid").unwrap();
        assert!(check(set, oid, " 2.16.578.1.12.4.1.1.9051 ").is_ok());
        let error = check(set, oid, "2.16.").unwrap_err();
        assert_eq!(
            error,
            r"does not match the pattern '(\d+\.?)*\d+' of kith:oid"
        );
        let mt = set.global_attribute(kith, "MT").unwrap().ty;
        assert!(check(set, mt, "text/plain").is_ok());
        assert_eq!(
            check(set, mt, "text/html").unwrap_err(),
            "is not one of 'text/plain' (restriction of xs:token)"
        );
        let ts = set.global_type(kith, "TS").unwrap();
        let TypeDef::Complex(ts) = &set.types[ts as usize] else {
            panic!("TS is complex")
        };
        let v = ts.attributes[0].decl.ty;
        for value in [
            "2025-08-21T11:39:57",
            " 2025-08-21 ",
            "2025",
            "2025-08",
            "11:39:57",
        ] {
            assert!(check(set, v, value).is_ok(), "{value}");
        }
        let error = check(set, v, "21.08.2025").unwrap_err();
        assert_eq!(
            error,
            "is not a valid xs:dateTime or xs:date or xs:gYear or xs:gYearMonth or xs:time"
        );
        let bl = set.global_type(kith, "BL").unwrap();
        let TypeDef::Complex(bl) = &set.types[bl as usize] else {
            panic!("BL is complex")
        };
        let v = bl.attributes[0].decl.ty;
        assert!(
            check(set, v, "true").is_ok()
                && check(set, v, "1").is_err()
                && check(set, v, "yes").is_err()
        );
    }
}
