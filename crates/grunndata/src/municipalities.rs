//! The country's municipalities by number, for the names an address carries.

use helsenett_store::{Store, StoreError, with_pool};
use rustc_hash::FxHashMap;

pub struct Municipality {
    pub name: Box<str>,
    pub county: Box<str>,
}

#[derive(Default)]
pub struct Municipalities(FxHashMap<Box<str>, Municipality>);

impl Municipalities {
    pub async fn load(store: &Store) -> Result<Municipalities, StoreError> {
        let rows = with_pool!(store, pool => sqlx::query_as::<_, (String, String, String)>(
            "SELECT number, name, county FROM municipality",
        )
        .fetch_all(pool)
        .await)?;
        Ok(Municipalities(
            rows.into_iter()
                .map(|(number, name, county)| {
                    (
                        number.into(),
                        Municipality {
                            name: name.into(),
                            county: county.into(),
                        },
                    )
                })
                .collect(),
        ))
    }

    pub fn get(&self, number: &str) -> Option<&Municipality> {
        self.0.get(number)
    }
}
