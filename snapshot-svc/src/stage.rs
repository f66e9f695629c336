//! The snapshot stage: on "partition ready" for an increment, publish today's full snapshot of
//! the table and say so to the next stage.
//!
//! One run, for table T and "today" D (the message's `as_of`, else today in London):
//! 1. Take T's lock (one merge of a table at a time in this process).
//! 2. Plan from the catalog: the base is T's latest snapshot before D, however old; the
//!    increments to apply are those imported from the base's date up to D that the base does
//!    not already hold (the base records the increments it holds, with their run ids). Without a
//!    base, every increment from the latest full load up to D.
//! 3. If today's snapshot already holds the message's increment run, or holds exactly what the
//!    plan would apply on the same base, there is nothing to do: the message is acknowledged
//!    without work ([`SnapshotOutcome::UpToDate`]).
//! 4. Never on a hole (see [`crate::coverage`]): every raw import after the base (without a
//!    base, from the latest full load) up to D must have its increment published, else the run
//!    stops with [`SnapshotError::Hole`] or [`SnapshotError::NoFullLoad`], publishing nothing.
//! 5. Otherwise merge (see [`crate::merge`]) into a new run folder of today's partition, check
//!    the data-quality gate (ids, completeness, and no fewer rows than the base:
//!    [`row_count_check`]), record the report, and publish (replacing any earlier run of today,
//!    so a re-run never doubles the snapshot) or discard.
//!
//! Idempotent: the same plan gives the same rows; a partition holds one run's files.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use common::catalog::PartitionInfo;
use common::config::{Env, Fraction, PipelineFile};
use common::layout::{Layer, PartitionRef, TableName, date_value, london_today, parse_date};
use common::messages::PartitionReady;
use common::parquet_io::{BatchStream, read_file_columns};
use common::platform::Platform;
use common::publish::{
    PartitionWriter, Published, StagedPartition, new_run_id, published_partitions,
};
use common::quality::{CheckResult, GateError, QualityReport};
use common::runner::{Failure, Handler};
use common::storage::split_s3_uri;
use futures::TryStreamExt;
use parquet::file::metadata::ParquetMetaData;

use crate::coverage::{Published as Catalogued, Window, find_holes, full_load_command};
use crate::error::{Result, SnapshotError};
use crate::increment::{InOrderWinners, KeyEncoder, PreparedIncrement, Preparer};
use crate::merge::{
    BaseFile, InOrderSnapshot, MergeColumns, MergeReport, file_schema, footer, merge,
};
use crate::schema::{SchemaUnion, conform};
use crate::settings::SnapshotSettings;

/// The stage's name in logs, metrics and quality reports.
pub const STAGE: &str = "snapshot";
/// The record id every Tascomi resource has.
pub const ID_COLUMN: &str = "id";
/// When a record last changed (`YYYY-MM-DD HH:MM:SS` text or a timestamp; may be null).
pub const LAST_UPDATED_COLUMN: &str = "last_updated";

/// Partition parameters this stage records on each snapshot partition.
pub mod parameters {
    /// `YYYYMMDD=<run id>,...`: the increment partitions (date and run) the snapshot holds,
    /// from the base's date on. Decides whether a message is already in today's snapshot.
    pub const INCLUDED_INCREMENTS: &str = "included_increments";
    /// `YYYYMMDD=<run id>,...`: the increments this run applied.
    pub const APPLIED_INCREMENTS: &str = "applied_increments";
    /// `YYYYMMDD` of the previous snapshot merged into this one, or empty.
    pub const BASE_SNAPSHOT_DATE: &str = "base_snapshot_date";
    /// The run id of that previous snapshot, or empty.
    pub const BASE_RUN_ID: &str = "base_run_id";
    pub const COPIED_FILES: &str = "copied_files";
    pub const REWRITTEN_FILES: &str = "rewritten_files";
    pub const INCREMENT_ROWS: &str = "increment_rows";
    pub const REPLACED_ROWS: &str = "replaced_rows";
}

/// An increment partition as the snapshot knows it: its import date and the run that
/// published it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IncrementRun {
    pub date: NaiveDate,
    pub run_id: String,
}

/// The increments a snapshot holds, one run per import date.
type Included = BTreeMap<NaiveDate, String>;

fn encode_included<'a>(runs: impl IntoIterator<Item = (&'a NaiveDate, &'a String)>) -> String {
    runs.into_iter()
        .map(|(date, run)| format!("{}={run}", date_value(*date)))
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_included(text: Option<&String>) -> Included {
    text.map(|t| {
        t.split(',')
            .filter_map(|entry| {
                let (date, run) = entry.split_once('=')?;
                Some((parse_date(date)?, run.to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The run that published a partition (its `run_id` parameter, else its location).
fn run_of(info: &PartitionInfo) -> String {
    info.parameters
        .get("run_id")
        .cloned()
        .unwrap_or_else(|| info.location.clone())
}

/// What to snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub table: TableName,
    /// The snapshot's date: the run's "today".
    pub today: NaiveDate,
    /// The increment whose arrival triggered the run, if any: when today's snapshot already
    /// holds it, the run does nothing.
    pub increment: Option<IncrementRun>,
    /// Merge and publish even when today's snapshot is up to date (an operator's rebuild).
    pub force: bool,
}

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

/// What the catalog says a run must do.
#[derive(Debug)]
struct Plan {
    snapshot: PartitionRef,
    /// Today's snapshot as published before this run, if any.
    today: Option<PartitionInfo>,
    base: Option<(NaiveDate, PartitionInfo)>,
    apply: Vec<(NaiveDate, PartitionInfo)>,
    included: Included,
    /// The imports the snapshot must hold (see [`crate::coverage`]).
    window: Window,
    /// The table's raw imports up to today, by date.
    raw: BTreeMap<NaiveDate, PartitionInfo>,
    /// The table's published increments, by date.
    increments: BTreeMap<NaiveDate, PartitionInfo>,
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
}

impl SnapshotStage {
    pub fn new(platform: Platform, pipeline: PipelineFile, settings: SnapshotSettings) -> Self {
        Self {
            platform,
            pipeline,
            settings,
            locks: TableLocks::default(),
        }
    }

    /// The service's stage: S3 and Glue, the pipeline file and settings from the environment.
    pub fn from_env(env: &Env, sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let platform = Platform::aws(sdk, env)?;
        let pipeline = common::service::pipeline_from_env(env)?;
        let settings = SnapshotSettings::from_env(env)?;
        tracing::info!(
            tables = pipeline.tables.len(),
            batch_rows = settings.batch_rows,
            file_rows = settings.file_rows,
            target_file_bytes = settings.target_file_bytes,
            hole_grace_secs = settings.hole_grace.as_secs(),
            refined_bucket = %platform.layout.refined_bucket,
            "snapshot stage configured"
        );
        Ok(Self::new(platform, pipeline, settings))
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Makes today's snapshot of a table unless it is up to date. Waits for any other merge of
    /// the same table in this process first. See the module docs. Refuses, publishing nothing,
    /// when an import the snapshot must hold has not reached the increment layer
    /// ([`SnapshotError::Hole`]) or when a first snapshot has no full load to start from
    /// ([`SnapshotError::NoFullLoad`]), even when forced.
    pub async fn snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotOutcome> {
        let lock = self.locks.of(&request.table);
        let _guard = lock.lock().await;
        let plan = self.plan(request).await?;
        if !request.force
            && let Some(reason) = up_to_date(&plan, request)
        {
            tracing::info!(
                table = %request.table,
                snapshot_date = %date_value(request.today),
                reason,
                "snapshot up to date"
            );
            return Ok(SnapshotOutcome::UpToDate(reason));
        }
        self.check_coverage(request, &plan).await?;
        self.run(request, plan).await
    }

    /// `Ok` when every import of the plan's window has its increment published; otherwise the
    /// error that names what is missing and how to repair it. Lists the parsed partitions only
    /// when there is a hole.
    async fn check_coverage(&self, request: &SnapshotRequest, plan: &Plan) -> Result<()> {
        let table = &request.table;
        let snapshot_date = date_value(request.today);
        if plan.window == Window::NoFullLoad {
            let err = SnapshotError::NoFullLoad {
                table: table.to_string(),
                snapshot_date,
                repair: full_load_command(table),
            };
            tracing::error!(table = %table, error = %err, "first snapshot refused: no full load");
            return Err(err);
        }
        let lacking = plan
            .raw
            .keys()
            .any(|date| plan.window.holds(*date) && !plan.increments.contains_key(date));
        if !lacking {
            return Ok(());
        }
        let parsed_of = self
            .platform
            .layout
            .partition(table, Layer::Parsed, request.today);
        let parsed: BTreeMap<NaiveDate, PartitionInfo> =
            published_partitions(self.platform.catalog.as_ref(), &parsed_of)
                .await
                .map_err(|source| SnapshotError::Catalog {
                    table: table.to_string(),
                    source: Box::new(source),
                })?
                .into_iter()
                .collect();
        let published = Catalogued {
            raw: &plan.raw,
            parsed: &parsed,
            increments: &plan.increments,
        };
        let Some(holes) = find_holes(
            table,
            request.today,
            plan.window,
            published,
            Utc::now(),
            self.settings.hole_grace,
        ) else {
            return Ok(());
        };
        let err = SnapshotError::Hole(Box::new(holes));
        if err.is_transient() {
            tracing::warn!(table = %table, snapshot_date, error = %err, "snapshot waits for work in flight");
        } else {
            tracing::error!(table = %table, snapshot_date, error = %err, "snapshot refused: a hole");
        }
        Err(err)
    }

    async fn plan(&self, request: &SnapshotRequest) -> Result<Plan> {
        let layout = &self.platform.layout;
        let catalog = self.platform.catalog.as_ref();
        let catalog_error = |source| SnapshotError::Catalog {
            table: request.table.to_string(),
            source: Box::new(source),
        };
        let snapshot = layout.partition(&request.table, Layer::Snapshot, request.today);
        let snapshots = published_partitions(catalog, &snapshot)
            .await
            .map_err(catalog_error)?;
        let today = snapshots
            .iter()
            .find(|(date, _)| *date == request.today)
            .map(|(_, info)| info.clone());
        let base = snapshots
            .into_iter()
            .rfind(|(date, _)| *date < request.today);
        let increment_of = layout.partition(&request.table, Layer::Increment, request.today);
        let increments = published_partitions(catalog, &increment_of)
            .await
            .map_err(catalog_error)?;
        let raw_of = layout.partition(&request.table, Layer::Raw, request.today);
        let raw: Vec<(NaiveDate, PartitionInfo)> = published_partitions(catalog, &raw_of)
            .await
            .map_err(catalog_error)?
            .into_iter()
            .filter(|(date, _)| *date <= request.today)
            .collect();
        let window = Window::of(base.as_ref().map(|(date, _)| *date), &raw);
        // A message naming an increment that does not exist is poison, not "nothing to do":
        // it goes to the dead-letter queue where an operator sees it.
        if let Some(increment) = &request.increment
            && !increments.iter().any(|(date, _)| *date == increment.date)
        {
            return Err(SnapshotError::NotPublished {
                partition: layout
                    .partition(&request.table, Layer::Increment, increment.date)
                    .describe(),
            });
        }
        let held: Included = base
            .as_ref()
            .map(|(date, info)| {
                decode_included(info.parameters.get(parameters::INCLUDED_INCREMENTS))
                    .into_iter()
                    .filter(|(d, _)| d >= date)
                    .collect()
            })
            .unwrap_or_default();
        let mut included = held.clone();
        let mut apply = Vec::new();
        // From the base's date (its increments not yet held), or without a base from the latest
        // full load: an older increment is already in that load.
        let from = match window {
            Window::AfterBase(date) | Window::FromFullLoad(date) => Some(date),
            Window::NoFullLoad => None,
        };
        for (date, info) in &increments {
            let (date, info) = (*date, info.clone());
            if from.is_some_and(|from| date < from) || date > request.today {
                continue;
            }
            let run = run_of(&info);
            if held.get(&date) != Some(&run) {
                included.insert(date, run);
                apply.push((date, info));
            }
        }
        Ok(Plan {
            snapshot,
            today,
            base,
            apply,
            included,
            window,
            raw: raw.into_iter().collect(),
            increments: increments.into_iter().collect(),
        })
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
        let storage = self.platform.storage.clone();
        let columns = MergeColumns {
            id: ID_COLUMN.to_owned(),
            completeness: self
                .pipeline
                .table_or_default(&request.table)
                .completeness_column,
        };
        let Some(inputs) = self.inputs(request, &plan).await? else {
            return Ok(SnapshotOutcome::UpToDate(format!(
                "{}: no previous snapshot and no increment file to make one from",
                request.table
            )));
        };
        // The base's rows as published (its `rows` parameter), else as its files hold them: a
        // base whose files went missing since still counts what it was published with.
        let base_rows = plan.base.as_ref().map(|(date, info)| {
            let recorded = info.parameters.get("rows").and_then(|r| r.parse().ok());
            let in_files = || {
                inputs
                    .base
                    .iter()
                    .map(|(_, metadata)| metadata.file_metadata().num_rows().max(0) as u64)
                    .sum()
            };
            (*date, recorded.unwrap_or_else(in_files))
        });
        let ids = Arc::new(inputs.id_encoder()?);
        let writer = PartitionWriter::new(
            storage.clone(),
            plan.snapshot.clone(),
            run_id.clone(),
            inputs.target.clone(),
            self.settings.write_options(self.platform.write_options),
        );
        // Without a previous snapshot, an increment in id order (a full load, typically) is
        // streamed instead of held: memory stays bounded by a batch on the largest tables.
        let in_order = match inputs.base.is_empty() {
            true => self.read_order(&inputs, ids.clone()).await?,
            false => None,
        };
        let (staged, report) = match in_order {
            Some(order) => {
                let snapshot = InOrderSnapshot::new(writer, &ids, &columns, &self.settings);
                self.write_in_order(&inputs, order, snapshot).await?
            }
            None => {
                let increment = self.prepare(&inputs, ids.clone()).await?;
                let base_files = inputs
                    .base
                    .iter()
                    .map(|((bucket, key, bytes), metadata)| {
                        BaseFile::from_metadata(bucket, key, *bytes, metadata, &ids, &columns)
                    })
                    .collect::<Result<Vec<_>>>()?;
                merge(
                    storage.clone(),
                    base_files,
                    &increment,
                    writer,
                    &ids,
                    &columns,
                    &self.settings,
                )
                .await?
            }
        };

        let mut checks = report.checks.clone();
        if let Some((base_date, base_rows)) = base_rows {
            checks.push(row_count_check(
                base_date,
                base_rows,
                report.rows,
                self.pipeline.row_count_drop_threshold(&request.table),
            ));
        }
        if let Err(err) = self.gate(&plan, &run_id, report.rows, checks).await {
            staged.discard().await?;
            return Err(err);
        }
        if let Err(err) = self.check_no_race(request, &plan).await {
            staged.discard().await?;
            return Err(err);
        }
        let applied: Vec<IncrementRun> = plan
            .apply
            .iter()
            .map(|(date, info)| IncrementRun {
                date: *date,
                run_id: run_of(info),
            })
            .collect();
        let published = staged
            .publish(
                self.platform.catalog.as_ref(),
                &self.platform.layout,
                partition_parameters(&plan, &applied, &report),
                self.platform.orphan_grace,
            )
            .await?;
        let base_date = plan.base.as_ref().map(|(d, _)| *d);
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

    /// Reads the footers of the base's files and lists the increments' files; the new
    /// snapshot's schema is the union of all of them. `None` when there is nothing at all.
    async fn inputs(&self, request: &SnapshotRequest, plan: &Plan) -> Result<Option<Inputs>> {
        let storage = &self.platform.storage;
        let table = request.table.to_string();
        let schema_error = |source| SnapshotError::Schema {
            table: table.clone(),
            source: Box::new(source),
        };
        let mut union = SchemaUnion::default();
        let mut base = Vec::new();
        if let Some((date, info)) = &plan.base {
            let origin = format!(
                "the previous snapshot (snapshot_date={})",
                date_value(*date)
            );
            for object in self.list_files(info, &origin).await? {
                let metadata = footer(storage.clone(), &object.0, &object.1).await?;
                let schema = schema_of(&metadata, &object.0, &object.1)?;
                union.add(&schema, &origin).map_err(schema_error)?;
                base.push((object, metadata));
            }
        }
        let mut increments = Vec::new();
        for (date, info) in &plan.apply {
            let origin = format!("increment import_date={}", date_value(*date));
            for (bucket, key, _) in self.list_files(info, &origin).await? {
                let metadata = footer(storage.clone(), &bucket, &key).await?;
                let schema = schema_of(&metadata, &bucket, &key)?;
                if schema.column_with_name(ID_COLUMN).is_none() {
                    return Err(SnapshotError::MissingColumn {
                        what: format!("{origin} file s3://{bucket}/{key}"),
                        column: ID_COLUMN.into(),
                    });
                }
                union.add(&schema, &origin).map_err(schema_error)?;
                increments.push(IncrementFile {
                    date: *date,
                    values: info.values.clone(),
                    bucket,
                    key,
                });
            }
        }
        if !increments.is_empty() {
            for key in Layer::Increment.partition_keys() {
                union
                    .add_column(key, &DataType::Utf8, "the increment partition values")
                    .map_err(schema_error)?;
            }
        }
        if union.is_empty() {
            return Ok(None);
        }
        Ok(Some(Inputs {
            table,
            target: union.finish(),
            base,
            increments,
        }))
    }

    /// Reads every increment file batch by batch and keeps one row per id (see
    /// [`crate::increment`]).
    async fn prepare(&self, inputs: &Inputs, ids: Arc<KeyEncoder>) -> Result<PreparedIncrement> {
        let mut preparer =
            Preparer::new(inputs.target.clone(), ID_COLUMN, LAST_UPDATED_COLUMN, ids)
                .map_err(arrow_error(format!("{} increment", inputs.table)))?;
        let mut reader = IncrementReader::new(self, inputs, inputs.target.clone());
        while let Some((batch, date, what)) = reader.next().await? {
            preparer.add(batch, date).map_err(arrow_error(what))?;
        }
        preparer
            .finish(self.settings.batch_rows)
            .map_err(arrow_error(format!("{} increment", inputs.table)))
    }

    /// Reads only the ids and `last_updated` of the increments and, when the ids come in id
    /// order, says which rows win (row numbers in read order) and how many rows had no id.
    /// `None` as soon as an id is out of order. Memory: one id, and 8 bytes per winning row.
    async fn read_order(
        &self,
        inputs: &Inputs,
        ids: Arc<KeyEncoder>,
    ) -> Result<Option<(Vec<u64>, u64)>> {
        let keys = Arc::new(Schema::new(
            inputs
                .target
                .fields()
                .iter()
                .filter(|f| [ID_COLUMN, LAST_UPDATED_COLUMN].contains(&f.name().as_str()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let mut winners = InOrderWinners::new(&keys, ID_COLUMN, LAST_UPDATED_COLUMN, ids)
            .map_err(arrow_error(format!("{} increment", inputs.table)))?;
        let mut reader = IncrementReader::new(self, inputs, keys);
        while let Some((batch, date, what)) = reader.next().await? {
            if !winners.add(&batch, date).map_err(arrow_error(what))? {
                return Ok(None);
            }
        }
        Ok(Some(winners.finish()))
    }

    /// The first snapshot of an increment in id order, streamed: every increment row is read
    /// again and the winners (`order`, from [`Self::read_order`]) written as they come.
    async fn write_in_order(
        &self,
        inputs: &Inputs,
        (order, null_ids): (Vec<u64>, u64),
        mut snapshot: InOrderSnapshot<'_>,
    ) -> Result<(StagedPartition, MergeReport)> {
        let mut reader = IncrementReader::new(self, inputs, inputs.target.clone());
        let (mut row, mut next) = (0u64, 0usize);
        while let Some((batch, _, what)) = reader.next().await? {
            let end = row + batch.num_rows() as u64;
            let mut keep = vec![false; batch.num_rows()];
            while next < order.len() && order[next] < end {
                keep[(order[next] - row) as usize] = true;
                next += 1;
            }
            row = end;
            let kept = filter_record_batch(&batch, &BooleanArray::from(keep))
                .map_err(arrow_error(what))?;
            snapshot.write(&kept).await?;
        }
        snapshot.finish(null_ids).await
    }

    /// Records the data-quality report, passed or failed; `Err` when the gate failed.
    async fn gate(
        &self,
        plan: &Plan,
        run_id: &str,
        rows: u64,
        checks: Vec<CheckResult>,
    ) -> Result<()> {
        let mut quality = QualityReport::new(STAGE, &plan.snapshot, run_id);
        quality.rows = rows;
        quality.checks = checks;
        quality
            .record_and_check(&self.platform, &plan.snapshot)
            .await
            .map_err(|gate| match gate {
                GateError::Record { source, .. } => SnapshotError::Storage {
                    what: format!("recording the data-quality report of {}", plan.snapshot),
                    source: Box::new(source),
                },
                GateError::Failed {
                    partition,
                    failures,
                } => SnapshotError::Quality {
                    partition,
                    failures,
                },
            })
    }

    /// `Err(Raced)` when today's snapshot was published by another run since the plan was made
    /// (another process merging the same table): publishing now could drop what it applied.
    async fn check_no_race(&self, request: &SnapshotRequest, plan: &Plan) -> Result<()> {
        let now = published_partitions(self.platform.catalog.as_ref(), &plan.snapshot)
            .await
            .map_err(|source| SnapshotError::Catalog {
                table: request.table.to_string(),
                source: Box::new(source),
            })?
            .into_iter()
            .find(|(date, _)| *date == request.today)
            .map(|(_, info)| run_of(&info));
        if now == plan.today.as_ref().map(run_of) {
            return Ok(());
        }
        Err(SnapshotError::Raced {
            table: request.table.to_string(),
            snapshot_date: date_value(request.today),
            other_run: now.unwrap_or_default(),
        })
    }

    /// The Parquet files of a published partition, sorted by key: (bucket, key, bytes).
    async fn list_files(
        &self,
        info: &PartitionInfo,
        what: &str,
    ) -> Result<Vec<(String, String, u64)>> {
        let (bucket, prefix) =
            split_s3_uri(&info.location).ok_or_else(|| SnapshotError::BadLocation {
                what: what.to_owned(),
                location: info.location.clone(),
            })?;
        let objects = self
            .platform
            .storage
            .list(bucket, prefix)
            .await
            .map_err(|source| SnapshotError::Storage {
                what: format!("listing {what}"),
                source: Box::new(source),
            })?;
        Ok(objects
            .into_iter()
            .filter(|o| o.key.ends_with(".parquet"))
            .map(|o| (bucket.to_owned(), o.key, o.size))
            .collect())
    }
}

/// What a merge reads: the base's files with their footers, the increments' files, and the
/// new snapshot's schema.
#[derive(Debug)]
struct Inputs {
    table: String,
    target: SchemaRef,
    base: Vec<((String, String, u64), Arc<ParquetMetaData>)>,
    increments: Vec<IncrementFile>,
}

impl Inputs {
    fn id_encoder(&self) -> Result<KeyEncoder> {
        let field =
            self.target
                .field_with_name(ID_COLUMN)
                .map_err(|_| SnapshotError::MissingColumn {
                    what: format!("the snapshot of {}", self.table),
                    column: ID_COLUMN.into(),
                })?;
        KeyEncoder::new(field.data_type()).map_err(|source| SnapshotError::Arrow {
            what: format!("{} ids", self.table),
            source,
        })
    }
}

/// Reads the increments' files in order, batch by batch, each batch conformed to `target` (and
/// only `target`'s columns fetched), with its import date and the file it came from.
struct IncrementReader<'a> {
    stage: &'a SnapshotStage,
    inputs: &'a Inputs,
    target: SchemaRef,
    next_file: usize,
    current: Option<OpenIncrementFile>,
}

/// The increment file being read.
struct OpenIncrementFile {
    batches: BatchStream,
    /// The partition columns (not in the files) and their values.
    constants: Vec<(&'static str, String)>,
    date: NaiveDate,
    what: String,
}

impl<'a> IncrementReader<'a> {
    fn new(stage: &'a SnapshotStage, inputs: &'a Inputs, target: SchemaRef) -> Self {
        Self {
            stage,
            inputs,
            target,
            next_file: 0,
            current: None,
        }
    }

    async fn next(&mut self) -> Result<Option<(RecordBatch, NaiveDate, String)>> {
        loop {
            if let Some(OpenIncrementFile {
                batches,
                constants,
                date,
                what,
            }) = &mut self.current
            {
                let read_error = |source| SnapshotError::Read {
                    what: what.clone(),
                    source: Box::new(source),
                };
                if let Some(batch) = batches.try_next().await.map_err(read_error)? {
                    // The partition values are not in the files: they become columns here.
                    let constants: Vec<(&str, &str)> =
                        constants.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let batch = conform(&batch, &self.target, &constants)
                        .map_err(arrow_error(what.clone()))?;
                    return Ok(Some((batch, *date, what.clone())));
                }
                self.current = None;
            }
            let Some(file) = self.inputs.increments.get(self.next_file) else {
                return Ok(None);
            };
            self.next_file += 1;
            let what = format!("s3://{}/{}", file.bucket, file.key);
            let columns: Vec<&str> = self
                .target
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let (_, batches) = read_file_columns(
                self.stage.platform.storage.clone(),
                &file.bucket,
                &file.key,
                self.stage.settings.batch_rows,
                Some(&columns),
            )
            .await
            .map_err(|source| SnapshotError::Read {
                what: what.clone(),
                source: Box::new(source),
            })?;
            let constants = Layer::Increment
                .partition_keys()
                .iter()
                .copied()
                .zip(file.values.iter().cloned())
                .collect();
            self.current = Some(OpenIncrementFile {
                batches,
                constants,
                date: file.date,
                what,
            });
        }
    }
}

fn arrow_error(what: String) -> impl FnOnce(arrow::error::ArrowError) -> SnapshotError {
    move |source| SnapshotError::Arrow { what, source }
}

/// One file of an increment partition to apply.
#[derive(Debug)]
struct IncrementFile {
    date: NaiveDate,
    /// The partition's values, in the order of the import partition keys.
    values: Vec<String>,
    bucket: String,
    key: String,
}

fn schema_of(metadata: &ParquetMetaData, bucket: &str, key: &str) -> Result<Schema> {
    file_schema(metadata).map_err(|e| SnapshotError::Arrow {
        what: format!("s3://{bucket}/{key}"),
        source: e.into(),
    })
}

/// The facts recorded with the snapshot partition (see [`parameters`]).
fn partition_parameters(
    plan: &Plan,
    applied: &[IncrementRun],
    report: &MergeReport,
) -> BTreeMap<String, String> {
    let base_date = plan.base.as_ref().map(|(d, _)| date_value(*d));
    let base_run = plan.base.as_ref().map(|(_, info)| run_of(info));
    BTreeMap::from([
        (
            parameters::INCLUDED_INCREMENTS.to_owned(),
            encode_included(&plan.included),
        ),
        (
            parameters::APPLIED_INCREMENTS.to_owned(),
            encode_included(applied.iter().map(|r| (&r.date, &r.run_id))),
        ),
        (
            parameters::BASE_SNAPSHOT_DATE.to_owned(),
            base_date.unwrap_or_default(),
        ),
        (
            parameters::BASE_RUN_ID.to_owned(),
            base_run.unwrap_or_default(),
        ),
        (
            parameters::COPIED_FILES.to_owned(),
            report.copied_files.to_string(),
        ),
        (
            parameters::REWRITTEN_FILES.to_owned(),
            report.rewritten_files.to_string(),
        ),
        (
            parameters::INCREMENT_ROWS.to_owned(),
            report.increment_rows.to_string(),
        ),
        (
            parameters::REPLACED_ROWS.to_owned(),
            report.replaced_rows.to_string(),
        ),
    ])
}

/// The name of the gate's check on the snapshot's row count against its base's.
pub const ROW_COUNT_CHANGE: &str = "row_count_change";

/// The gate's check that a snapshot holds no fewer rows than its base, bar the allowed share:
/// the value is the relative change `(rows - base_rows) / base_rows` (rounded to 4 places), the
/// threshold the lowest change allowed (`-allowed_drop`); the example gives both counts. A merge
/// never removes a row, so with the default (0) any drop fails. An empty base cannot drop.
pub fn row_count_check(
    base_date: NaiveDate,
    base_rows: u64,
    rows: u64,
    allowed_drop: Fraction,
) -> CheckResult {
    let change = if base_rows == 0 {
        0.0
    } else {
        (rows as f64 - base_rows as f64) / base_rows as f64
    };
    let allowed = allowed_drop.get();
    let dropped = base_rows.saturating_sub(rows);
    CheckResult {
        check: ROW_COUNT_CHANGE.to_owned(),
        // On the counts, not the rounded ratio: one row fewer fails the default.
        passed: dropped == 0 || dropped as f64 <= allowed * base_rows as f64,
        value: (change * 10_000.0).round() / 10_000.0,
        threshold: if allowed == 0.0 { 0.0 } else { -allowed },
        examples: vec![format!(
            "{rows} rows against {base_rows} in the base snapshot_date={}",
            date_value(base_date)
        )],
    }
}

/// Why the run has nothing to do, if so: today's snapshot holds the triggering increment run,
/// or holds exactly what the plan would apply on the same base.
fn up_to_date(plan: &Plan, request: &SnapshotRequest) -> Option<String> {
    let today = plan.today.as_ref()?;
    let held = decode_included(today.parameters.get(parameters::INCLUDED_INCREMENTS));
    let snapshot_date = date_value(request.today);
    if let Some(increment) = &request.increment
        && held.get(&increment.date) == Some(&increment.run_id)
    {
        return Some(format!(
            "increment {} import_date={} run {} is already in today's snapshot (snapshot_date={snapshot_date})",
            request.table,
            date_value(increment.date),
            increment.run_id
        ));
    }
    let same_base = today
        .parameters
        .get(parameters::BASE_RUN_ID)
        .map(String::as_str)
        .unwrap_or_default()
        == plan
            .base
            .as_ref()
            .map(|(_, info)| run_of(info))
            .unwrap_or_default();
    (same_base && held == plan.included).then(|| {
        format!(
            "{}: every published increment is already in today's snapshot (snapshot_date={snapshot_date})",
            request.table
        )
    })
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
        match self.snapshot(&request).await {
            Ok(SnapshotOutcome::Published(done)) => Ok(vec![PartitionReady::new(
                &done.partition,
                done.published.location.clone(),
                done.published.run_id.clone(),
                message.as_of,
            )]),
            Ok(SnapshotOutcome::UpToDate(reason)) => Err(Failure::Discard(reason)),
            Err(err) if err.is_transient() => Err(Failure::transient(err)),
            Err(err) => Err(Failure::permanent(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn included_increments_round_trip_and_skip_garbage() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let included: Included = [(day(20), "a".to_string()), (day(21), "b".to_string())].into();
        let text = encode_included(&included);
        assert_eq!(text, "20261120=a,20261121=b");
        assert_eq!(decode_included(Some(&text)), included);
        assert_eq!(
            decode_included(Some(&"junk,2026=x,20261121=b".to_string())).len(),
            1
        );
        assert!(decode_included(None).is_empty());
    }

    #[test]
    fn row_count_check_fails_a_drop_beyond_the_allowed_share() {
        let base = NaiveDate::from_ymd_opt(2026, 11, 8).unwrap();
        let none = Fraction::new(0.0).unwrap();
        let check = row_count_check(base, 4200, 298, none);
        assert!(!check.passed);
        assert_eq!(check.check, "row_count_change");
        assert_eq!(check.value, -0.929);
        assert_eq!(check.threshold, 0.0);
        assert_eq!(
            check.examples,
            ["298 rows against 4200 in the base snapshot_date=20261108"]
        );
        assert!(!row_count_check(base, 4200, 4199, none).passed);
        assert!(row_count_check(base, 4200, 4200, none).passed);
        assert!(row_count_check(base, 4200, 4300, none).passed);
        assert!(row_count_check(base, 0, 0, none).passed);
        let tenth = Fraction::new(0.1).unwrap();
        assert!(row_count_check(base, 1000, 900, tenth).passed);
        assert!(!row_count_check(base, 1000, 899, tenth).passed);
        assert_eq!(row_count_check(base, 1000, 899, tenth).threshold, -0.1);
    }
}
