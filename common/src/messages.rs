//! The messages between the schedule, the operator and the stages: small versioned JSON documents.
//!
//! Every message is a JSON object with `"version": 1` and a `"type"`; the rest are the fields of
//! the type. Fields this version does not know are ignored (a newer sender may add some); a
//! missing field, an unknown version or type, or a table that is not configured is rejected with
//! a [`DecodeError`] saying why. The trace context travels beside the body, in the queue's
//! message attributes (see `runner`), so a message body is the same however it was traced.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::layout::{
    Layer, Layout, PartitionRef, TableName, london_today, parse_date, partition_values,
};

/// The one message format version this build reads and writes.
pub const VERSION: u64 = 1;

/// A message type that travels on a queue.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + std::fmt::Debug + 'static {
    /// The `"type"` of the JSON document.
    const TYPE: &'static str;
    fn table(&self) -> &TableName;
    /// Checks that go beyond the shape of the JSON (e.g. partition values that agree).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Why a message was rejected. Every variant is permanent: the same body never decodes later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a JSON object: {0}")]
    NotJson(String),
    #[error("message has no \"version\"")]
    MissingVersion,
    #[error("message version {found} is not supported (this build reads version {VERSION})")]
    UnknownVersion { found: String },
    #[error("message type {found:?} is not expected here (expected {expected:?})")]
    WrongType {
        found: String,
        expected: &'static str,
    },
    #[error("malformed {kind} message: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("table {table:?} is not configured in the pipeline file")]
    UnknownTable { table: String },
}

/// Encodes a message with its version and type.
pub fn encode<M: Message>(message: &M) -> String {
    let mut value = serde_json::to_value(message).expect("messages serialize to JSON objects");
    let object = value.as_object_mut().expect("messages are JSON objects");
    let mut out = serde_json::Map::new();
    out.insert("version".into(), VERSION.into());
    out.insert("type".into(), M::TYPE.into());
    out.append(object);
    serde_json::Value::Object(out).to_string()
}

/// Decodes and checks a message. `is_known_table` says which tables this deployment handles.
pub fn decode<M: Message>(
    body: &str,
    is_known_table: impl Fn(&TableName) -> bool,
) -> Result<M, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|err| DecodeError::NotJson(err.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| DecodeError::NotJson("not an object".into()))?;
    match object.get("version") {
        None => return Err(DecodeError::MissingVersion),
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => {
            return Err(DecodeError::UnknownVersion {
                found: v.to_string(),
            });
        }
    }
    match object.get("type").and_then(|t| t.as_str()) {
        Some(t) if t == M::TYPE => {}
        other => {
            return Err(DecodeError::WrongType {
                found: other.unwrap_or("<none>").to_owned(),
                expected: M::TYPE,
            });
        }
    }
    let message: M = serde_json::from_value(value).map_err(|err| DecodeError::Malformed {
        kind: M::TYPE,
        reason: err.to_string(),
    })?;
    message
        .validate()
        .map_err(|reason| DecodeError::Malformed {
            kind: M::TYPE,
            reason,
        })?;
    if !is_known_table(message.table()) {
        return Err(DecodeError::UnknownTable {
            table: message.table().to_string(),
        });
    }
    Ok(message)
}

/// How much of a table an ingest fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IngestMode {
    /// Each London day since the last successful import, up to yesterday; a table never
    /// imported successfully is loaded in full.
    #[default]
    Incremental,
    /// The whole table.
    Full,
    /// Exactly the pages that failed in the latest import.
    RetryFailed,
}

impl std::str::FromStr for IngestMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "incremental" => Ok(Self::Incremental),
            "full" => Ok(Self::Full),
            "retry-failed" => Ok(Self::RetryFailed),
            other => Err(format!(
                "unknown ingest mode {other:?} (incremental, full, retry-failed)"
            )),
        }
    }
}

/// "Fetch this table": from the schedule or an operator, to ingest-svc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestRequest {
    pub table: TableName,
    #[serde(default)]
    pub mode: IngestMode,
    /// Who asked: `schedule`, `operator:<name>`, ...
    #[serde(default = "unknown_requester")]
    pub requested_by: String,
    /// The London date the run takes as today; absent means the real today. Set for backfills
    /// and tests so that every stage of the run agrees on the day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    /// With an incremental mode: fetch again every London day from this date up to the day
    /// before `as_of`, whatever earlier imports fetched (the operator's "reset the ingested
    /// increments", `tascomi ingest --since`). Absent for the nightly schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<NaiveDate>,
}

fn unknown_requester() -> String {
    "unknown".into()
}

impl Message for IngestRequest {
    const TYPE: &'static str = "ingest_request";
    fn table(&self) -> &TableName {
        &self.table
    }
    fn validate(&self) -> Result<(), String> {
        match (self.since, self.mode, self.as_of) {
            (Some(_), IngestMode::Full | IngestMode::RetryFailed, _) => Err(format!(
                "since is only for an incremental request, not {:?}",
                self.mode
            )),
            (Some(since), _, Some(as_of)) if since >= as_of => {
                Err(format!("since {since} must be before as_of {as_of}"))
            }
            _ => Ok(()),
        }
    }
}

/// "This partition is published": from a stage to the next one.
///
/// One variant asks rather than tells: with `carry_forward: true` (layer `snapshot`) it asks
/// snapshot-svc for today's snapshot of a table that was not fetched tonight (a weekly table on
/// another day), made from its latest snapshot. The schedule sends it without knowing the date,
/// so its `partition` may be empty (`{}`): the day is then `as_of`, else today in London when it
/// is handled. `location` is the snapshot table's root and `run_id` who asked (docs/snapshot.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReady {
    pub table: TableName,
    pub layer: Layer,
    /// Partition keys to values, e.g. `import_date` -> `20261121`. Empty only in a
    /// carry-forward request.
    pub partition: BTreeMap<String, String>,
    /// `s3://bucket/key-prefix/` of the published files.
    pub location: String,
    /// The run that published it.
    pub run_id: String,
    /// As in [`IngestRequest::as_of`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    /// A carry-forward request (see the type's docs). Absent (false) in every other message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub carry_forward: bool,
}

impl PartitionReady {
    pub fn new(
        partition: &PartitionRef,
        location: String,
        run_id: String,
        as_of: Option<NaiveDate>,
    ) -> Self {
        Self {
            table: partition.table.clone(),
            layer: partition.layer,
            partition: partition
                .layer
                .partition_keys()
                .iter()
                .map(|k| k.to_string())
                .zip(partition.values())
                .collect(),
            location,
            run_id,
            as_of,
            carry_forward: false,
        }
    }

    /// A carry-forward request: today's snapshot of `table` (`as_of`, else today in London when
    /// handled) from its latest one. `requested_by` becomes the `run_id` (`schedule`,
    /// `operator:<name>`).
    pub fn carry_forward(
        layout: &Layout,
        table: &TableName,
        requested_by: &str,
        as_of: Option<NaiveDate>,
    ) -> Self {
        Self {
            table: table.clone(),
            layer: Layer::Snapshot,
            partition: BTreeMap::new(),
            location: layout.table_location(table, Layer::Snapshot),
            run_id: requested_by.to_owned(),
            as_of,
            carry_forward: true,
        }
    }

    /// The partition's date (import date, or snapshot date for the snapshot layer); for a
    /// carry-forward request without partition values, `as_of`, else today in London.
    pub fn date(&self) -> NaiveDate {
        if self.partition.is_empty() && self.carry_forward {
            return self.as_of.unwrap_or_else(london_today);
        }
        // validate() guarantees this key parses.
        parse_date(&self.partition[self.layer.partition_keys()[3]]).expect("validated message")
    }

    pub fn partition_ref(&self, layout: &Layout) -> PartitionRef {
        layout.partition(&self.table, self.layer, self.date())
    }
}

impl Message for PartitionReady {
    const TYPE: &'static str = "partition_ready";
    fn table(&self) -> &TableName {
        &self.table
    }
    fn validate(&self) -> Result<(), String> {
        if self.carry_forward && self.layer != Layer::Snapshot {
            return Err(format!(
                "carry_forward asks for a snapshot: layer must be snapshot, not {}",
                self.layer
            ));
        }
        // A carry-forward request may leave the day to the handler.
        if !(self.carry_forward && self.partition.is_empty()) {
            self.validate_partition()?;
        }
        if !self.location.starts_with("s3://") {
            return Err(format!(
                "location {:?} is not an s3:// address",
                self.location
            ));
        }
        if self.run_id.is_empty() {
            return Err("run_id is empty".into());
        }
        Ok(())
    }
}

impl PartitionReady {
    fn validate_partition(&self) -> Result<(), String> {
        let keys = self.layer.partition_keys();
        let date_key = keys[3];
        let date = self
            .partition
            .get(date_key)
            .and_then(|v| parse_date(v).filter(|_| v.len() == 8))
            .ok_or_else(|| format!("partition needs {date_key} as YYYYMMDD"))?;
        for (key, expected) in keys.iter().zip(partition_values(date)) {
            match self.partition.get(*key) {
                Some(v) if *v == expected => {}
                Some(v) => {
                    return Err(format!(
                        "partition value {key}={v} disagrees with {date_key}"
                    ));
                }
                None => return Err(format!("partition lacks {key}")),
            }
        }
        if let Some(extra) = self.partition.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(format!(
                "partition key {extra} does not belong to the {} layer",
                self.layer
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_table(_: &TableName) -> bool {
        true
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn round_trips<M: Message + PartialEq>(name: &str) -> M {
        let body = fixture(name);
        let message: M = decode(&body, any_table).unwrap();
        let again: M = decode(&encode(&message), any_table).unwrap();
        assert_eq!(message, again);
        let as_json: serde_json::Value = serde_json::from_str(&encode(&message)).unwrap();
        let fixture_json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(as_json, fixture_json, "{name} re-encodes to itself");
        message
    }

    /// Each edit of the valid `original` (`from` replaced by `to`) makes it no `PartitionReady`,
    /// for the edit's reason.
    fn assert_edits_rejected(original: &str, edits: &[(&str, &str, &str)]) {
        for (from, to, reason) in edits {
            let edited = original.replace(from, to);
            assert_ne!(edited, original, "the edit for {reason} applied");
            let err = decode::<PartitionReady>(&edited, any_table)
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{reason}: {err}");
        }
    }

    #[test]
    fn ingest_request_fixture_round_trips() {
        let m: IngestRequest = round_trips("ingest_request.json");
        assert_eq!(m.table.as_str(), "applications");
        assert_eq!(m.mode, IngestMode::Incremental);
        let m: IngestRequest = round_trips("ingest_request_retry_failed.json");
        assert_eq!(m.mode, IngestMode::RetryFailed);
        assert_eq!(m.as_of, NaiveDate::from_ymd_opt(2026, 11, 21));
    }

    #[test]
    fn partition_ready_fixture_round_trips() {
        let m: PartitionReady = round_trips("partition_ready.json");
        assert_eq!(m.layer, Layer::Parsed);
        assert_eq!(m.date(), NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        let m: PartitionReady = round_trips("partition_ready_snapshot.json");
        assert_eq!(m.layer, Layer::Snapshot);
    }

    #[test]
    fn minimal_ingest_request_takes_defaults() {
        let m: IngestRequest = decode(
            r#"{"version":1,"type":"ingest_request","table":"appeals"}"#,
            any_table,
        )
        .unwrap();
        assert_eq!(m.mode, IngestMode::Incremental);
        assert_eq!(m.requested_by, "unknown");
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not a JSON object"),
            ("[1]", "not a JSON object"),
            (r#"{"type":"ingest_request","table":"a"}"#, "no \"version\""),
            (
                r#"{"version":2,"type":"ingest_request","table":"a"}"#,
                "version 2 is not supported",
            ),
            (
                r#"{"version":1,"type":"partition_ready","table":"a"}"#,
                "not expected here",
            ),
            (
                r#"{"version":1,"type":"ingest_request"}"#,
                "missing field `table`",
            ),
            (
                r#"{"version":1,"type":"ingest_request","table":"../x"}"#,
                "not a plain identifier",
            ),
            (
                r#"{"version":1,"type":"ingest_request","table":"a","mode":"all"}"#,
                "unknown variant",
            ),
        ];
        for (body, reason) in cases {
            let err = decode::<IngestRequest>(body, any_table)
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{body}: {err}");
        }
        let err = decode::<IngestRequest>(
            r#"{"version":1,"type":"ingest_request","table":"nope"}"#,
            |t| t.as_str() == "applications",
        )
        .unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownTable {
                table: "nope".into()
            }
        );
    }

    #[test]
    fn a_carry_forward_request_names_no_day() {
        // As the schedule sends it (infra/modules/tascomi-pipeline/schedule.tf).
        let body = r#"{"version":1,"type":"partition_ready","table":"wards","layer":"snapshot",
            "partition":{},"location":"s3://refined/planning/tascomi/snapshot/wards/",
            "run_id":"schedule","carry_forward":true}"#;
        let m: PartitionReady = decode(body, any_table).unwrap();
        assert!(m.carry_forward);
        assert_eq!(m.date(), london_today());
        let again: PartitionReady = decode(&encode(&m), any_table).unwrap();
        assert_eq!(again, m);

        let layout = Layout {
            raw_bucket: "raw".into(),
            refined_bucket: "refined".into(),
            database_prefix: "p".into(),
        };
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let table = TableName::new("wards").unwrap();
        let m = PartitionReady::carry_forward(&layout, &table, "operator:run", Some(day));
        let m: PartitionReady = decode(&encode(&m), any_table).unwrap();
        assert_eq!(m.date(), day);
        assert_eq!(m.partition_ref(&layout).layer, Layer::Snapshot);
        assert_eq!(m.location, "s3://refined/planning/tascomi/snapshot/wards/");

        // Other messages are unchanged: no flag in their JSON, and a partition still required.
        assert!(
            !encode(
                &decode::<PartitionReady>(&fixture("partition_ready.json"), any_table).unwrap()
            )
            .contains("carry_forward")
        );
        assert_edits_rejected(
            body,
            &[
                ("\"snapshot\"", "\"increment\"", "layer must be snapshot"),
                (",\"carry_forward\":true", "", "snapshot_date as YYYYMMDD"),
                ("\"schedule\"", "\"\"", "run_id is empty"),
                ("s3://", "/", "not an s3:// address"),
            ],
        );
    }

    #[test]
    fn rejects_inconsistent_partitions() {
        let good = fixture("partition_ready.json");
        assert_edits_rejected(
            &good,
            &[
                ("\"20261121\"", "\"2026112\"", "import_date as YYYYMMDD"),
                (
                    "\"import_day\": \"21\"",
                    "\"import_day\": \"22\"",
                    "disagrees",
                ),
                ("\"parsed\"", "\"snapshot\"", "snapshot_date"),
                ("s3://", "file://", "not an s3:// address"),
            ],
        );
    }
}
