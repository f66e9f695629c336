//! Data-quality gates shared by the stages: unique ids and the completeness of one column.
//!
//! A [`QualityCheck`] is fed batch by batch (memory grows with the number of distinct ids, not
//! with the bytes of the data) and gives a [`QualityReport`] that says what passed and failed
//! with the figures. Every report is recorded to the metrics location as JSON lines, passed or
//! failed, so a dashboard can plot them.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use bytes::Bytes;
use serde::Serialize;

use crate::layout::{PartitionRef, date_value};
use crate::platform::Platform;
use crate::storage::{Storage, StorageError};

/// The completeness a gate requires, as a share of rows (0.99 = 99 %).
pub const MIN_COMPLETENESS: f64 = 0.99;

/// One check's outcome with its figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// `unique_id`, `completeness:<column>`, `cast_failures:<column>`, ...
    pub check: String,
    pub passed: bool,
    /// The measured value (duplicate count, completeness ratio, failed casts).
    pub value: f64,
    /// The bound it was held to.
    pub threshold: f64,
    /// A few examples (duplicate ids, values that would not cast).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// The data-quality results of one stage run on one partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    pub stage: String,
    pub table: String,
    pub layer: String,
    pub partition_date: String,
    pub run_id: String,
    pub rows: u64,
    pub checks: Vec<CheckResult>,
    pub recorded_at: String,
}

impl QualityReport {
    pub fn new(stage: &str, partition: &PartitionRef, run_id: &str) -> Self {
        Self {
            stage: stage.to_owned(),
            table: partition.table.to_string(),
            layer: partition.layer.to_string(),
            partition_date: date_value(partition.date),
            run_id: run_id.to_owned(),
            rows: 0,
            checks: Vec::new(),
            recorded_at: chrono::Utc::now().to_rfc3339(),
        }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks with their figures, for the dead-letter reason and the log.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| {
                let mut text = format!("{} = {} (threshold {})", c.check, c.value, c.threshold);
                if !c.examples.is_empty() {
                    text.push_str(&format!(", e.g. {}", c.examples.join(", ")));
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Writes the report as JSON lines (one line per check, each carrying table, partition and
    /// run) to `<prefix><stage>/<table>/<date>-<run id>.jsonl` in `bucket`. Idempotent per run.
    pub async fn record(
        &self,
        storage: &dyn Storage,
        bucket: &str,
        prefix: &str,
    ) -> Result<(), StorageError> {
        let mut body = String::new();
        for check in &self.checks {
            let mut line = serde_json::to_value(self).expect("reports serialize");
            let object = line.as_object_mut().expect("reports are objects");
            object.remove("checks");
            object.insert("passed".into(), self.passed().into());
            object.insert(
                "check".into(),
                serde_json::to_value(check).expect("checks serialize"),
            );
            body.push_str(&line.to_string());
            body.push('\n');
        }
        let key = format!(
            "{prefix}{}/{}/{}-{}.jsonl",
            self.stage, self.table, self.partition_date, self.run_id
        );
        storage.put(bucket, &key, Bytes::from(body)).await
    }
}

/// Why a gated partition publishes nothing.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{partition}: recording the data-quality results: {source}")]
    Record {
        partition: String,
        #[source]
        source: StorageError,
    },
    #[error("{partition}: data-quality gate failed, nothing published: {failures}")]
    Failed { partition: String, failures: String },
}

impl crate::failure::Transience for GateError {
    /// Only a failure to record the results may go away by itself.
    fn is_transient(&self) -> bool {
        matches!(self, GateError::Record { source, .. } if source.is_transient())
    }
}

impl QualityReport {
    /// The gate every stage runs before publishing: records the report (every run, passed or
    /// failed) to the platform's metrics location, then `Ok` when every check passed. On `Err`
    /// the caller publishes nothing.
    pub async fn record_and_check(
        &self,
        platform: &Platform,
        partition: &PartitionRef,
    ) -> Result<(), GateError> {
        self.record(
            platform.storage.as_ref(),
            &platform.layout.refined_bucket,
            &platform.metrics_prefix,
        )
        .await
        .map_err(|source| GateError::Record {
            partition: partition.describe(),
            source,
        })?;
        if self.passed() {
            return Ok(());
        }
        let failures = self.failures();
        tracing::error!(partition = %partition, rows = self.rows, failures = %failures, "data-quality gate failed");
        Err(GateError::Failed {
            partition: partition.describe(),
            failures,
        })
    }
}

/// Ids seen so far: integers when the ids are integers, text otherwise.
#[derive(Debug, Default)]
struct IdSet {
    integers: HashSet<i64>,
    texts: HashSet<Box<str>>,
}

/// Accumulates the gate's figures over a partition's batches.
#[derive(Debug)]
pub struct QualityCheck {
    id_column: String,
    completeness_column: String,
    rows: u64,
    missing_ids: u64,
    complete: u64,
    ids: IdSet,
    duplicates: u64,
    duplicate_examples: Vec<String>,
}

impl QualityCheck {
    pub fn new(id_column: &str, completeness_column: &str) -> Self {
        Self {
            id_column: id_column.to_owned(),
            completeness_column: completeness_column.to_owned(),
            rows: 0,
            missing_ids: 0,
            complete: 0,
            ids: IdSet::default(),
            duplicates: 0,
            duplicate_examples: Vec::new(),
        }
    }

    pub fn add(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        if let Some(column) = batch.column_by_name(&self.completeness_column) {
            self.complete += (column.len() - column.null_count()) as u64;
        }
        let Some(ids) = batch.column_by_name(&self.id_column) else {
            self.missing_ids += batch.num_rows() as u64;
            return;
        };
        // Integers (typed ids, or text ids that are all digits) go in the compact set.
        let as_int = cast(ids, &DataType::Int64).ok();
        let as_text = cast(ids, &DataType::Utf8).ok();
        for row in 0..ids.len() {
            if ids.is_null(row) {
                self.missing_ids += 1;
                continue;
            }
            let fresh = match as_int.as_ref().filter(|a| !a.is_null(row)) {
                Some(a) => {
                    let v = a.as_primitive::<Int64Type>().value(row);
                    self.ids
                        .integers
                        .insert(v)
                        .then_some(())
                        .ok_or_else(|| v.to_string())
                }
                None => {
                    let text = as_text
                        .as_ref()
                        .map(|a| a.as_string::<i32>().value(row).to_owned())
                        .unwrap_or_default();
                    self.ids
                        .texts
                        .insert(text.clone().into())
                        .then_some(())
                        .ok_or(text)
                }
            };
            if let Err(id) = fresh {
                self.duplicates += 1;
                if self.duplicate_examples.len() < 5 {
                    self.duplicate_examples.push(id);
                }
            }
        }
    }

    /// The gate's checks: ids present and unique, completeness at least [`MIN_COMPLETENESS`].
    /// An empty partition passes (a quiet day is not a failure).
    pub fn results(&self) -> Vec<CheckResult> {
        let completeness = if self.rows == 0 {
            1.0
        } else {
            self.complete as f64 / self.rows as f64
        };
        vec![
            CheckResult {
                check: format!("unique_{}", self.id_column),
                passed: self.duplicates == 0,
                value: self.duplicates as f64,
                threshold: 0.0,
                examples: self.duplicate_examples.clone(),
            },
            CheckResult {
                check: format!("missing_{}", self.id_column),
                passed: self.missing_ids == 0,
                value: self.missing_ids as f64,
                threshold: 0.0,
                examples: vec![],
            },
            CheckResult {
                check: format!("completeness_{}", self.completeness_column),
                passed: completeness >= MIN_COMPLETENESS,
                value: (completeness * 10_000.0).round() / 10_000.0,
                threshold: MIN_COMPLETENESS,
                examples: vec![],
            },
        ]
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Shorthand for tests and tools: one batch's results.
pub fn check_batch(batch: &RecordBatch, id: &str, completeness: &str) -> Vec<CheckResult> {
    let mut check = QualityCheck::new(id, completeness);
    check.add(batch);
    check.results()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(ids: Vec<Option<&str>>, refs: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("reference", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(refs)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn passes_unique_complete_data() {
        let b = batch(
            vec![Some("1"), Some("2"), Some("x")],
            vec![Some("a"), Some("b"), Some("c")],
        );
        let results = check_batch(&b, "id", "reference");
        assert!(results.iter().all(|r| r.passed), "{results:?}");
    }

    #[test]
    fn counts_duplicates_across_batches_with_examples() {
        let mut check = QualityCheck::new("id", "reference");
        check.add(&batch(
            vec![Some("1"), Some("2")],
            vec![Some("a"), Some("b")],
        ));
        check.add(&batch(
            vec![Some("2"), Some("1"), Some("3")],
            vec![Some("a"), Some("b"), Some("c")],
        ));
        let results = check.results();
        assert_eq!(results[0].check, "unique_id");
        assert!(!results[0].passed);
        assert_eq!(results[0].value, 2.0);
        assert_eq!(results[0].examples, ["2", "1"]);
        assert_eq!(check.rows(), 5);
    }

    #[test]
    fn typed_ids_and_completeness_threshold() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("reference", DataType::Utf8, true),
        ]));
        let ids: Vec<i32> = (0..100).collect();
        let refs: Vec<Option<&str>> = (0..100).map(|i| (i >= 2).then_some("r")).collect();
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(ids)),
                Arc::new(StringArray::from(refs)),
            ],
        )
        .unwrap();
        let results = check_batch(&b, "id", "reference");
        assert!(results[0].passed);
        assert!(!results[2].passed, "98% < 99%");
        assert_eq!(results[2].value, 0.98);
        let mut report = QualityReport {
            stage: "parse".into(),
            table: "t".into(),
            layer: "parsed".into(),
            partition_date: "20261121".into(),
            run_id: "r".into(),
            rows: 100,
            checks: results,
            recorded_at: String::new(),
        };
        assert!(!report.passed());
        assert_eq!(
            report.failures(),
            "completeness_reference = 0.98 (threshold 0.99)"
        );
        report.checks.truncate(2);
        assert!(report.passed());
    }

    #[test]
    fn null_and_absent_ids_fail() {
        let b = batch(vec![Some("1"), None], vec![Some("a"), Some("b")]);
        assert!(!check_batch(&b, "id", "reference")[1].passed);
        assert!(!check_batch(&b, "no_such_id", "reference")[1].passed);
        assert!(!check_batch(&b, "id", "no_such_column")[2].passed);
    }
}
