//! The one flow of the stages that turn one published partition into the next (parse-svc:
//! raw → parsed; recast-svc: parsed → increment), with the stage's own part behind a trait.
//!
//! For a "partition ready" message naming the layer the stage reads, [`TransformStage::run`]:
//! 1. takes the output partition's [lock](crate::locks) for the whole run;
//! 2. finds the input partition's published files through the catalog ([`crate::source`]);
//! 3. asks the stage to [plan](Transform::plan) the output's schema, reading what it needs;
//! 4. has the stage [write](Transform::write) the batches through an [`Output`], which feeds
//!    each batch to the data-quality gate and writes it into a run folder of its own;
//! 5. records the data-quality results with the stage's own checks ([`Transform::report`]),
//!    then publishes the output partition if the gate passed, or discards the run's files if
//!    it failed ([`crate::publish`]);
//! 6. returns the message for the next stage ([`Transformed::next`]); the runner sends it and
//!    only then acknowledges.
//!
//! `Ok` means the output partition is published (possibly empty: a quiet day) and its
//! data-quality results recorded. Idempotent: the same message again publishes the same rows in
//! place of the first run's. On `Err` nothing new is visible; a failed gate has recorded its
//! results and left the table's last good partition in place. Memory is what the stage holds
//! per batch plus one output file.

mod error;
mod settings;

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::config::{PipelineFile, TableConfig};
use crate::failure::Transience;
use crate::layout::{Layer, PartitionRef, TableName, date_value};
use crate::locks::PartitionLocks;
use crate::messages::PartitionReady;
use crate::platform::Platform;
use crate::publish::{PartitionWriter, Published, new_run_id};
use crate::quality::{QualityCheck, QualityReport};
use crate::source::{PartitionReader, PublishedFiles, published_files};

pub use error::TransformError;
pub use settings::{BatchRows, MAX_BATCH_ROWS, TransformSettings, batch_rows_from_env};

/// A stage's own part of the flow: what it makes of the input partition.
#[async_trait]
pub trait Transform: Send + Sync + 'static {
    /// The stage's name in reports, metrics, catalog parameters and errors (`parse`).
    const STAGE: &'static str;
    /// The layer the stage reads; a message naming another is refused.
    const READS: Layer;
    /// The layer the stage publishes.
    const WRITES: Layer;

    /// The stage's error: the flow's own errors ([`TransformError`]) and the stage's.
    type Error: From<TransformError> + Transience + std::error::Error + Send + Sync + 'static;
    /// What the stage decides before writing, besides the output schema.
    type Plan: Send;
    /// What the stage's writing came to: for its checks, parameters, log and outcome.
    type Summary: Send + Sync;

    /// The output partition's schema, and the plan for writing it: reads what it needs of the
    /// input (all of it, for a stage that makes two passes). Writes nothing.
    async fn plan(
        &self,
        job: &Job<'_>,
        input: &mut PartitionReader<'_>,
    ) -> Result<(SchemaRef, Self::Plan), Self::Error>;

    /// Reads the input (from where [`Transform::plan`] left it, or again after a
    /// [rewind](PartitionReader::rewind)) and writes every output batch to `output`. On `Err`
    /// the flow removes what was written.
    async fn write(
        &self,
        job: &Job<'_>,
        plan: Self::Plan,
        input: &mut PartitionReader<'_>,
        output: &mut Output,
    ) -> Result<Self::Summary, Self::Error>;

    /// Adds the stage's own checks to the gate's (before the gate decides and the results are
    /// recorded).
    fn report(&self, job: &Job<'_>, summary: &Self::Summary, report: &mut QualityReport);

    /// Catalog parameters of the stage's own, recorded with the partition beside `stage`,
    /// `source_location` and `source_run_id`.
    fn parameters(&self, summary: &Self::Summary) -> Vec<(String, String)>;

    /// Logs the publication (the flow logs nothing of its own on success).
    fn log_published(&self, job: &Job<'_>, done: &Transformed<Self::Summary>);
}

/// One message's run, as the stage's own part sees it.
#[derive(Debug)]
pub struct Job<'a> {
    pub platform: &'a Platform,
    pub message: &'a PartitionReady,
    /// The pipeline file's settings for the message's table.
    pub table: TableConfig,
    /// The partition read.
    pub input: PartitionRef,
    /// The partition written.
    pub output: PartitionRef,
    /// The input partition's files, as published.
    pub source: PublishedFiles,
}

/// Where a stage writes its output batches: each is fed to the data-quality gate, then written
/// to the run's files.
#[derive(Debug)]
pub struct Output {
    writer: PartitionWriter,
    check: QualityCheck,
}

impl Output {
    /// Checks and writes `batch`, whose schema must be the planned one.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), TransformError> {
        self.check.add(batch);
        self.writer.write(batch).await?;
        Ok(())
    }

    /// The output partition's schema, as planned.
    pub fn schema(&self) -> &SchemaRef {
        self.writer.schema()
    }
}

/// What a successful run did.
#[derive(Debug, Clone)]
pub struct Transformed<S> {
    /// The message for the next stage.
    pub next: PartitionReady,
    pub published: Published,
    /// The data-quality results, as recorded.
    pub report: QualityReport,
    /// The stage's own account of it.
    pub summary: S,
    /// Bytes of the input partition's files (read once per pass).
    pub input_bytes: u64,
    /// From the message's arrival to the publication.
    pub seconds: f64,
}

impl<S> Transformed<S> {
    /// Rows published per second of the run.
    pub fn rows_per_second(&self) -> f64 {
        (self.published.rows as f64 / self.seconds.max(1e-9)).round()
    }
}

/// A transform stage: the flow, around the stage's own part `T`. Cheap to share: handle
/// messages concurrently through an `Arc`.
#[derive(Debug)]
pub struct TransformStage<T> {
    platform: Platform,
    pipeline: PipelineFile,
    batch_rows: usize,
    locks: PartitionLocks,
    part: T,
}

impl<T: Transform> TransformStage<T> {
    /// A stage on `platform` for the tables of `pipeline`, reading `batch_rows` rows at a time.
    pub fn new(platform: Platform, pipeline: PipelineFile, batch_rows: usize, part: T) -> Self {
        Self {
            platform,
            pipeline,
            batch_rows,
            locks: PartitionLocks::default(),
            part,
        }
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    pub fn pipeline(&self) -> &PipelineFile {
        &self.pipeline
    }

    pub fn part(&self) -> &T {
        &self.part
    }

    /// Whether the pipeline file has the table (the runner's check of a message).
    pub fn is_known_table(&self, table: &TableName) -> bool {
        self.pipeline.contains(table)
    }

    /// Turns the partition `message` names into the next layer's and publishes it: see the
    /// [module](self). Records `import_date` in the current span.
    pub async fn run(&self, message: &PartitionReady) -> Result<Transformed<T::Summary>, T::Error> {
        if message.layer != T::READS {
            return Err(TransformError::WrongLayer {
                stage: T::STAGE,
                reads: T::READS,
                table: message.table.to_string(),
                layer: message.layer,
            }
            .into());
        }
        let started = Instant::now();
        let layout = &self.platform.layout;
        let input = message.partition_ref(layout);
        let import_date = date_value(input.date);
        tracing::Span::current().record("import_date", import_date.as_str());
        let output = layout.partition(&message.table, T::WRITES, input.date);
        let _held = self.locks.lock(&output).await;

        let source = published_files(&self.platform, &input)
            .await
            .map_err(TransformError::from)?
            .ok_or_else(|| TransformError::NotPublished {
                partition: input.describe(),
            })?;
        let job = Job {
            platform: &self.platform,
            message,
            table: self.pipeline.table_or_default(&message.table),
            input,
            output,
            source,
        };
        let mut reader = PartitionReader::new(
            self.platform.storage.clone(),
            &job.input,
            &job.source,
            self.batch_rows,
        );
        let (schema, plan) = self.part.plan(&job, &mut reader).await?;

        let run_id = new_run_id();
        let mut output = Output {
            writer: PartitionWriter::new(
                self.platform.storage.clone(),
                job.output.clone(),
                run_id.clone(),
                schema,
                self.platform.write_options,
            ),
            check: QualityCheck::new("id", &job.table.completeness_column),
        };
        let summary = match self.part.write(&job, plan, &mut reader, &mut output).await {
            Ok(summary) => summary,
            Err(err) => {
                output.writer.abandon().await;
                return Err(err);
            }
        };
        let Output { writer, check } = output;
        let staged = writer.finish().await.map_err(TransformError::from)?;

        let mut report = QualityReport::new(T::STAGE, &job.output, &run_id);
        report.rows = check.rows();
        report.checks = check.results();
        self.part.report(&job, &summary, &mut report);
        if let Err(gate) = report.record_and_check(&self.platform, &job.output).await {
            staged.discard_or_warn().await;
            return Err(TransformError::from(gate).into());
        }

        let mut parameters = BTreeMap::from([
            ("stage".to_string(), T::STAGE.to_string()),
            ("source_location".to_string(), job.source.location.clone()),
            (
                "source_run_id".to_string(),
                job.source.run_id.clone().unwrap_or_default(),
            ),
        ]);
        parameters.extend(self.part.parameters(&summary));
        let published = staged
            .publish(
                self.platform.catalog.as_ref(),
                layout,
                parameters,
                self.platform.orphan_grace,
            )
            .await
            .map_err(TransformError::from)?;
        let done = Transformed {
            next: PartitionReady::new(
                &job.output,
                published.location.clone(),
                run_id,
                message.as_of,
            ),
            published,
            report,
            summary,
            input_bytes: job.source.bytes(),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.part.log_published(&job, &done);
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
