//! The loop every stage runs: receive, decode, handle, send the next stage's message,
//! acknowledge.
//!
//! The order is what keeps rule 3 (nothing lost): a message is acknowledged only after its
//! handler has published the output and the next stage's messages are on their queue. A crash
//! anywhere before the acknowledgement means the message comes back and is handled again, which
//! the handlers make harmless (rule 1).
//!
//! A failure is classed once, by the handler, and the class decides what happens to the message:
//! - [`Failure::Discard`]: nothing to do (e.g. the work is already done): acknowledge and warn;
//! - [`Failure::Transient`]: leave it; it becomes visible again after a backoff that grows with
//!   the number of receives. On its last allowed receive ([`RunnerSettings::max_receives`], the
//!   queue's redrive `maxReceiveCount`) the runner sends it to the dead-letter queue itself, with
//!   the reason, rather than leave SQS to move it there without one;
//! - [`Failure::Permanent`]: send it to the dead-letter queue with the reason (as the message
//!   attribute `failure_reason`), then acknowledge it.
//!
//! A message that does not decode is permanent. While a message is handled its visibility is
//! extended, so a long run is not delivered to a second consumer. On shutdown the runner stops
//! receiving, lets in-flight messages finish until the grace deadline, then releases the rest
//! (visibility 0) so another task picks them up at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use crate::config::{ConfigError, Env};
use crate::layout::TableName;
use crate::messages::{self, Message, PartitionReady};
use crate::queue::{Queue, Received};
use crate::telemetry;

/// Why a message was not handled, and so what happens to it.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Nothing to do: acknowledged with a warning.
    #[error("{0}")]
    Discard(String),
    /// May succeed later: left on the queue for redelivery.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Will never succeed: sent to the dead-letter queue with this reason.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl Failure {
    pub fn transient(err: impl Into<anyhow::Error>) -> Self {
        Failure::Transient(err.into())
    }
    pub fn permanent(err: impl Into<anyhow::Error>) -> Self {
        Failure::Permanent(err.into())
    }
}

/// A stage's per-message logic, testable without queues.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The message type on this stage's queue.
    type Message: Message;

    /// The stage's name for logs and metrics (`ingest`, `parse`, ...).
    fn stage(&self) -> &'static str;

    /// Whether this deployment handles the table (a message naming another is permanent).
    fn is_known_table(&self, table: &TableName) -> bool;

    /// Handles one message. `Ok(next)` means the output is published; `next` are the messages
    /// for the next stage (empty when there is nothing downstream). Must be idempotent: the
    /// same message handled twice publishes the same output once.
    async fn handle(&self, message: Self::Message) -> Result<Vec<PartitionReady>, Failure>;
}

/// Receives of a message before it is dead-lettered (the Terraform default of `max_receive_count`).
pub const DEFAULT_MAX_RECEIVES: u32 = 5;

/// The runner's settings, from the environment.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Messages handled at once (`TASCOMI_CONCURRENCY`, default 2).
    pub concurrency: usize,
    /// Visibility timeout given to a message while it is handled, renewed at half-time
    /// (`TASCOMI_VISIBILITY_TIMEOUT_SECS`, default 300).
    pub visibility_timeout: Duration,
    /// Long-poll wait (`TASCOMI_WAIT_TIME_SECS`, default 20).
    pub wait_time: Duration,
    /// How long in-flight messages may run after SIGTERM (`TASCOMI_SHUTDOWN_GRACE_SECS`,
    /// default 25: ECS waits 30 s before SIGKILL).
    pub shutdown_grace: Duration,
    /// First retry delay of a transient failure, doubled per receive up to 15 minutes
    /// (`TASCOMI_RETRY_BASE_SECS`, default 10).
    pub retry_base: Duration,
    /// The receive on which a message that still fails transiently is dead-lettered with its
    /// reason (`TASCOMI_MAX_RECEIVES`, default 5: the queue's redrive `maxReceiveCount`, which
    /// Terraform sets to the same value).
    pub max_receives: u32,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            concurrency: 2,
            visibility_timeout: Duration::from_secs(300),
            wait_time: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(25),
            retry_base: Duration::from_secs(10),
            max_receives: DEFAULT_MAX_RECEIVES,
        }
    }
}

impl RunnerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let settings = Self {
            concurrency: env.parse_or("TASCOMI_CONCURRENCY", d.concurrency)?,
            visibility_timeout: env.secs_or(
                "TASCOMI_VISIBILITY_TIMEOUT_SECS",
                d.visibility_timeout.as_secs(),
            )?,
            wait_time: env.secs_or("TASCOMI_WAIT_TIME_SECS", d.wait_time.as_secs())?,
            shutdown_grace: env
                .secs_or("TASCOMI_SHUTDOWN_GRACE_SECS", d.shutdown_grace.as_secs())?,
            retry_base: env.secs_or("TASCOMI_RETRY_BASE_SECS", d.retry_base.as_secs())?,
            max_receives: env.parse_or("TASCOMI_MAX_RECEIVES", d.max_receives)?,
        };
        for (variable, zero) in [
            ("TASCOMI_CONCURRENCY", settings.concurrency == 0),
            ("TASCOMI_MAX_RECEIVES", settings.max_receives == 0),
        ] {
            if zero {
                return Err(ConfigError::Invalid {
                    variable: variable.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        if settings.wait_time > Duration::from_secs(20) {
            return Err(ConfigError::Invalid {
                variable: "TASCOMI_WAIT_TIME_SECS".into(),
                value: settings.wait_time.as_secs().to_string(),
                reason: "SQS allows at most 20".into(),
            });
        }
        Ok(settings)
    }
}

/// What happened to one delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled; this many next-stage messages were sent, then it was acknowledged.
    Done {
        sent: usize,
    },
    Discarded(String),
    /// Left for redelivery after this delay.
    Retrying {
        reason: String,
        after: Duration,
    },
    DeadLettered(String),
}

/// A stage's loop. See the module docs.
#[derive(Debug)]
pub struct Runner<H> {
    handler: Arc<H>,
    input: Arc<dyn Queue>,
    next: Option<Arc<dyn Queue>>,
    dead_letter: Option<Arc<dyn Queue>>,
    settings: RunnerSettings,
    in_flight: Arc<Mutex<HashMap<String, String>>>,
}

impl<H: Handler> Runner<H> {
    pub fn new(
        handler: Arc<H>,
        input: Arc<dyn Queue>,
        next: Option<Arc<dyn Queue>>,
        dead_letter: Option<Arc<dyn Queue>>,
        settings: RunnerSettings,
    ) -> Self {
        Self {
            handler,
            input,
            next,
            dead_letter,
            settings,
            in_flight: Arc::default(),
        }
    }

    /// Receives and handles messages until `shutdown` is cancelled, then drains in-flight ones
    /// within the grace period. `Err` only when the queue keeps failing to receive.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = JoinSet::new();
        let mut receive_failures = 0u32;
        tracing::info!(
            stage = self.handler.stage(),
            queue = self.input.name(),
            "runner started"
        );
        while !shutdown.is_cancelled() {
            // Receive only when a message could start at once.
            drop(permits.clone().acquire_owned().await?);
            let free = permits.available_permits().clamp(1, 10);
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                received = self.input.receive(free, self.settings.wait_time) => received,
            };
            let messages = match received {
                Ok(messages) => {
                    receive_failures = 0;
                    messages
                }
                Err(err) => {
                    receive_failures += 1;
                    tracing::warn!(error = %err, attempt = receive_failures, "receive failed");
                    if receive_failures >= 10 {
                        return Err(err.into());
                    }
                    tokio::time::sleep(Duration::from_secs(1 << receive_failures.min(5))).await;
                    continue;
                }
            };
            for message in messages {
                let permit = permits.clone().acquire_owned().await?;
                let this = self.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    this.process(message).await
                });
            }
            while let Some(done) = tasks.try_join_next() {
                log_panic(done);
            }
        }
        tracing::info!(in_flight = tasks.len(), "shutting down: no new messages");
        let deadline = tokio::time::sleep(self.settings.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    Some(done) => log_panic(done),
                    None => break,
                },
                _ = &mut deadline => {
                    tasks.abort_all();
                    self.release_in_flight().await;
                    break;
                }
            }
        }
        tracing::info!("runner stopped");
        Ok(())
    }

    /// Handles queued messages until the queue stays empty for `idle`; returns what happened to
    /// each. This is how the embedded default and tests drive a stage without a long-running loop.
    pub async fn drain(&self, idle: Duration) -> Vec<Disposition> {
        let mut dispositions = Vec::new();
        loop {
            let messages = match self.input.receive(10, idle).await {
                Ok(messages) if !messages.is_empty() => messages,
                Ok(_) => return dispositions,
                Err(err) => {
                    tracing::warn!(error = %err, "receive failed");
                    return dispositions;
                }
            };
            let handled = futures::future::join_all(messages.into_iter().map(|m| self.process(m)));
            dispositions.extend(handled.await);
        }
    }

    /// Handles one delivered message end to end and settles it on the queue.
    pub async fn process(&self, received: Received) -> Disposition {
        let span = info_span!(
            "message",
            stage = self.handler.stage(),
            message_id = %received.message_id,
            receive_count = received.receive_count,
            table = tracing::field::Empty,
        );
        telemetry::set_parent_from(&span, &received.attributes);
        self.process_in_span(received).instrument(span).await
    }

    async fn process_in_span(&self, received: Received) -> Disposition {
        let receipt = received.receipt.clone();
        self.track(&receipt, true);
        let heartbeat = self.keep_invisible(&receipt);
        let result = self.decode_and_handle(&received).await;
        heartbeat.abort();
        let disposition = self.settle(&received, result).await;
        self.track(&receipt, false);
        disposition
    }

    async fn decode_and_handle(&self, received: &Received) -> Result<Vec<PartitionReady>, Failure> {
        let message: H::Message =
            messages::decode(&received.body, |t| self.handler.is_known_table(t))
                .map_err(Failure::permanent)?;
        let table = message.table().clone();
        tracing::Span::current().record("table", table.as_str());
        let started = std::time::Instant::now();
        let result = self.handler.handle(message).await;
        // How long a message takes, per stage and table, for the dashboard.
        crate::metrics::emit_with(
            &[("Stage", self.handler.stage()), ("Table", table.as_str())],
            &[crate::metrics::Measure {
                name: "MessageSeconds",
                value: started.elapsed().as_secs_f64(),
                unit: "Seconds",
            }],
        );
        result
    }

    async fn settle(
        &self,
        received: &Received,
        result: Result<Vec<PartitionReady>, Failure>,
    ) -> Disposition {
        match result {
            Ok(next) => {
                let attributes = telemetry::outgoing_attributes(&received.attributes);
                if let Some(queue) = &self.next {
                    for message in &next {
                        if let Err(err) = queue.send(&messages::encode(message), &attributes).await
                        {
                            // Not acknowledged: the message comes back and the (idempotent)
                            // handler runs again, which re-sends.
                            return self
                                .retry(received, format!("sending the next message: {err}"))
                                .await;
                        }
                    }
                }
                let sent = if self.next.is_some() { next.len() } else { 0 };
                self.acknowledge(received).await;
                tracing::info!(sent, "message handled");
                Disposition::Done { sent }
            }
            Err(Failure::Discard(reason)) => {
                tracing::warn!(reason = %reason, "message discarded");
                self.acknowledge(received).await;
                Disposition::Discarded(reason)
            }
            Err(Failure::Transient(err))
                if self.dead_letter.is_some()
                    && received.receive_count >= self.settings.max_receives =>
            {
                let reason = format!(
                    "still failing after {} receives: {err:#}",
                    received.receive_count
                );
                self.dead_letter(received, reason).await
            }
            Err(Failure::Transient(err)) => self.retry(received, format!("{err:#}")).await,
            Err(Failure::Permanent(err)) => self.dead_letter(received, format!("{err:#}")).await,
        }
    }

    /// Sends the message to the dead-letter queue with `reason` (attribute `failure_reason`)
    /// and only then acknowledges it; if the dead-letter queue cannot take it, it is retried.
    async fn dead_letter(&self, received: &Received, reason: String) -> Disposition {
        tracing::error!(reason = %reason, "message failed permanently");
        if let Some(dlq) = &self.dead_letter {
            let mut attributes = received.attributes.clone();
            attributes.insert("failure_reason".into(), truncate(&reason, 4000));
            attributes.insert("failed_stage".into(), self.handler.stage().into());
            if let Err(err) = dlq.send(&received.body, &attributes).await {
                return self.retry(received, format!("dead-lettering: {err}")).await;
            }
            self.acknowledge(received).await;
        }
        // Without a dead-letter queue of our own, SQS's redrive policy moves it there.
        Disposition::DeadLettered(reason)
    }

    async fn retry(&self, received: &Received, reason: String) -> Disposition {
        let exponent = received.receive_count.saturating_sub(1).min(10);
        let after = (self.settings.retry_base * 2u32.pow(exponent)).min(Duration::from_secs(900));
        tracing::warn!(reason = %reason, retry_after_secs = after.as_secs(), "message will be retried");
        if let Err(err) = self.input.extend_visibility(&received.receipt, after).await {
            tracing::warn!(error = %err, "could not set the retry delay");
        }
        Disposition::Retrying { reason, after }
    }

    async fn acknowledge(&self, received: &Received) {
        // A failed acknowledgement only means a redelivery, which is harmless.
        if let Err(err) = self.input.acknowledge(&received.receipt).await {
            tracing::warn!(error = %err, "acknowledge failed; the message will be redelivered");
        }
    }

    /// Renews the visibility timeout at half-time while the handler works.
    fn keep_invisible(&self, receipt: &str) -> tokio::task::JoinHandle<()> {
        let queue = self.input.clone();
        let receipt = receipt.to_owned();
        let timeout = self.settings.visibility_timeout;
        tokio::spawn(
            async move {
                loop {
                    tokio::time::sleep(timeout / 2).await;
                    if let Err(err) = queue.extend_visibility(&receipt, timeout).await {
                        tracing::warn!(error = %err, "could not extend visibility");
                    }
                }
            }
            .in_current_span(),
        )
    }

    fn track(&self, receipt: &str, start: bool) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if start {
            in_flight.insert(receipt.to_owned(), receipt.to_owned());
        } else {
            in_flight.remove(receipt);
        }
    }

    /// Makes messages that did not finish before the deadline visible again at once.
    async fn release_in_flight(&self) {
        let receipts: Vec<String> = {
            let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.keys().cloned().collect()
        };
        for receipt in receipts {
            if let Err(err) = self.input.extend_visibility(&receipt, Duration::ZERO).await {
                tracing::warn!(error = %err, "could not release a message");
            }
        }
    }
}

fn log_panic(done: Result<Disposition, tokio::task::JoinError>) {
    if let Err(err) = done
        && err.is_panic()
    {
        // The message was not acknowledged, so it will be redelivered.
        tracing::error!("message handler panicked");
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Waits for SIGTERM or SIGINT and cancels `token`.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    return;
                }
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}

/// Attributes as sent with a message (for tests building deliveries by hand).
pub fn no_attributes() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[cfg(test)]
mod tests;
