//! The snapshot stage: on "partition ready" for an increment, publish today's full snapshot of
//! the table and say so to the next stage. This module is the handler; each step's rules live in
//! the module it names.
//!
//! One run, for table T and "today" D (the message's `as_of`, else today in London):
//! 1. Take T's lock (one merge of a table at a time in this process).
//! 2. Plan from the catalog ([`crate::plan`]): the base is T's latest snapshot before D, however
//!    old; the increments to apply are those imported from the base's date up to D that the base
//!    does not already hold (the base records the increments it holds, with their run ids).
//!    Without a base, every increment from the latest full load up to D.
//! 3. If today's snapshot already holds the message's increment run, or holds exactly what the
//!    plan would apply on the same base, there is nothing to do: the message is acknowledged
//!    without work ([`SnapshotOutcome::UpToDate`]).
//! 4. Never on a hole (see [`crate::coverage`]): every raw import after the base (without a
//!    base, from the latest full load) up to D must have its increment published, else the run
//!    stops with [`SnapshotError::Hole`] or [`SnapshotError::NoFullLoad`], publishing nothing.
//! 5. Otherwise read the inputs ([`crate::inputs`]) and merge them ([`crate::merge`]) into a new
//!    run folder of today's partition, check the data-quality gate ([`crate::output`]: ids,
//!    completeness, and no fewer rows than the base: [`row_count_check`]), record the report,
//!    and publish (replacing any earlier run of today, so a re-run never doubles the snapshot)
//!    or discard; then say "partition ready" for the snapshot.
//! 6. Announce it: one "Tascomi snapshot published" event ([`common::events`]) after the
//!    publication. A message that finds today's snapshot up to date (step 3) announces it again,
//!    so that a put that failed after the publication is made good by the message's retry:
//!    at least once, a repeat possible (docs/snapshot.md).
//!
//! A **carry-forward request** (`partition_ready` with `carry_forward`, sent by the schedule
//! for a table not fetched tonight) runs the same steps without a triggering increment: with
//! nothing new since the base, today's snapshot is the base's files copied server-side; with
//! nothing to carry (no earlier snapshot) it is acknowledged without work.
//!
//! Idempotent: the same plan gives the same rows; a partition holds one run's files.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::NaiveDate;
use common::catalog::PartitionInfo;
use common::config::{Env, PipelineFile};
use common::events::{Event, EventBridgeSink, EventSink, LocalEventSink};
use common::failure::Transience;
use common::layout::{Layer, PartitionRef, TableName, date_value, london_today};
use common::messages::PartitionReady;
use common::platform::Platform;
use common::publish::{PartitionWriter, Published, new_run_id};
use common::runner::{Failure, Handler};

use crate::error::{Result, SnapshotError};
use crate::inputs::Inputs;
use crate::merge::{MergeColumns, merge_inputs};
use crate::output::{MergeReport, base_rows, gate, partition_parameters, row_count_check};
use crate::plan::{IncrementRun, Plan, SnapshotRequest, run_of};
use crate::settings::SnapshotSettings;
use crate::winner::ID_COLUMN;

/// The stage's name in logs, metrics and quality reports.
pub const STAGE: &str = common::stage::Stage::Snapshot.name();

/// A published snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotPublished {
    pub partition: PartitionRef,
    pub published: Published,
    pub report: MergeReport,
    pub base: Option<NaiveDate>,
    pub applied: Vec<IncrementRun>,
}

/// What a snapshot run did.
#[derive(Debug, Clone)]
pub enum SnapshotOutcome {
    Published(Box<SnapshotPublished>),
    /// Nothing to do, and why.
    UpToDate(String),
}

/// One lock per table, so that no two merges of a table run at once in this process.
#[derive(Debug, Default)]
struct TableLocks(std::sync::Mutex<HashMap<TableName, Arc<tokio::sync::Mutex<()>>>>);

impl TableLocks {
    fn of(&self, table: &TableName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(table.clone()).or_default().clone()
    }
}

/// The snapshot stage, built from a [`Platform`] (so tests and the embedded default use local
/// storage and catalog) and usable in-process by the CLI through [`SnapshotStage::snapshot`].
#[derive(Debug)]
pub struct SnapshotStage {
    platform: Platform,
    pipeline: PipelineFile,
    settings: SnapshotSettings,
    locks: TableLocks,
    events: Arc<dyn EventSink>,
}

impl SnapshotStage {
    /// A stage that announces to a [`LocalEventSink`] of its own ([`SnapshotStage::with_events`]
    /// to keep a handle on the events, or to put them on EventBridge).
    pub fn new(platform: Platform, pipeline: PipelineFile, settings: SnapshotSettings) -> Self {
        Self {
            platform,
            pipeline,
            settings,
            locks: TableLocks::default(),
            events: Arc::new(LocalEventSink::new()),
        }
    }

    /// Where the stage announces each published snapshot.
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// The service's stage: S3 and Glue, the pipeline file and settings from the environment.
    pub fn from_env(env: &Env, sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let platform = Platform::aws(sdk, env)?;
        let pipeline = common::service::pipeline_from_env(env)?;
        let settings = SnapshotSettings::from_env(env)?;
        let events = EventBridgeSink::from_env(sdk, env);
        tracing::info!(
            event_bus = events.bus(),
            tables = pipeline.tables.len(),
            batch_rows = settings.batch_rows,
            file_rows = settings.file_rows,
            target_file_bytes = settings.target_file_bytes,
            hole_grace_secs = settings.hole_grace.as_secs(),
            refined_bucket = %platform.layout.refined_bucket,
            "snapshot stage configured"
        );
        Ok(Self::new(platform, pipeline, settings).with_events(Arc::new(events)))
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Makes today's snapshot of a table unless it is up to date. Waits for any other merge of
    /// the same table in this process first. See the module docs. Refuses, publishing nothing,
    /// when an import the snapshot must hold has not reached the increment layer
    /// ([`SnapshotError::Hole`]) or when a first snapshot has no full load to start from
    /// ([`SnapshotError::NoFullLoad`]), even when forced.
    ///
    /// Every publication is announced ([`common::events`]); so is today's snapshot again when
    /// the run finds it up to date. A failed announcement is [`SnapshotError::Announce`].
    pub async fn snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotOutcome> {
        self.snapshot_or_carry(request, false).await
    }

    /// Today's snapshot of a table that was not fetched tonight: as [`SnapshotStage::snapshot`]
    /// without a triggering increment, so that with nothing new since the table's latest
    /// snapshot the new one is that snapshot's files copied server-side (anything published
    /// since is merged, and a hole is refused, as on any night). A table without an earlier
    /// snapshot has nothing to carry forward: [`SnapshotOutcome::UpToDate`], nothing done.
    pub async fn carry_forward(
        &self,
        table: &TableName,
        today: NaiveDate,
    ) -> Result<SnapshotOutcome> {
        let request = SnapshotRequest {
            table: table.clone(),
            today,
            increment: None,
            force: false,
        };
        self.snapshot_or_carry(&request, true).await
    }

    async fn snapshot_or_carry(
        &self,
        request: &SnapshotRequest,
        carry_forward: bool,
    ) -> Result<SnapshotOutcome> {
        let lock = self.locks.of(&request.table);
        let _guard = lock.lock().await;
        let plan = Plan::make(&self.platform, request).await?;
        if !request.force
            && let Some(reason) = plan.up_to_date(request)
        {
            tracing::info!(
                table = %request.table,
                snapshot_date = %date_value(request.today),
                reason,
                "snapshot up to date"
            );
            if let Some(today) = &plan.today {
                // Its announcement may have failed after the publication: say it again.
                self.announce(&plan.snapshot, published_detail(today))
                    .await?;
            }
            return Ok(SnapshotOutcome::UpToDate(reason));
        }
        if carry_forward && plan.base.is_none() {
            let reason = format!(
                "{}: no snapshot before snapshot_date={} to carry forward (the table's first snapshot comes with its first load)",
                request.table,
                date_value(request.today)
            );
            tracing::info!(table = %request.table, reason, "nothing to carry forward");
            return Ok(SnapshotOutcome::UpToDate(reason));
        }
        plan.check_coverage(&self.platform, request, self.settings.hole_grace)
            .await?;
        let outcome = self.run(request, plan).await?;
        if let SnapshotOutcome::Published(done) = &outcome {
            let published = &done.published;
            let detail = (
                published.location.clone(),
                published.rows,
                published.run_id.clone(),
            );
            self.announce(&done.partition, detail).await?;
        }
        Ok(outcome)
    }

    /// Puts the "Tascomi snapshot published" event of a published snapshot partition, given
    /// its (location, rows, run id).
    async fn announce(
        &self,
        partition: &PartitionRef,
        (location, rows, run_id): (String, u64, String),
    ) -> Result<()> {
        let detail = common::events::SnapshotPublished {
            table: partition.table.to_string(),
            snapshot_date: date_value(partition.date),
            location,
            rows,
            run_id,
        };
        match self.events.put(&Event::from(&detail)).await {
            Ok(()) => {
                tracing::info!(
                    table = %detail.table,
                    snapshot_date = %detail.snapshot_date,
                    rows = detail.rows,
                    run_id = %detail.run_id,
                    "snapshot announced"
                );
                Ok(())
            }
            Err(source) => {
                let err = SnapshotError::Announce {
                    table: detail.table,
                    snapshot_date: detail.snapshot_date,
                    run_id: detail.run_id,
                    source: Box::new(source),
                };
                tracing::warn!(error = %err, "snapshot not announced");
                Err(err)
            }
        }
    }

    #[tracing::instrument(skip_all, fields(
        table = %request.table,
        snapshot_date = %date_value(request.today),
        run_id = tracing::field::Empty,
    ))]
    async fn run(&self, request: &SnapshotRequest, plan: Plan) -> Result<SnapshotOutcome> {
        let started = Instant::now();
        let run_id = new_run_id();
        tracing::Span::current().record("run_id", run_id.as_str());
        let columns = MergeColumns {
            id: ID_COLUMN.to_owned(),
            completeness: self
                .pipeline
                .table_or_default(&request.table)
                .completeness_column,
        };
        let Some(inputs) = Inputs::read(
            &self.platform.storage,
            self.settings.batch_rows,
            &request.table,
            &plan,
        )
        .await?
        else {
            return Ok(SnapshotOutcome::UpToDate(format!(
                "{}: no previous snapshot and no increment file to make one from",
                request.table
            )));
        };
        let ids = Arc::new(inputs.id_encoder()?);
        let writer = PartitionWriter::new(
            self.platform.storage.clone(),
            plan.snapshot.clone(),
            run_id.clone(),
            inputs.target.clone(),
            self.settings.write_options(self.platform.write_options),
        );
        let (staged, report) =
            merge_inputs(&inputs, &ids, writer, &columns, &self.settings).await?;

        let mut checks = report.checks.clone();
        if let Some((base_date, base_rows)) = base_rows(&plan, &inputs) {
            checks.push(row_count_check(
                base_date,
                base_rows,
                report.rows,
                self.pipeline.row_count_drop_threshold(&request.table),
            ));
        }
        if let Err(err) = gate(&self.platform, &plan.snapshot, &run_id, report.rows, checks).await {
            staged.discard().await?;
            return Err(err);
        }
        if let Err(err) = plan.check_no_race(&self.platform, request).await {
            staged.discard().await?;
            return Err(err);
        }
        let applied = plan.applied();
        let published = staged
            .publish(
                self.platform.catalog.as_ref(),
                &self.platform.layout,
                partition_parameters(&plan, &applied, &report),
                self.platform.orphan_grace,
            )
            .await?;
        let base_date = plan.base.as_ref().map(|(d, _)| *d);
        emit_freshness(&plan.snapshot);
        tracing::info!(
            rows = published.rows,
            files = published.files,
            copied_files = report.copied_files,
            rewritten_files = report.rewritten_files,
            increment_rows = report.increment_rows,
            replaced_rows = report.replaced_rows,
            applied_increments = applied.len(),
            base_snapshot_date = base_date.map(date_value).unwrap_or_default(),
            order_breaks = report.order_breaks,
            replaced_run = published.replaced.as_deref().unwrap_or("-"),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot published"
        );
        Ok(SnapshotOutcome::Published(Box::new(SnapshotPublished {
            partition: plan.snapshot,
            published,
            report,
            base: base_date,
            applied,
        })))
    }
}

/// The (location, rows, run id) of a published snapshot partition, from the catalog.
fn published_detail(info: &PartitionInfo) -> (String, u64, String) {
    let rows = info
        .parameters
        .get("rows")
        .and_then(|rows| rows.parse().ok())
        .unwrap_or_default();
    (info.location.clone(), rows, run_of(info))
}

/// `SnapshotAgeHours` (namespace `Tascomi`, dimension `Table`): how old the data of the table's
/// newest snapshot is, from the start of its London day (the day's own records arrive the next
/// night). The freshness alarm compares it with what the table's schedule promises; a table
/// whose snapshot stops being published stops reporting, which that alarm counts as stale too.
fn emit_freshness(snapshot: &PartitionRef) {
    let age = chrono::Utc::now() - common::layout::london_day_start(snapshot.date);
    common::metrics::emit_with(
        &[("Table", snapshot.table.as_str())],
        &[common::metrics::Measure {
            name: "SnapshotAgeHours",
            value: (age.num_seconds().max(0) as f64 / 3600.0 * 100.0).round() / 100.0,
            unit: "None",
        }],
    );
}

#[async_trait]
impl Handler for SnapshotStage {
    type Message = PartitionReady;

    fn stage(&self) -> &'static str {
        STAGE
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.pipeline.contains(table)
    }

    #[tracing::instrument(skip_all, fields(
        table = %message.table,
        increment_date = %date_value(message.date()),
        increment_run = %message.run_id,
    ))]
    async fn handle(&self, message: PartitionReady) -> Result<Vec<PartitionReady>, Failure> {
        if message.carry_forward {
            // validate() made sure it is a snapshot request; its day is as_of, else today.
            let outcome = self.carry_forward(&message.table, message.date()).await;
            return answer(outcome, message.as_of);
        }
        if message.layer != Layer::Increment {
            return Err(Failure::permanent(SnapshotError::WrongLayer {
                table: message.table.to_string(),
                layer: message.layer.to_string(),
            }));
        }
        let request = SnapshotRequest {
            table: message.table.clone(),
            today: message.as_of.unwrap_or_else(london_today),
            increment: Some(IncrementRun {
                date: message.date(),
                run_id: message.run_id.clone(),
            }),
            force: false,
        };
        answer(self.snapshot(&request).await, message.as_of)
    }
}

/// The runner's answer to a run: the snapshot's "partition ready", or why there is none.
fn answer(
    outcome: Result<SnapshotOutcome>,
    as_of: Option<NaiveDate>,
) -> Result<Vec<PartitionReady>, Failure> {
    match outcome {
        Ok(SnapshotOutcome::Published(done)) => Ok(vec![PartitionReady::new(
            &done.partition,
            done.published.location.clone(),
            done.published.run_id.clone(),
            as_of,
        )]),
        Ok(SnapshotOutcome::UpToDate(reason)) => Err(Failure::Discard(reason)),
        Err(err) => Err(err.into_failure()),
    }
}
