//! What never changes about a message once accepted: its metadata, its receivers and its
//! document. Each node keeps the most recent in memory, filled by its writer at commit and by
//! reads of what another node accepted, so fetching a document or answering it does not go to
//! the database. Delivery states change and are always read from the database.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use helsenett_core::HerId;

use crate::reads::MessageRow;

/// A message as accepted.
#[derive(Debug)]
pub struct Accepted {
    pub message: MessageRow,
    pub receivers: Vec<HerId>,
    pub document: Vec<u8>,
}

/// The most recently accepted messages, up to a number of document bytes, oldest out first.
pub struct Cache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Arc<Accepted>>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    pub fn new(max_bytes: usize) -> Self {
        Cache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Accepted>> {
        self.lock().by_id.get(id).cloned()
    }

    pub fn insert(&self, accepted: Arc<Accepted>) {
        let size = accepted.document.len();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        let id = accepted.message.id.clone();
        if inner.by_id.insert(id.clone(), accepted).is_some() {
            return;
        }
        inner.order.push_back(id);
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(evicted) = inner.by_id.remove(&oldest) {
                inner.bytes -= evicted.document.len();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(id: &str, bytes: usize) -> Arc<Accepted> {
        Arc::new(Accepted {
            message: MessageRow {
                id: id.to_owned(),
                sender: HerId::new(1).unwrap(),
                document_id: id.to_owned(),
                gen_date: String::new(),
                is_apprec: false,
                content_type: "application/xml".to_owned(),
                message_type: "X".to_owned(),
            },
            receivers: vec![HerId::new(2).unwrap()],
            document: vec![0; bytes],
        })
    }

    #[test]
    fn the_oldest_go_first_when_the_bytes_run_out() {
        let cache = Cache::new(250);
        for id in ["a", "b", "c"] {
            cache.insert(accepted(id, 100));
        }
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some() && cache.get("c").is_some());
        cache.insert(accepted("huge", 1_000));
        assert!(cache.get("huge").is_none(), "larger than the cache");
        cache.insert(accepted("c", 100));
        assert!(
            cache.get("b").is_some(),
            "a second insert of one id counts once"
        );
    }
}
