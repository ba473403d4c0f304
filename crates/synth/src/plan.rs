//! How big a country to make, and where its people live.

use std::{fmt, str::FromStr};

use crate::reference::{MunicipalityRef, reference};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Eight municipalities, 10,000 people: the demo and the test lab.
    Small,
    /// Every municipality, 500,000 people.
    Medium,
    /// Every municipality at its real population: about 5.5 million people.
    Norway,
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "small" => Ok(Size::Small),
            "medium" => Ok(Size::Medium),
            "norway" => Ok(Size::Norway),
            _ => Err(format!("{s:?} is not a size (small, medium or norway)")),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Norway => "norway",
        })
    }
}

/// The municipalities of the small country, from north to south.
const SMALL_MUNICIPALITIES: [&str; 8] = [
    "Vadsø",
    "Tromsø",
    "Bodø",
    "Trondheim",
    "Bergen",
    "Lillehammer",
    "Oslo",
    "Kristiansand",
];

/// A concrete plan: which municipalities, how many people in each, and how many distinct RSA
/// keys the parties' certificates draw on.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub municipalities: Vec<(&'static MunicipalityRef, u32)>,
    pub key_pool: usize,
}

impl Plan {
    pub fn for_size(size: Size) -> Self {
        let all = &reference().municipalities;
        match size {
            Size::Small => Self::custom(&size.to_string(), &SMALL_MUNICIPALITIES, 10_000, 32)
                .expect("small municipalities exist"),
            Size::Medium => Self::scaled(size.to_string(), all.iter().collect(), 500_000, 100, 64),
            Size::Norway => Plan {
                name: size.to_string(),
                municipalities: all.iter().map(|m| (m, m.population)).collect(),
                key_pool: 64,
            },
        }
    }

    /// A country of the named municipalities with about `persons` people between them and
    /// `key_pool` distinct RSA keys. Fails on a name that is not a Norwegian municipality.
    pub fn custom(
        name: &str,
        municipalities: &[&str],
        persons: u32,
        key_pool: usize,
    ) -> Result<Self, String> {
        let all = &reference().municipalities;
        let chosen = municipalities
            .iter()
            .map(|n| {
                let mut matches = all.iter().filter(|m| m.name == *n);
                match (matches.next(), matches.next()) {
                    (Some(m), None) => Ok(m),
                    (Some(_), Some(_)) => Err(format!(
                        "{n:?} names more than one municipality (Herøy and Våler each name two)"
                    )),
                    (None, _) => Err(format!("{n:?} is not a Norwegian municipality")),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::scaled(
            name.to_owned(),
            chosen,
            persons,
            300,
            key_pool,
        ))
    }

    /// `total` people spread over `chosen` in proportion to their real populations, at least
    /// `floor` in each.
    fn scaled(
        name: String,
        chosen: Vec<&'static MunicipalityRef>,
        total: u32,
        floor: u32,
        key_pool: usize,
    ) -> Self {
        let real: u64 = chosen.iter().map(|m| u64::from(m.population)).sum();
        let municipalities = chosen
            .into_iter()
            .map(|m| {
                (
                    m,
                    (u64::from(total) * u64::from(m.population) / real.max(1)).max(u64::from(floor))
                        as u32,
                )
            })
            .collect();
        Plan {
            name,
            municipalities,
            key_pool: key_pool.max(1),
        }
    }

    pub fn persons(&self) -> u64 {
        self.municipalities.iter().map(|(_, n)| u64::from(*n)).sum()
    }
}
