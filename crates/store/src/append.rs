//! Group commit for append-only rows, such as a log of look-ups: many requests hand their rows
//! to one task per node, which writes whatever has gathered in one transaction and answers each
//! request once that transaction has committed. A request never answers before its rows are
//! in the database, and a burst costs one commit rather than one per request.

use tokio::sync::{mpsc, oneshot};

use crate::{Record, Store, StoreError};

/// Requests waiting at most; beyond this, callers wait for room (backpressure).
const QUEUE: usize = 4_096;
/// Rows in one transaction at most, so that one commit never grows without bound.
const MAX_ROWS: usize = 20_000;

type Reply = oneshot::Sender<Result<(), String>>;

/// The handle requests append through; cheap to clone.
pub struct Appender<R>(mpsc::Sender<(Vec<R>, Reply)>);

impl<R> Clone for Appender<R> {
    fn clone(&self) -> Self {
        Appender(self.0.clone())
    }
}

impl<R: Record + Send + Sync + 'static> Appender<R> {
    /// Starts the node's writing task for `R`'s table.
    pub fn start(store: Store) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, receiver));
        Appender(sender)
    }

    /// Appends `rows`, returning once they are committed.
    pub async fn append(&self, rows: Vec<R>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Internal("the append task has stopped");
        self.0.send((rows, reply)).await.map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| StoreError::Query(sqlx::Error::Protocol(e)))
    }
}

async fn run<R: Record + Send + Sync>(store: Store, mut requests: mpsc::Receiver<(Vec<R>, Reply)>) {
    let mut batch = Vec::new();
    let mut rows = Vec::new();
    while requests.recv_many(&mut batch, QUEUE).await > 0 {
        while !batch.is_empty() {
            // Whole requests, up to MAX_ROWS rows (a single larger request goes alone).
            let mut end = 0;
            while end < batch.len() && (end == 0 || rows.len() + batch[end].0.len() <= MAX_ROWS) {
                rows.append(&mut batch[end].0);
                end += 1;
            }
            let result = write(&store, &rows).await.map_err(|e| e.to_string());
            if let Err(e) = &result {
                tracing::error!(table = R::TABLE, error = %e, "appending rows failed");
            }
            metrics::histogram!("store_append_rows", "table" => R::TABLE).record(rows.len() as f64);
            rows.clear();
            for (_, reply) in batch.drain(..end) {
                drop(reply.send(result.clone()));
            }
        }
    }
}

async fn write<R: Record>(store: &Store, rows: &[R]) -> Result<(), StoreError> {
    let mut writer = store.writer().await?;
    writer.insert_all(rows).await?;
    writer.commit().await
}
