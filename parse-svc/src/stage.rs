//! The parse stage: config -> build ([`ParseStage::new`]) -> handle one message at a time.
//!
//! The flow (lock, read, write, gate, publish, next message) is `common`'s
//! [`TransformStage`]; this stage's own part is [`Explode`]: two passes over the raw partition
//! (`passes.rs`), the parsed schema from the first, the exploded rows from the second.

use std::collections::BTreeSet;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use common::config::{Env, PipelineFile};
use common::failure::Transience;
use common::layout::{Layer, PartitionRef, TableName};
use common::messages::PartitionReady;
use common::platform::Platform;
use common::publish::Published;
use common::quality::QualityReport;
use common::runner::{Failure, Handler};
use common::source::PartitionReader;
use common::transform_stage::{Job, Output, Transform, TransformStage, Transformed};
use tracing::instrument;

use crate::error::{ParseError, Result};
use crate::passes::RawReader;
use crate::schema::parsed_schema;
use crate::settings::ParseSettings;
use crate::versions::{Collapsed, Selection};

/// The parse stage. Cheap to share: handle messages concurrently through an `Arc`.
#[derive(Debug)]
pub struct ParseStage {
    stage: TransformStage<Explode>,
}

/// What a successful parse did.
#[derive(Debug, Clone)]
pub struct ParseOutcome {
    /// The message for recast-svc.
    pub next: PartitionReady,
    pub published: Published,
    /// The data-quality results, as recorded.
    pub report: QualityReport,
    /// Text columns made from record fields (the bookkeeping columns not counted).
    pub field_columns: usize,
    /// Bytes of raw Parquet read per pass.
    pub raw_bytes: u64,
}

impl ParseStage {
    /// A stage on `platform` for the tables of `pipeline` (the operator CLI and tests build it
    /// this way, in process).
    pub fn new(platform: Platform, pipeline: PipelineFile, settings: ParseSettings) -> Self {
        Self {
            stage: TransformStage::new(platform, pipeline, settings.batch_rows, Explode),
        }
    }

    /// The service's stage: S3 and Glue, the pipeline file and settings from the environment.
    pub fn from_env(env: &Env, sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let platform = Platform::aws(sdk, env)?;
        let pipeline = common::service::pipeline_from_env(env)?;
        let settings = ParseSettings::from_env(env)?;
        tracing::info!(
            tables = pipeline.tables.len(),
            batch_rows = settings.batch_rows,
            raw_bucket = %platform.layout.raw_bucket,
            database_prefix = %platform.layout.database_prefix,
            "parse stage configured"
        );
        Ok(Self::new(platform, pipeline, settings))
    }

    pub fn platform(&self) -> &Platform {
        self.stage.platform()
    }

    /// Parses the raw partition `message` names and publishes the parsed partition.
    ///
    /// `Ok` means the parsed partition is published (possibly empty: a quiet day) and its
    /// data-quality results recorded. Idempotent: the same message again publishes the same
    /// rows in place of the first run's. On `Err` nothing new is visible; a failed gate has
    /// recorded its results and left the table's last good partition in place.
    #[instrument(skip_all, fields(table = %message.table, import_date = tracing::field::Empty))]
    pub async fn parse(&self, message: &PartitionReady) -> Result<ParseOutcome> {
        let done = self.stage.run(message).await?;
        Ok(ParseOutcome {
            next: done.next,
            published: done.published,
            report: done.report,
            field_columns: done.summary.field_columns,
            raw_bytes: done.input_bytes,
        })
    }
}

#[async_trait]
impl Handler for ParseStage {
    type Message = PartitionReady;

    fn stage(&self) -> &'static str {
        Explode::STAGE
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.stage.is_known_table(table)
    }

    async fn handle(&self, message: PartitionReady) -> Result<Vec<PartitionReady>, Failure> {
        match self.parse(&message).await {
            Ok(outcome) => Ok(vec![outcome.next]),
            Err(err) => Err(err.into_failure()),
        }
    }
}

/// The parse stage's own part: raw records exploded into one text column per field.
#[derive(Debug, Clone, Copy)]
pub struct Explode;

/// What the first pass found.
#[derive(Debug)]
pub struct ExplodePlan {
    /// The union of the record fields: the parsed columns, in this order.
    fields: BTreeSet<String>,
    /// The row kept for each id.
    selection: Selection,
    /// Rows parsed (status 200 and a record).
    records: u64,
}

/// What the second pass wrote.
#[derive(Debug)]
pub struct ExplodeSummary {
    /// Text columns made from record fields.
    pub field_columns: usize,
    /// Rows with status 200 but no record.
    pub skipped_rows: u64,
    /// The duplicate rows the rule of one row per id dropped.
    pub collapsed: Collapsed,
}

#[async_trait]
impl Transform for Explode {
    const STAGE: &'static str = common::stage::Stage::Parse.name();
    const READS: Layer = Layer::Raw;
    const WRITES: Layer = Layer::Parsed;
    type Error = ParseError;
    type Plan = ExplodePlan;
    type Summary = ExplodeSummary;

    /// Pass 1, and the parsed schema of its fields (every field name checked here, before
    /// anything is written).
    async fn plan(
        &self,
        job: &Job<'_>,
        input: &mut PartitionReader<'_>,
    ) -> Result<(SchemaRef, ExplodePlan)> {
        let mut reader = RawReader::new(input);
        let (fields, selection) = reader.first_pass().await?;
        let records = reader.ordinal;
        let schema = parsed_schema(&fields).map_err(|problem| ParseError::BadField {
            partition: job.input.describe(),
            problem,
        })?;
        Ok((
            schema,
            ExplodePlan {
                fields,
                selection,
                records,
            },
        ))
    }

    /// Pass 2: every record exploded and checked, the row kept for each id written.
    async fn write(
        &self,
        job: &Job<'_>,
        plan: ExplodePlan,
        input: &mut PartitionReader<'_>,
        output: &mut Output,
    ) -> Result<ExplodeSummary> {
        let ExplodePlan {
            fields,
            mut selection,
            records,
        } = plan;
        let mut reader = RawReader::new(input);
        reader.explode_into(&fields, &mut selection, output).await?;
        let collapsed = selection
            .outcome(records)
            .map_err(|detail| ParseError::PassesDiffer {
                partition: job.input.describe(),
                detail,
            })?;
        Ok(ExplodeSummary {
            field_columns: fields.len(),
            skipped_rows: reader.skipped,
            collapsed,
        })
    }

    fn report(&self, job: &Job<'_>, summary: &ExplodeSummary, report: &mut QualityReport) {
        report.checks.extend(summary.collapsed.checks());
        report_collapsed(&job.output, &summary.collapsed);
    }

    fn parameters(&self, _: &ExplodeSummary) -> Vec<(String, String)> {
        Vec::new()
    }

    fn log_published(&self, job: &Job<'_>, done: &Transformed<ExplodeSummary>) {
        let summary = &done.summary;
        tracing::info!(
            partition = %job.output,
            rows = done.published.rows,
            columns = summary.field_columns,
            files = done.published.files,
            raw_bytes = done.input_bytes,
            skipped_rows = summary.skipped_rows,
            duplicates_collapsed = summary.collapsed.duplicates,
            superseded_versions_dropped = summary.collapsed.superseded,
            seconds = done.seconds,
            rows_per_second = done.rows_per_second(),
            "parsed partition published"
        );
    }
}

/// Logs and emits (as metrics) what the partition's duplicate rows came to: the counts are in
/// the data-quality report too.
fn report_collapsed(parsed: &PartitionRef, collapsed: &Collapsed) {
    if collapsed.duplicates > 0 || collapsed.superseded > 0 {
        tracing::info!(
            partition = %parsed,
            duplicates_collapsed = collapsed.duplicates,
            duplicate_examples = ?collapsed.duplicate_examples,
            superseded_versions_dropped = collapsed.superseded,
            superseded_examples = ?collapsed.superseded_examples,
            "one row kept per id"
        );
    }
    common::metrics::emit(
        "parse",
        parsed.table.as_str(),
        &[
            ("DuplicateRecordsCollapsed", collapsed.duplicates),
            ("SupersededVersionsDropped", collapsed.superseded),
        ],
    );
}

#[cfg(test)]
mod tests;
