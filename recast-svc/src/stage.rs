//! The recast stage: config -> build ([`RecastStage::new`]) -> handle one message at a time.
//!
//! The flow (lock, read, write, gate, publish, next message) is `common`'s
//! [`TransformStage`]; this stage's own part is [`Cast`]: a [plan](crate::plan) from the
//! first file's schema and the dictionary, then every batch [cast](crate::cast), the values
//! that would not cast counted per column.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use common::bookkeeping::bookkeeping_fields;
use common::config::{Env, PipelineFile};
use common::dictionary::ColumnTypes;
use common::failure::Transience;
use common::layout::{Layer, PartitionRef, TableName};
use common::messages::PartitionReady;
use common::platform::Platform;
use common::publish::Published;
use common::quality::{CheckResult, QualityReport};
use common::runner::{Failure, Handler};
use common::source::PartitionReader;
use common::transform_stage::{
    Job, Output, Transform, TransformError, TransformStage, Transformed,
};
use tracing::instrument;

use crate::cast::{MAX_EXAMPLES, cast_text};
use crate::error::{RecastError, Result};
use crate::plan::CastPlan;
use crate::settings::RecastSettings;

/// How many missing dictionary columns a report and a log line name.
const MAX_MISSING_NAMED: usize = 10;

/// The recast stage. Cheap to share: handle messages concurrently through an `Arc`.
#[derive(Debug)]
pub struct RecastStage {
    stage: TransformStage<Cast>,
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

impl RecastStage {
    /// A stage on `platform` for the tables of `pipeline`, typing columns by `dictionary` (the
    /// operator CLI and tests build it this way, in process).
    pub fn new(
        platform: Platform,
        pipeline: PipelineFile,
        dictionary: ColumnTypes,
        settings: RecastSettings,
    ) -> Self {
        let cast = Cast { dictionary };
        Self {
            stage: TransformStage::new(platform, pipeline, settings.batch_rows, cast),
        }
    }

    /// The service's stage: S3 and Glue, the pipeline file, the dictionary (a path or an S3
    /// object, read once here) and settings from the environment.
    pub async fn from_env(env: &Env, sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let platform = Platform::aws(sdk, env)?;
        let pipeline = common::service::pipeline_from_env(env)?;
        let dictionary = common::service::dictionary_from_env(env, &pipeline, sdk).await?;
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
        self.stage.platform()
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
        let done = self.stage.run(message).await?;
        Ok(RecastOutcome {
            next: done.next,
            published: done.published,
            report: done.report,
            cast_columns: done.summary.plan.cast_columns(),
            cast_failures: done.summary.cast_failures,
            parsed_bytes: done.input_bytes,
        })
    }
}

#[async_trait]
impl Handler for RecastStage {
    type Message = PartitionReady;

    fn stage(&self) -> &'static str {
        Cast::STAGE
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.stage.is_known_table(table)
    }

    async fn handle(&self, message: PartitionReady) -> Result<Vec<PartitionReady>, Failure> {
        match self.recast(&message).await {
            Ok(outcome) => Ok(vec![outcome.next]),
            Err(err) => Err(err.into_failure()),
        }
    }
}

/// The recast stage's own part: text columns cast to the types of the column-type dictionary.
#[derive(Debug)]
pub struct Cast {
    dictionary: ColumnTypes,
}

/// What the partition's first file says, and the plan made from it.
#[derive(Debug)]
pub struct CastWork {
    /// The parsed schema (of every file: a file with other columns is refused).
    input: SchemaRef,
    plan: CastPlan,
}

/// What casting the partition came to.
#[derive(Debug)]
pub struct CastSummary {
    input: SchemaRef,
    plan: CastPlan,
    /// Per input column.
    failures: Vec<ColumnFailures>,
    /// Over all columns.
    cast_failures: u64,
}

/// Cast failures of one column over a partition.
#[derive(Debug, Clone, Default)]
struct ColumnFailures {
    count: u64,
    examples: Vec<String>,
}

#[async_trait]
impl Transform for Cast {
    const STAGE: &'static str = common::stage::Stage::Recast.name();
    const READS: Layer = Layer::Parsed;
    const WRITES: Layer = Layer::Increment;
    type Error = RecastError;
    type Plan = CastWork;
    type Summary = CastSummary;

    /// Opens the first file for its schema (an empty partition has the bookkeeping columns
    /// only) and plans each column.
    async fn plan(
        &self,
        job: &Job<'_>,
        input: &mut PartitionReader<'_>,
    ) -> Result<(SchemaRef, CastWork)> {
        input.require_same_columns();
        let schema = match input.first_schema().await.map_err(TransformError::from)? {
            Some(schema) => schema,
            None => Arc::new(Schema::new(bookkeeping_fields())),
        };
        let plan = crate::plan::plan(
            &schema,
            job.message.table.as_str(),
            &self.dictionary,
            job.table.keep_as_text,
        )
        .map_err(|source| RecastError::Plan {
            partition: job.input.describe(),
            source,
        })?;
        Ok((
            plan.output.clone(),
            CastWork {
                input: schema,
                plan,
            },
        ))
    }

    /// Casts every batch of the partition, counting the values that would not cast.
    async fn write(
        &self,
        job: &Job<'_>,
        work: CastWork,
        input: &mut PartitionReader<'_>,
        output: &mut Output,
    ) -> Result<CastSummary> {
        let CastWork {
            input: schema,
            plan,
        } = work;
        let mut failures = vec![ColumnFailures::default(); plan.casts.len()];
        let mut casting = CastJob {
            partition: &job.input,
            plan: &plan,
            input: &schema,
            failures: &mut failures,
        };
        while let Some((_, batch)) = input.next_batch().await.map_err(TransformError::from)? {
            let typed = casting.cast(&batch)?;
            output.write(&typed).await?;
        }
        let cast_failures = failures.iter().map(|f| f.count).sum();
        Ok(CastSummary {
            input: schema,
            plan,
            failures,
            cast_failures,
        })
    }

    fn report(&self, job: &Job<'_>, summary: &CastSummary, report: &mut QualityReport) {
        report_casts(&job.output, &summary.input, &summary.failures, report);
        if !job.source.files.is_empty() {
            report_missing(&job.output, &summary.plan, report.rows, report);
        }
    }

    fn parameters(&self, summary: &CastSummary) -> Vec<(String, String)> {
        vec![
            (
                "cast_columns".to_string(),
                summary.plan.cast_columns().to_string(),
            ),
            (
                "cast_failures".to_string(),
                summary.cast_failures.to_string(),
            ),
        ]
    }

    fn log_published(&self, job: &Job<'_>, done: &Transformed<CastSummary>) {
        let summary = &done.summary;
        tracing::info!(
            partition = %job.output,
            rows = done.published.rows,
            columns = summary.plan.output.fields().len(),
            cast_columns = summary.plan.cast_columns(),
            cast_failures = summary.cast_failures,
            files = done.published.files,
            parsed_bytes = done.input_bytes,
            seconds = done.seconds,
            rows_per_second = done.rows_per_second(),
            "increment partition published"
        );
    }
}

/// Adds a `cast_failures_<column>` check per column with failures and a `cast_failures`
/// total, all informational (they pass: a value that will not cast is null, as in the
/// pipeline this replaces, but never silently). Returns the total.
fn report_casts(
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
            TransformError::Arrow {
                partition: self.partition.describe(),
                source,
            }
            .into()
        })
    }
}

#[cfg(test)]
mod tests;
