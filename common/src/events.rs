//! Announcements to whatever runs downstream of the lake: "today's snapshot of T is published".
//!
//! The narrow interface the pipeline needs from Amazon EventBridge: put one event. Two
//! implementations: [`EventBridgeSink`] (aws-sdk-eventbridge, `PutEvents` on one bus) and
//! [`LocalEventSink`] (the embedded default and tests: records the events in memory).
//!
//! Delivery is at least once: the snapshot stage announces after it publishes, and announces
//! again when a redelivered message finds the snapshot already published (the first
//! announcement may have failed), so a consumer may see one snapshot announced twice and should
//! key its work on (`table`, `snapshot_date`, `run_id`). See docs/snapshot.md.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::aws::classify;
use crate::config::Env;

/// The `source` of every event the pipeline puts.
pub const SOURCE: &str = "tascomi.pipeline";
/// The `detail-type` of [`SnapshotPublished`].
pub const SNAPSHOT_PUBLISHED: &str = "Tascomi snapshot published";
/// The variable naming the bus ([`DEFAULT_BUS`] when unset).
pub const BUS_VARIABLE: &str = "TASCOMI_EVENT_BUS";
/// The account's default event bus.
pub const DEFAULT_BUS: &str = "default";

/// The detail of a [`SNAPSHOT_PUBLISHED`] event: one table's snapshot of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPublished {
    pub table: String,
    /// `YYYYMMDD`, the partition value analysts filter on.
    pub snapshot_date: String,
    /// `s3://bucket/prefix/` of the partition's files (the folder the catalog points at).
    pub location: String,
    pub rows: u64,
    /// The run that published it: the same snapshot announced twice has the same run id.
    pub run_id: String,
}

/// One event: `source`, `detail-type` and a JSON object as detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub source: String,
    pub detail_type: String,
    pub detail: serde_json::Value,
}

impl From<&SnapshotPublished> for Event {
    fn from(published: &SnapshotPublished) -> Self {
        Event {
            source: SOURCE.to_owned(),
            detail_type: SNAPSHOT_PUBLISHED.to_owned(),
            detail: serde_json::to_value(published).expect("the detail serializes"),
        }
    }
}

impl Event {
    /// The detail as a [`SnapshotPublished`], when it is one.
    pub fn snapshot_published(&self) -> Option<SnapshotPublished> {
        (self.detail_type == SNAPSHOT_PUBLISHED)
            .then(|| serde_json::from_value(self.detail.clone()).ok())
            .flatten()
    }
}

/// Why an event was not put.
#[derive(Debug, thiserror::Error)]
#[error("putting a {detail_type:?} event on bus {bus}: {message}")]
pub struct EventError {
    pub bus: String,
    pub detail_type: String,
    pub message: String,
    /// True when trying again later may succeed (throttling, 5xx, network).
    pub transient: bool,
}

impl crate::failure::Transience for EventError {
    fn is_transient(&self) -> bool {
        self.transient
    }
}

/// Where events go.
///
/// Contract: `put` returns `Ok` only once the bus has accepted the event.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    async fn put(&self, event: &Event) -> Result<(), EventError>;
}

/// Amazon EventBridge: `PutEvents` with one entry on one bus.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    /// Puts on `bus` (a name or an ARN).
    pub fn new(config: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(config),
            bus: bus.into(),
        }
    }

    /// The bus named by `TASCOMI_EVENT_BUS`, else the account's default bus.
    pub fn from_env(config: &aws_config::SdkConfig, env: &Env) -> Self {
        Self::new(
            config,
            env.get(BUS_VARIABLE)
                .filter(|bus| !bus.is_empty())
                .unwrap_or(DEFAULT_BUS),
        )
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    pub fn client(&self) -> &aws_sdk_eventbridge::Client {
        &self.client
    }

    fn error(&self, event: &Event, message: String, transient: bool) -> EventError {
        EventError {
            bus: self.bus.clone(),
            detail_type: event.detail_type.clone(),
            message,
            transient,
        }
    }
}

/// Entry error codes that a later attempt may not meet.
const TRANSIENT_ENTRY_CODES: &[&str] = &[
    "ThrottlingException",
    "InternalFailure",
    "InternalException",
    "ServiceUnavailable",
];

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn put(&self, event: &Event) -> Result<(), EventError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&event.source)
            .detail_type(&event.detail_type)
            .detail(event.detail.to_string())
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|err| {
                let failure = classify(&err);
                self.error(event, failure.message, failure.transient)
            })?;
        // PutEvents answers 200 with per-entry failures.
        if output.failed_entry_count() > 0 {
            let failed = output.entries().first();
            let code = failed.and_then(|e| e.error_code()).unwrap_or("unknown");
            let message = failed.and_then(|e| e.error_message()).unwrap_or_default();
            return Err(self.error(
                event,
                format!("entry refused: {code}: {message}"),
                TRANSIENT_ENTRY_CODES.contains(&code),
            ));
        }
        Ok(())
    }
}

/// The embedded default: keeps every event put, in order, so that the operator command can
/// show them and tests can check them. [`LocalEventSink::fail_next`] makes puts fail (tests).
#[derive(Debug, Clone, Default)]
pub struct LocalEventSink {
    state: Arc<Mutex<LocalState>>,
}

#[derive(Debug, Default)]
struct LocalState {
    events: Vec<Event>,
    failures: usize,
}

impl LocalEventSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event put so far, in order.
    pub fn recorded(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The [`SnapshotPublished`] details put so far, in order.
    pub fn snapshots_published(&self) -> Vec<SnapshotPublished> {
        self.lock()
            .events
            .iter()
            .filter_map(Event::snapshot_published)
            .collect()
    }

    /// Removes and returns the events recorded so far (a run's summary, then the next run's).
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// The next `count` puts fail transiently and record nothing.
    pub fn fail_next(&self, count: usize) {
        self.lock().failures = count;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl EventSink for LocalEventSink {
    async fn put(&self, event: &Event) -> Result<(), EventError> {
        let mut state = self.lock();
        if state.failures > 0 {
            state.failures -= 1;
            return Err(EventError {
                bus: "local".into(),
                detail_type: event.detail_type.clone(),
                message: "failing as asked (LocalEventSink::fail_next)".into(),
                transient: true,
            });
        }
        state.events.push(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published() -> SnapshotPublished {
        SnapshotPublished {
            table: "wards".into(),
            snapshot_date: "20261124".into(),
            location: "s3://refined/planning/tascomi/snapshot/wards/snapshot_year=2026/snapshot_month=11/snapshot_day=24/snapshot_date=20261124/run-1/".into(),
            rows: 42,
            run_id: "1".into(),
        }
    }

    #[test]
    fn the_event_has_the_source_type_and_detail_consumers_match() {
        let event = Event::from(&published());
        assert_eq!(event.source, "tascomi.pipeline");
        assert_eq!(event.detail_type, "Tascomi snapshot published");
        assert_eq!(event.detail["table"], "wards");
        assert_eq!(event.detail["snapshot_date"], "20261124");
        assert_eq!(event.detail["rows"], 42);
        assert!(
            event.detail["location"]
                .as_str()
                .unwrap()
                .starts_with("s3://")
        );
        assert_eq!(event.snapshot_published(), Some(published()));
    }

    #[tokio::test]
    async fn the_local_sink_records_in_order_and_fails_when_asked() {
        let sink = LocalEventSink::new();
        sink.fail_next(1);
        let err = sink.put(&Event::from(&published())).await.unwrap_err();
        assert!(crate::failure::Transience::is_transient(&err));
        assert!(sink.recorded().is_empty());
        sink.put(&Event::from(&published())).await.unwrap();
        assert_eq!(sink.snapshots_published(), vec![published()]);
        assert_eq!(sink.take().len(), 1);
        assert!(sink.recorded().is_empty());
    }

    #[test]
    fn the_bus_comes_from_the_environment() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let env = Env::from_pairs([(BUS_VARIABLE, "tascomi-events")]);
        assert_eq!(
            EventBridgeSink::from_env(&sdk, &env).bus(),
            "tascomi-events"
        );
        assert_eq!(
            EventBridgeSink::from_env(&sdk, &Env::default()).bus(),
            "default"
        );
    }
}
