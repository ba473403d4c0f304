//! Reference data compiled into the binary: Norway's 357 municipalities (2024) with population and
//! the postal code of their centre, and common given names, family names and street names.

use std::sync::OnceLock;

use helsenett_store::records::Text;

#[derive(Debug)]
pub struct MunicipalityRef {
    pub number: Text,
    pub name: &'static str,
    pub county: &'static str,
    pub population: u32,
    pub postcode: Text,
    pub postplace: Text,
}

pub struct Reference {
    pub municipalities: Vec<MunicipalityRef>,
    pub female_names: Vec<Text>,
    pub male_names: Vec<Text>,
    pub family_names: Vec<Text>,
    pub street_names: Vec<Text>,
}

/// The parsed reference data. Its shape is checked by this crate's tests.
pub fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| Reference {
        municipalities: include_str!("../data/municipalities.tsv")
            .lines()
            .skip(1)
            .map(municipality)
            .collect(),
        female_names: texts(include_str!("../data/given_names_female.txt")),
        male_names: texts(include_str!("../data/given_names_male.txt")),
        family_names: texts(include_str!("../data/family_names.txt")),
        street_names: texts(include_str!("../data/street_names.txt")),
    })
}

fn texts(lines: &str) -> Vec<Text> {
    lines.lines().map(Text::from).collect()
}

fn municipality(line: &'static str) -> MunicipalityRef {
    let f: Vec<&'static str> = line.split('\t').collect();
    MunicipalityRef {
        number: f[0].into(),
        name: f[1],
        county: f[2],
        population: f[3].parse().expect("population is a number"),
        postcode: f[4].into(),
        postplace: f[5].into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn reference_data_is_complete_and_unique() {
        let r = super::reference();
        assert_eq!(r.municipalities.len(), 357);
        let numbers: HashSet<_> = r.municipalities.iter().map(|m| &m.number).collect();
        assert_eq!(numbers.len(), 357);
        assert!(
            r.municipalities
                .iter()
                .all(|m| m.number.len() == 4 && m.postcode.len() == 4 && m.population > 0)
        );
        let total: u64 = r
            .municipalities
            .iter()
            .map(|m| u64::from(m.population))
            .sum();
        assert!((5_400_000..5_700_000).contains(&total), "{total}");
        for list in [
            &r.female_names,
            &r.male_names,
            &r.family_names,
            &r.street_names,
        ] {
            assert!(list.len() >= 100);
            assert_eq!(list.iter().collect::<HashSet<_>>().len(), list.len());
        }
    }
}
