//! Metrics that alarms can watch, in CloudWatch's embedded metric format (EMF).
//!
//! A stage reports what it counted for one table and run with [`emit`]: failed pages,
//! re-queries, collapsed duplicates, days cut by the lookback cap, future-dated records. In a
//! service (`TASCOMI_LOG_FORMAT=json`, set by [`crate::telemetry::init`]) each report is also one
//! EMF JSON line on standard output, which CloudWatch Logs turns into metrics in the namespace
//! [`NAMESPACE`] with the dimensions `Stage` and `Table` (no agent needed). Everywhere a `tracing`
//! event `metrics` carries the same figures, so the operator command and tests see them too.
//!
//! Zero values are reported as well: an alarm on "failed pages > 0" then has data every night,
//! and a missing datapoint means the stage did not run, which is an alarm of its own.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Tascomi";

static EMF_TO_STDOUT: AtomicBool = AtomicBool::new(false);

/// Makes [`emit`] write EMF lines to standard output (services logging JSON to CloudWatch).
pub fn enable_emf_output() {
    EMF_TO_STDOUT.store(true, Ordering::Relaxed);
}

/// One named count (CloudWatch unit `Count`).
pub type Count = (&'static str, u64);

/// One named value with its CloudWatch unit (`Count`, `Seconds`, `None`, ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure<'a> {
    pub name: &'a str,
    pub value: f64,
    pub unit: &'static str,
}

/// The EMF document of one report: `Stage` and `Table` as dimensions, every count a metric.
pub fn to_emf(stage: &str, table: &str, counts: &[Count], timestamp_ms: i64) -> Value {
    let measures = count_measures(counts);
    to_emf_with(
        &[("Stage", stage), ("Table", table)],
        &measures,
        timestamp_ms,
    )
}

/// The EMF document of values under one set of dimensions (name, value), in that order.
pub fn to_emf_with(dimensions: &[(&str, &str)], measures: &[Measure], timestamp_ms: i64) -> Value {
    let definitions: Vec<Value> = measures
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit}))
        .collect();
    let dimension_names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimension_names],
                "Metrics": definitions,
            }],
        }),
    );
    for (name, value) in dimensions {
        document.insert((*name).into(), (*value).into());
    }
    for m in measures {
        // Whole numbers as integers: `2`, not `2.0`, in the log line.
        let value = if m.value.fract() == 0.0 && m.value.abs() < 9.0e15 {
            Value::from(m.value as i64)
        } else {
            Value::from(m.value)
        };
        document.insert(m.name.into(), value);
    }
    Value::Object(document)
}

/// Counts as measures with the unit `Count`.
fn count_measures(counts: &[Count]) -> Vec<Measure<'_>> {
    counts
        .iter()
        .map(|(name, value)| Measure {
            name,
            value: *value as f64,
            unit: "Count",
        })
        .collect()
}

/// Reports the counts of one stage run on one table (see the module docs).
pub fn emit(stage: &str, table: &str, counts: &[Count]) {
    let measures = count_measures(counts);
    emit_with(&[("Stage", stage), ("Table", table)], &measures);
}

/// Reports values under the given dimensions, e.g. `SnapshotAgeHours` per `Table`.
pub fn emit_with(dimensions: &[(&str, &str)], measures: &[Measure]) {
    let document = to_emf_with(dimensions, measures, chrono::Utc::now().timestamp_millis());
    tracing::info!(
        dimensions = %dimensions
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" "),
        metrics = %measures
            .iter()
            .map(|m| format!("{}={}", m.name, m.value))
            .collect::<Vec<_>>()
            .join(" "),
        "metrics"
    );
    if EMF_TO_STDOUT.load(Ordering::Relaxed) {
        write_line(&document.to_string());
    }
}

/// One line on standard output, whole: EMF lines must not interleave with log lines.
#[allow(clippy::print_stdout)]
fn write_line(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_an_emf_document_with_stage_and_table_dimensions() {
        let doc = to_emf(
            "ingest",
            "applications",
            &[("FailedPages", 2), ("Requeries", 0)],
            1_700_000_000_000,
        );
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000_i64);
        let metrics = &aws["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], "Tascomi");
        assert_eq!(metrics["Dimensions"], json!([["Stage", "Table"]]));
        assert_eq!(
            metrics["Metrics"],
            json!([{"Name": "FailedPages", "Unit": "Count"}, {"Name": "Requeries", "Unit": "Count"}])
        );
        // EMF reads each metric's value and each dimension's value from the top level.
        assert_eq!(doc["Stage"], "ingest");
        assert_eq!(doc["Table"], "applications");
        assert_eq!(doc["FailedPages"], 2);
        assert_eq!(doc["Requeries"], 0);
    }

    #[test]
    fn values_carry_their_unit_and_their_own_dimensions() {
        let doc = to_emf_with(
            &[("Table", "appeals")],
            &[Measure {
                name: "SnapshotAgeHours",
                value: 3.5,
                unit: "None",
            }],
            0,
        );
        let metrics = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Dimensions"], json!([["Table"]]));
        assert_eq!(
            metrics["Metrics"],
            json!([{"Name": "SnapshotAgeHours", "Unit": "None"}])
        );
        assert_eq!(doc["Table"], "appeals");
        assert_eq!(doc["SnapshotAgeHours"], 3.5);
        assert!(doc.get("Stage").is_none());
    }
}
