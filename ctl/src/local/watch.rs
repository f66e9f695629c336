//! Watching the stages: each handler's failures in a [`Journal`], its work in an [`Activity`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::layout::{TableName, date_value};
use common::messages::{Message, PartitionReady};
use common::runner::{Failure, Handler};

use crate::stage::Stage;

/// The latest failed attempt of each stage on each table while this pipeline ran. A success
/// of the stage on the table clears its entry, so what is left explains a table that did not
/// reach its snapshot. Dead letters remain the authoritative record; this only adds the
/// failures that left no dead letter (a discarded message, one still retrying).
#[derive(Debug, Clone, Default)]
pub struct Journal {
    failures: BTreeMap<(String, Stage), String>,
}

impl Journal {
    /// The failures recorded for a table, in pipeline order, as `<stage>: <reason>`.
    pub fn failures(&self, table: &str) -> Vec<String> {
        self.failures
            .iter()
            .filter(|((t, _), _)| t == table)
            .map(|((_, stage), reason)| format!("{stage}: {reason}"))
            .collect()
    }

    fn record(&mut self, table: &str, stage: Stage, outcome: Result<(), String>) {
        let key = (table.to_owned(), stage);
        match outcome {
            Ok(()) => {
                self.failures.remove(&key);
            }
            Err(reason) => {
                self.failures.insert(key, reason);
            }
        }
    }
}

/// What the stages are doing, for progress: the messages being handled and those finished.
#[derive(Debug, Default)]
pub struct Activity {
    next_id: u64,
    pub(super) in_flight: BTreeMap<u64, (Stage, String, Instant)>,
    pub(super) finished: Vec<Finished>,
}

/// One message handled by a stage.
#[derive(Debug, Clone)]
pub struct Finished {
    pub stage: Stage,
    pub table: String,
    /// `published parsed 20261110`, `failed (retried): ...`.
    pub outcome: String,
    pub took: Duration,
}

impl Activity {
    fn start(&mut self, stage: Stage, table: &str) -> u64 {
        self.next_id += 1;
        self.in_flight
            .insert(self.next_id, (stage, table.to_owned(), Instant::now()));
        self.next_id
    }

    fn finish(&mut self, id: u64, outcome: String) {
        if let Some((stage, table, started)) = self.in_flight.remove(&id) {
            self.finished.push(Finished {
                stage,
                table,
                outcome,
                took: started.elapsed(),
            });
        }
    }
}

/// A stage's handler, unchanged, whose outcomes are written to the [`Journal`] and whose work
/// is tracked in the [`Activity`].
pub(super) struct Watched<H> {
    pub(super) stage: Stage,
    pub(super) inner: H,
    pub(super) journal: Arc<Mutex<Journal>>,
    pub(super) activity: Arc<Mutex<Activity>>,
}

#[async_trait]
impl<H: Handler> Handler for Watched<H> {
    type Message = H::Message;

    fn stage(&self) -> &'static str {
        self.inner.stage()
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.inner.is_known_table(table)
    }

    async fn handle(&self, message: H::Message) -> Result<Vec<PartitionReady>, Failure> {
        let table = message.table().to_string();
        let id = lock(&self.activity).start(self.stage, &table);
        let result = self.inner.handle(message).await;
        let progress = match &result {
            Ok(published) if published.is_empty() => "done, nothing to publish".to_owned(),
            Ok(published) => published
                .iter()
                .map(|p| format!("published {} {}", p.layer, date_value(p.date())))
                .collect::<Vec<_>>()
                .join(", "),
            Err(Failure::Discard(reason)) => format!("skipped: {}", short(reason)),
            Err(Failure::Transient(err)) => {
                format!("failed, will retry: {}", short(&format!("{err:#}")))
            }
            Err(Failure::Permanent(err)) => format!("FAILED: {}", short(&format!("{err:#}"))),
        };
        lock(&self.activity).finish(id, progress);
        let outcome = match &result {
            Ok(_) => Ok(()),
            Err(Failure::Discard(reason)) => Err(format!("skipped: {reason}")),
            Err(Failure::Transient(err)) => Err(format!("{err:#} (retried)")),
            Err(Failure::Permanent(err)) => Err(format!("{err:#}")),
        };
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&table, self.stage, outcome);
        result
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first 200 characters of a reason, for a progress line.
pub(super) fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}
