//! The recast stage: config -> build ([`RecastStage::new`]) -> handle one message at a time.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use common::config::{Env, PipelineFile};
use common::dictionary::ColumnTypes;
use common::layout::{Layer, PartitionRef, TableName, date_value};
use common::messages::PartitionReady;
use common::parquet_io::{ParquetIoError, read_file};
use common::platform::Platform;
use common::publish::{PartitionWriter, Published, new_run_id};
use common::quality::{CheckResult, QualityCheck, QualityReport};
use common::runner::{Failure, Handler};
use futures::{Stream, TryStreamExt};
use parse_svc::locks::PartitionLocks;
use parse_svc::schema::bookkeeping_fields;
use parse_svc::source::{PublishedFiles, published_files};
use tracing::instrument;

use crate::cast::{MAX_EXAMPLES, cast_text};
use crate::error::{RecastError, Result};
use crate::plan::{CastPlan, plan};
use crate::settings::RecastSettings;

/// How many missing dictionary columns a report and a log line name.
const MAX_MISSING_NAMED: usize = 10;

/// The recast stage. Cheap to share: handle messages concurrently through an `Arc`.
#[derive(Debug)]
pub struct RecastStage {
    platform: Platform,
    pipeline: PipelineFile,
    dictionary: ColumnTypes,
    settings: RecastSettings,
    locks: PartitionLocks,
}

/// What a successful recast did.
#[derive(Debug, Clone)]
pub struct RecastOutcome {
    /// The message for snapshot-svc.
    pub next: PartitionReady,
    pub published: Published,
    /// The data-quality results, as recorded.
    pub report: QualityReport,
    /// Columns cast to a dictionary type.
    pub cast_columns: usize,
    /// Values that did not cast (now null), over all columns.
    pub cast_failures: u64,
    /// Bytes of parsed Parquet read.
    pub parsed_bytes: u64,
}

/// Cast failures of one column over a partition.
#[derive(Debug, Clone, Default)]
struct ColumnFailures {
    count: u64,
    examples: Vec<String>,
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, ParquetIoError>> + Send>>;

impl RecastStage {
    /// A stage on `platform` for the tables of `pipeline`, typing columns by `dictionary` (the
    /// operator CLI and tests build it this way, in process).
    pub fn new(
        platform: Platform,
        pipeline: PipelineFile,
        dictionary: ColumnTypes,
        settings: RecastSettings,
    ) -> Self {
        Self {
            platform,
            pipeline,
            dictionary,
            settings,
            locks: PartitionLocks::default(),
        }
    }

    /// The service's stage: S3 and Glue, the pipeline file, the dictionary and settings from
    /// the environment.
    pub fn from_env(env: &Env, sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let platform = Platform::aws(sdk, env)?;
        let pipeline = common::service::pipeline_from_env(env)?;
        let dictionary = common::service::dictionary_from_env(env, &pipeline)?;
        let settings = RecastSettings::from_env(env)?;
        tracing::info!(
            tables = pipeline.tables.len(),
            dictionary_tables = dictionary.tables().count(),
            batch_rows = settings.batch_rows,
            refined_bucket = %platform.layout.refined_bucket,
            database_prefix = %platform.layout.database_prefix,
            "recast stage configured"
        );
        Ok(Self::new(platform, pipeline, dictionary, settings))
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Recasts the parsed partition `message` names and publishes the increment partition.
    ///
    /// `Ok` means `increment_<table>` has the partition (possibly empty: a quiet day) with the
    /// typed schema, and the data-quality results are recorded. Values that did not cast are
    /// null and counted, never an error. Idempotent: the same message again publishes the same
    /// rows in place of the first run's. On `Err` nothing new is visible; a failed gate has
    /// recorded its results and left the table's last good partition in place.
    #[instrument(skip_all, fields(table = %message.table, import_date = tracing::field::Empty))]
    pub async fn recast(&self, message: &PartitionReady) -> Result<RecastOutcome> {
        if message.layer != Layer::Parsed {
            return Err(RecastError::WrongLayer {
                table: message.table.to_string(),
                layer: message.layer,
            });
        }
        let started = Instant::now();
        let layout = &self.platform.layout;
        let parsed = message.partition_ref(layout);
        let import_date = date_value(parsed.date);
        tracing::Span::current().record("import_date", import_date.as_str());
        let increment = layout.partition(&message.table, Layer::Increment, parsed.date);
        let _held = self.locks.lock(&increment).await;

        let source = published_files(&self.platform, &parsed)
            .await?
            .ok_or_else(|| RecastError::NotPublished {
                partition: parsed.describe(),
            })?;
        let first = match source.files.first() {
            Some(file) => Some(self.open(&parsed, &source, &file.key).await?),
            None => None,
        };
        let input: SchemaRef = match &first {
            Some((schema, _)) => schema.clone(),
            None => Arc::new(Schema::new(bookkeeping_fields())),
        };
        let config = self.pipeline.table_or_default(&message.table);
        let plan = plan(
            &input,
            message.table.as_str(),
            &self.dictionary,
            config.keep_as_text,
        )
        .map_err(|source| RecastError::Plan {
            partition: parsed.describe(),
            source,
        })?;

        let run_id = new_run_id();
        let mut check = QualityCheck::new("id", &config.completeness_column);
        let mut failures = vec![ColumnFailures::default(); plan.casts.len()];
        let mut writer = PartitionWriter::new(
            self.platform.storage.clone(),
            increment.clone(),
            run_id.clone(),
            plan.output.clone(),
            self.platform.write_options,
        );
        let mut job = CastJob {
            partition: &parsed,
            plan: &plan,
            input: &input,
            failures: &mut failures,
        };
        let written = self
            .cast_files(
                &source,
                first.map(|(_, s)| s),
                &mut job,
                &mut writer,
                &mut check,
            )
            .await;
        if let Err(err) = written {
            writer.abandon().await;
            return Err(err);
        }
        let staged = writer.finish().await?;

        let mut report = QualityReport::new("recast", &increment, &run_id);
        report.rows = check.rows();
        report.checks = check.results();
        let cast_failures = self.report_casts(&increment, &input, &failures, &mut report);
        if !source.files.is_empty() {
            self.report_missing(&increment, &plan, report.rows, &mut report);
        }
        if let Err(gate) = report.record_and_check(&self.platform, &increment).await {
            staged.discard_or_warn().await;
            return Err(gate.into());
        }

        let parameters = BTreeMap::from([
            ("stage".to_string(), "recast".to_string()),
            ("source_location".to_string(), source.location.clone()),
            (
                "source_run_id".to_string(),
                source.run_id.clone().unwrap_or_default(),
            ),
            ("cast_columns".to_string(), plan.cast_columns().to_string()),
            ("cast_failures".to_string(), cast_failures.to_string()),
        ]);
        let published = staged
            .publish(
                self.platform.catalog.as_ref(),
                layout,
                parameters,
                self.platform.orphan_grace,
            )
            .await?;
        let elapsed = started.elapsed().as_secs_f64();
        tracing::info!(
            partition = %increment,
            rows = published.rows,
            columns = plan.output.fields().len(),
            cast_columns = plan.cast_columns(),
            cast_failures,
            files = published.files,
            parsed_bytes = source.bytes(),
            seconds = elapsed,
            rows_per_second = (published.rows as f64 / elapsed.max(1e-9)).round(),
            "increment partition published"
        );
        Ok(RecastOutcome {
            next: PartitionReady::new(
                &increment,
                published.location.clone(),
                run_id,
                message.as_of,
            ),
            published,
            report,
            cast_columns: plan.cast_columns(),
            cast_failures,
            parsed_bytes: source.bytes(),
        })
    }

    async fn open(
        &self,
        parsed: &PartitionRef,
        source: &PublishedFiles,
        key: &str,
    ) -> Result<(SchemaRef, BatchStream)> {
        let (schema, stream) = read_file(
            self.platform.storage.clone(),
            &source.bucket,
            key,
            self.settings.batch_rows,
        )
        .await
        .map_err(|source| RecastError::Read {
            partition: parsed.describe(),
            source,
        })?;
        Ok((schema, Box::pin(stream)))
    }

    /// Streams every file of the partition through `job`, checking and writing each batch.
    /// `first` is the first file's stream, already open.
    async fn cast_files(
        &self,
        source: &PublishedFiles,
        first: Option<BatchStream>,
        job: &mut CastJob<'_>,
        writer: &mut PartitionWriter,
        check: &mut QualityCheck,
    ) -> Result<()> {
        let mut pending = first;
        for file in source.files.iter() {
            let mut stream = match pending.take() {
                Some(stream) => stream,
                None => {
                    let (schema, stream) = self.open(job.partition, source, &file.key).await?;
                    if schema.fields() != job.input.fields() {
                        return Err(RecastError::MixedSchemas {
                            partition: job.partition.describe(),
                            bucket: source.bucket.clone(),
                            key: file.key.clone(),
                        });
                    }
                    stream
                }
            };
            while let Some(batch) = stream
                .try_next()
                .await
                .map_err(|source| RecastError::Read {
                    partition: job.partition.describe(),
                    source,
                })?
            {
                let typed = job.cast(&batch)?;
                check.add(&typed);
                writer.write(&typed).await?;
            }
        }
        Ok(())
    }

    /// Adds a `cast_failures_<column>` check per column with failures and a `cast_failures`
    /// total, all informational (they pass: a value that will not cast is null, as in the
    /// pipeline this replaces, but never silently). Returns the total.
    fn report_casts(
        &self,
        increment: &PartitionRef,
        input: &Schema,
        failures: &[ColumnFailures],
        report: &mut QualityReport,
    ) -> u64 {
        let mut total = 0;
        for (field, failed) in input.fields().iter().zip(failures) {
            if failed.count == 0 {
                continue;
            }
            total += failed.count;
            tracing::warn!(
                partition = %increment,
                column = %field.name(),
                failures = failed.count,
                examples = ?failed.examples,
                "values did not cast and are null"
            );
            report.checks.push(CheckResult {
                check: format!("cast_failures_{}", field.name()),
                passed: true,
                value: failed.count as f64,
                threshold: 0.0,
                examples: failed.examples.clone(),
            });
        }
        report.checks.push(CheckResult {
            check: "cast_failures".into(),
            passed: true,
            value: total as f64,
            threshold: 0.0,
            examples: Vec::new(),
        });
        total
    }

    /// Adds the informational `missing_dictionary_columns` check.
    fn report_missing(
        &self,
        increment: &PartitionRef,
        plan: &CastPlan,
        rows: u64,
        report: &mut QualityReport,
    ) {
        let named: Vec<String> = plan
            .missing
            .iter()
            .take(MAX_MISSING_NAMED)
            .cloned()
            .collect();
        if !plan.missing.is_empty() && rows > 0 {
            tracing::warn!(
                partition = %increment,
                missing = plan.missing.len(),
                columns = ?named,
                "dictionary columns are not in the data"
            );
        }
        report.checks.push(CheckResult {
            check: "missing_dictionary_columns".into(),
            passed: true,
            value: plan.missing.len() as f64,
            threshold: 0.0,
            examples: named,
        });
    }
}

/// One partition's casting: the plan, and the failures counted so far per input column.
struct CastJob<'a> {
    partition: &'a PartitionRef,
    plan: &'a CastPlan,
    input: &'a SchemaRef,
    failures: &'a mut [ColumnFailures],
}

impl CastJob<'_> {
    fn cast(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (i, (column, cast)) in batch.columns().iter().zip(&self.plan.casts).enumerate() {
            let Some(to) = cast else {
                columns.push(column.clone());
                continue;
            };
            let cast = cast_text(column.as_ref(), *to).map_err(|source| RecastError::Cast {
                partition: self.partition.describe(),
                column: self.input.field(i).name().clone(),
                source,
            })?;
            let failed = &mut self.failures[i];
            failed.count += cast.failures as u64;
            let room = MAX_EXAMPLES.saturating_sub(failed.examples.len());
            failed.examples.extend(cast.examples.into_iter().take(room));
            columns.push(cast.array);
        }
        RecordBatch::try_new(self.plan.output.clone(), columns).map_err(|source| {
            RecastError::Arrow {
                partition: self.partition.describe(),
                source,
            }
        })
    }
}

#[async_trait]
impl Handler for RecastStage {
    type Message = PartitionReady;

    fn stage(&self) -> &'static str {
        "recast"
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.pipeline.contains(table)
    }

    async fn handle(&self, message: PartitionReady) -> Result<Vec<PartitionReady>, Failure> {
        match self.recast(&message).await {
            Ok(outcome) => Ok(vec![outcome.next]),
            Err(err) => Err(err.into_failure()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Int32Type, TimeUnit, TimestampMicrosecondType};
    use chrono::NaiveDate;
    use parse_svc::testing::{RawPage, publish_raw, read_published};
    use parse_svc::{ParseSettings, ParseStage};

    const PIPELINE: &str = "\
tables:
  appeals: daily
  notes: { schedule: daily, keep_as_text: true }
";

    const DICTIONARY: &str = r#"[{
        "integer": {"appeals": ["id", "officer_id", "never_sent"], "notes": ["id"]},
        "long": {"appeals": ["location_x"]},
        "double": {"appeals": ["costs"]},
        "boolean": {"appeals": ["ceased"]},
        "timestamp": {"appeals": ["last_updated"]},
        "date": {"appeals": ["hearing_day"]}
    }]"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        platform: Platform,
        parse: ParseStage,
        recast: RecastStage,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let pipeline = PipelineFile::parse(PIPELINE, "pipeline.yaml").unwrap();
        let dictionary = ColumnTypes::parse(DICTIONARY, "dictionary.json").unwrap();
        Fixture {
            parse: ParseStage::new(platform.clone(), pipeline.clone(), ParseSettings::default()),
            recast: RecastStage::new(
                platform.clone(),
                pipeline,
                dictionary,
                RecastSettings::default(),
            ),
            platform,
            _dir: dir,
        }
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    fn table(name: &str) -> TableName {
        TableName::new(name).unwrap()
    }

    fn appeal(id: &str, officer: &str, ceased: &str) -> String {
        serde_json::json!({
            "id": id,
            "officer_id": officer,
            "location_x": "533123",
            "costs": "1250.75",
            "ceased": ceased,
            "last_updated": "2026-11-20 17:45:12",
            "hearing_day": "2026-12-01",
            "reference": "APP/2026/1",
        })
        .to_string()
    }

    /// Raw -> parsed for `records`; returns the message for recast-svc.
    async fn parsed(f: &Fixture, table_name: &str, records: Vec<String>) -> PartitionReady {
        let raw = publish_raw(
            &f.platform,
            &table(table_name),
            date(),
            &[RawPage::ok(1, records)],
        )
        .await
        .unwrap();
        f.parse.parse(&raw).await.unwrap().next
    }

    async fn increment(f: &Fixture, table_name: &str) -> Option<RecordBatch> {
        let partition = f
            .platform
            .layout
            .partition(&table(table_name), Layer::Increment, date());
        let batches = read_published(&f.platform, &partition).await.unwrap()?;
        let schema = batches.first().map(|b| b.schema())?;
        Some(concat_batches(&schema, &batches).unwrap())
    }

    fn check<'r>(report: &'r QualityReport, name: &str) -> Option<&'r CheckResult> {
        report.checks.iter().find(|c| c.check == name)
    }

    #[tokio::test]
    async fn dictionary_columns_are_typed_and_the_rest_stay_text() {
        let f = fixture();
        let mut message = parsed(
            &f,
            "appeals",
            vec![appeal("1", "7", "t"), appeal("2", " 8 ", "No")],
        )
        .await;
        message.as_of = Some(date());
        let outcome = f.recast.recast(&message).await.unwrap();
        assert_eq!(outcome.next.layer, Layer::Increment);
        assert_eq!(outcome.next.as_of, Some(date()));
        assert_eq!(outcome.cast_columns, 7);
        assert_eq!(outcome.cast_failures, 0);
        assert!(outcome.report.passed());

        let batch = increment(&f, "appeals").await.unwrap();
        let schema = batch.schema();
        let type_of = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
        assert_eq!(type_of("id"), DataType::Int32);
        assert_eq!(type_of("officer_id"), DataType::Int32);
        assert_eq!(type_of("location_x"), DataType::Int64);
        assert_eq!(type_of("costs"), DataType::Float64);
        assert_eq!(type_of("ceased"), DataType::Boolean);
        assert_eq!(
            type_of("last_updated"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(type_of("hearing_day"), DataType::Date32);
        assert_eq!(type_of("reference"), DataType::Utf8);
        assert_eq!(type_of("page_number"), DataType::Int32);
        assert_eq!(
            type_of("import_datetime"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(type_of("import_timestamp"), DataType::Utf8);

        let officers = batch
            .column_by_name("officer_id")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!(officers.values().to_vec(), [7, 8]);
        let ceased = batch.column_by_name("ceased").unwrap().as_boolean();
        assert_eq!(ceased.iter().collect::<Vec<_>>(), [Some(true), Some(false)]);
        let updated = batch
            .column_by_name("last_updated")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let expected = NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(17, 45, 12)
            .unwrap();
        assert_eq!(updated.value(0), expected.and_utc().timestamp_micros());

        // The refined table in the catalog carries the typed schema.
        let def = f
            .platform
            .catalog
            .table("local-tascomi-refined-zone", "increment_appeals")
            .await
            .unwrap()
            .unwrap();
        let hive = |name: &str| {
            def.columns
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .hive_type
                .clone()
        };
        assert_eq!(hive("id"), "int");
        assert_eq!(hive("location_x"), "bigint");
        assert_eq!(hive("costs"), "double");
        assert_eq!(hive("ceased"), "boolean");
        assert_eq!(hive("last_updated"), "timestamp");
        assert_eq!(hive("hearing_day"), "date");
        assert_eq!(hive("reference"), "string");
    }

    #[tokio::test]
    async fn values_that_do_not_cast_become_null_and_are_counted_per_column() {
        let f = fixture();
        let records = vec![
            appeal("1", "7", "t"),
            appeal("2", "seven", "maybe"),
            appeal("3", "7.5", "t"),
            appeal("4", "", "f"),
        ];
        let message = parsed(&f, "appeals", records).await;
        let outcome = f.recast.recast(&message).await.unwrap();
        assert!(outcome.report.passed(), "cast failures are informational");
        assert_eq!(outcome.cast_failures, 3);
        let officer = check(&outcome.report, "cast_failures_officer_id").unwrap();
        assert_eq!(officer.value, 2.0);
        assert_eq!(officer.examples, ["seven", "7.5"]);
        assert!(officer.passed);
        assert_eq!(
            check(&outcome.report, "cast_failures_ceased")
                .unwrap()
                .examples,
            ["maybe"]
        );
        assert_eq!(check(&outcome.report, "cast_failures").unwrap().value, 3.0);
        assert!(check(&outcome.report, "cast_failures_id").is_none());

        let batch = increment(&f, "appeals").await.unwrap();
        let officers = batch.column_by_name("officer_id").unwrap();
        assert_eq!(officers.null_count(), 3, "two failures and one empty value");
        assert_eq!(outcome.published.rows, 4);
    }

    #[tokio::test]
    async fn missing_dictionary_columns_are_reported_not_fatal() {
        let f = fixture();
        let message = parsed(&f, "appeals", vec![appeal("1", "7", "t")]).await;
        let outcome = f.recast.recast(&message).await.unwrap();
        let missing = check(&outcome.report, "missing_dictionary_columns").unwrap();
        assert!(missing.passed);
        assert_eq!(missing.value, 1.0);
        assert_eq!(missing.examples, ["never_sent"]);
    }

    #[tokio::test]
    async fn keep_as_text_tables_pass_through_as_text() {
        let f = fixture();
        let message = parsed(&f, "notes", vec![r#"{"id":"1","body":"x"}"#.into()]).await;
        let outcome = f.recast.recast(&message).await.unwrap();
        assert_eq!(outcome.cast_columns, 0);
        let batch = increment(&f, "notes").await.unwrap();
        assert_eq!(
            batch.column_by_name("id").unwrap().data_type(),
            &DataType::Utf8
        );
        assert_eq!(
            batch.column_by_name("page_number").unwrap().data_type(),
            &DataType::Int32
        );
    }

    #[tokio::test]
    async fn an_id_that_will_not_cast_fails_the_gate_and_publishes_nothing() {
        let f = fixture();
        // Unique as text, so parse passes; too large for the dictionary's integer, so the
        // increment would have a row without an id.
        let message = parsed(
            &f,
            "appeals",
            vec![appeal("1", "7", "t"), appeal("3000000000", "8", "f")],
        )
        .await;
        let err = f.recast.recast(&message).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("appeals increment import_date=20261121: data-quality gate failed, nothing published: missing_id = 1"),
            "{text}"
        );
        assert!(matches!(err.into_failure(), Failure::Permanent(_)));
        assert!(increment(&f, "appeals").await.is_none());
        let partition = f
            .platform
            .layout
            .partition(&table("appeals"), Layer::Increment, date());
        let left = f
            .platform
            .storage
            .list(&partition.bucket, &partition.key_prefix())
            .await
            .unwrap();
        assert!(
            left.is_empty(),
            "the failed run's files are removed: {left:?}"
        );
        let recorded = f
            .platform
            .storage
            .list(
                &f.platform.layout.refined_bucket,
                &format!("{}recast/appeals/", f.platform.metrics_prefix),
            )
            .await
            .unwrap();
        assert_eq!(recorded.len(), 1, "the failed run's results are recorded");
    }

    #[tokio::test]
    async fn the_same_message_twice_publishes_the_partition_once() {
        let f = fixture();
        let message = parsed(
            &f,
            "appeals",
            vec![appeal("1", "7", "t"), appeal("2", "8", "f")],
        )
        .await;
        let first = f.recast.recast(&message).await.unwrap();
        let second = f.recast.recast(&message).await.unwrap();
        assert_eq!(
            second.published.replaced.as_deref(),
            Some(first.published.location.as_str())
        );
        assert_eq!(increment(&f, "appeals").await.unwrap().num_rows(), 2);
    }

    #[tokio::test]
    async fn a_quiet_day_publishes_an_empty_increment() {
        let f = fixture();
        let raw = publish_raw(&f.platform, &table("appeals"), date(), &[])
            .await
            .unwrap();
        let message = f.parse.parse(&raw).await.unwrap().next;
        let outcome = f.recast.recast(&message).await.unwrap();
        assert_eq!(outcome.published.rows, 0);
        assert!(outcome.report.passed());
        assert!(check(&outcome.report, "missing_dictionary_columns").is_none());
    }

    #[tokio::test]
    async fn messages_for_other_layers_are_refused() {
        let f = fixture();
        let raw = publish_raw(&f.platform, &table("appeals"), date(), &[])
            .await
            .unwrap();
        let err = f.recast.recast(&raw).await.unwrap_err().to_string();
        assert!(
            err.contains("reads parsed partitions, but the message names the raw layer of appeals"),
            "{err}"
        );
        assert_eq!(f.recast.stage(), "recast");
        assert!(f.recast.is_known_table(&table("notes")));
        assert!(!f.recast.is_known_table(&table("wards")));
    }
}
