//! A dedicated thread for store I/O, so no actor ever blocks on sled.
//!
//! Jobs run one at a time in submission order: a fill submitted before another
//! is durable before it.

use std::sync::Arc;
use std::time::Instant;

use keel_core::store::Store;
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce(&dyn Store) + Send>;

/// A handle to the store-writer thread. Cloning shares the thread.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Job>,
    store: Arc<dyn Store>,
}

/// The writer thread has stopped (the engine is shutting down or it panicked).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store writer is not running")]
pub struct WriterGone;

impl StoreWriter {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        let thread_store = store.clone();
        let spawned = std::thread::Builder::new().name("keel-store".into()).spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                let started = Instant::now();
                job(thread_store.as_ref());
                crate::metrics::metrics().store_write_seconds.observe(started.elapsed().as_secs_f64());
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the store writer thread");
        }
        Self { tx, store }
    }

    /// Runs `f` on the writer thread and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> Result<T, WriterGone> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = reply.send(f(s));
        });
        self.tx.send(job).await.map_err(|_| WriterGone)?;
        rx.await.map_err(|_| WriterGone)
    }

    /// The store itself, for reads that happen before actors start (start-up)
    /// or on the writer thread.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
