//! The operations on a target: replay, reset, rollback, status, drift. Each plans first (what it
//! will touch, printed) and then acts; the plan is computed from the catalog, so what is
//! printed is what is done.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use common::catalog::PartitionInfo;
use common::layout::{Layer, TableName, date_value};
use common::messages::{self, PartitionReady};
use common::parquet_io::read_metadata;
use common::publish::published_partitions;
use common::storage::split_s3_uri;

use crate::stage::Stage;
use crate::target::Target;

/// One published partition of one layer.
#[derive(Debug, Clone)]
pub struct Published {
    pub table: TableName,
    pub layer: Layer,
    pub date: NaiveDate,
    pub info: PartitionInfo,
}

/// The published partitions of a layer of a table, oldest first.
pub async fn partitions(
    target: &Target,
    table: &TableName,
    layer: Layer,
) -> anyhow::Result<Vec<Published>> {
    let platform = target.platform();
    // Any date names the table; only its database and catalog table are used.
    let any = platform.layout.partition(table, layer, NaiveDate::MIN);
    Ok(published_partitions(platform.catalog.as_ref(), &any)
        .await?
        .into_iter()
        .map(|(date, info)| Published {
            table: table.clone(),
            layer,
            date,
            info,
        })
        .collect())
}

/// The tables an operation covers: the one named, or every table of the pipeline file.
pub fn tables(target: &Target, table: Option<&TableName>) -> Vec<TableName> {
    match table {
        Some(table) => vec![table.clone()],
        None => target
            .pipeline()
            .tables
            .iter()
            .map(|t| t.name.clone())
            .collect(),
    }
}

/// The "partition ready" messages that make `stage` run again on its input partitions dated
/// `from..=to` (`to` open when `None`).
///
/// Each message's `as_of` is `as_of` when given, else the partition's own date: a replayed
/// partition of the 9th rebuilds the layers, and the snapshot, of the 9th, not of today.
pub async fn replay_messages(
    target: &Target,
    stage: Stage,
    tables: &[TableName],
    from: NaiveDate,
    to: Option<NaiveDate>,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<Vec<PartitionReady>> {
    let Some(upstream) = stage.layer().upstream() else {
        bail!(
            "ingest reads the Tascomi API, not a partition: use `tascomi ingest --mode full` or `retry-failed`"
        );
    };
    let mut out = Vec::new();
    for table in tables {
        for p in partitions(target, table, upstream).await? {
            if p.date < from || to.is_some_and(|to| p.date > to) {
                continue;
            }
            let partition_ref = target.platform().layout.partition(table, upstream, p.date);
            let run_id = p
                .info
                .parameters
                .get("run_id")
                .cloned()
                .unwrap_or_else(|| "replay".into());
            out.push(PartitionReady::new(
                &partition_ref,
                p.info.location.clone(),
                run_id,
                Some(as_of.unwrap_or(p.date)),
            ));
        }
    }
    Ok(out)
}

/// The snapshots replaying `messages` writes: per table, the dates (each message's `as_of`,
/// else its partition's date), oldest first.
pub fn snapshot_dates<'a>(
    messages: impl IntoIterator<Item = &'a PartitionReady>,
) -> BTreeMap<TableName, BTreeSet<NaiveDate>> {
    let mut out: BTreeMap<TableName, BTreeSet<NaiveDate>> = BTreeMap::new();
    for m in messages {
        out.entry(m.table.clone())
            .or_default()
            .insert(m.as_of.unwrap_or_else(|| m.date()));
    }
    out
}

/// `appeals: 20261109, 20261110` per table, one line each.
pub fn describe_snapshot_dates(dates: &BTreeMap<TableName, BTreeSet<NaiveDate>>) -> String {
    let mut text = String::new();
    for (table, dates) in dates {
        let dates: Vec<String> = dates.iter().map(|d| date_value(*d)).collect();
        let _ = writeln!(
            text,
            "writes the snapshot of {table} dated {}",
            dates.join(", ")
        );
    }
    text
}

/// Sends the messages to the stage and lets them take effect.
pub async fn send_all(
    target: &Target,
    stage: Stage,
    messages: &[PartitionReady],
) -> anyhow::Result<()> {
    for message in messages {
        target.send(stage, &messages::encode(message)).await?;
    }
    target.settle().await
}

/// What a reset or rollback will do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Partitions to unpublish (catalog first) and then remove (files).
    pub remove: Vec<Published>,
    /// Column types to set in the catalog once the partitions are removed, before the replay
    /// (`tascomi retype`).
    pub retype: Vec<crate::retype::CatalogRetype>,
    /// Messages to send afterwards, and to which stage.
    pub replay: Vec<(Stage, PartitionReady)>,
}

impl Plan {
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for r in &self.retype {
            text.push_str(&r.describe());
        }
        if self.remove.is_empty() {
            text.push_str("no partitions to remove\n");
        }
        for p in &self.remove {
            let _ = writeln!(
                text,
                "unpublish and remove {} {} {} ({} rows) at {}",
                p.table,
                p.layer,
                date_value(p.date),
                p.info.parameters.get("rows").map_or("?", String::as_str),
                p.info.location
            );
        }
        for (stage, m) in &self.replay {
            let _ = writeln!(
                text,
                "replay {} {} {} to {stage} (as of {})",
                m.table,
                m.layer,
                date_value(m.date()),
                date_value(m.as_of.unwrap_or_else(|| m.date()))
            );
        }
        let writes = self.snapshot_dates();
        text.push_str(&describe_snapshot_dates(&writes));
        for p in self.remove.iter().filter(|p| p.layer == Layer::Snapshot) {
            if !writes.get(&p.table).is_some_and(|d| d.contains(&p.date)) {
                let _ = writeln!(
                    text,
                    "note: the snapshot of {} dated {} is removed and not written again",
                    p.table,
                    date_value(p.date)
                );
            }
        }
        text
    }

    /// The snapshots the replay writes, per table (see [`snapshot_dates`]).
    pub fn snapshot_dates(&self) -> BTreeMap<TableName, BTreeSet<NaiveDate>> {
        snapshot_dates(self.replay.iter().map(|(_, m)| m))
    }

    /// Carries the plan out: unpublish in the catalog first (readers stop seeing the data),
    /// then delete the files (every run folder of the partition), then set the column types of
    /// a retype (nothing written with the old types is left), then replay.
    ///
    /// Ctrl-C stops between two steps (see [`crate::interrupt`]): what is done is done, and
    /// the same command again plans from what is left and completes it.
    pub async fn execute(&self, target: &Target) -> anyhow::Result<()> {
        let platform = target.platform();
        let _careful = crate::interrupt::Careful::begin();
        let interrupted = |removed: usize, sent: usize| {
            crate::interrupt::Interrupted(format!(
                "{removed} of {} partition(s) removed, {sent} of {} message(s) sent; run the same command again: it plans from what is left, removes the rest and sends every message",
                self.remove.len(),
                self.replay.len()
            ))
        };
        for (removed, p) in self.remove.iter().enumerate() {
            if crate::interrupt::requested() {
                return Err(interrupted(removed, 0).into());
            }
            let partition = platform.layout.partition(&p.table, p.layer, p.date);
            platform
                .catalog
                .drop_partition(
                    &partition.database,
                    &partition.catalog_table,
                    &p.info.values,
                )
                .await
                .with_context(|| format!("unpublishing {partition}"))?;
            let keys: Vec<String> = platform
                .storage
                .list(&partition.bucket, &partition.key_prefix())
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect();
            platform
                .storage
                .delete(&partition.bucket, &keys)
                .await
                .with_context(|| format!("removing the files of {partition}"))?;
        }
        if !self.retype.is_empty() {
            if crate::interrupt::requested() {
                return Err(interrupted(self.remove.len(), 0).into());
            }
            crate::retype::apply(target, &self.retype).await?;
        }
        for (sent, (stage, message)) in self.replay.iter().enumerate() {
            if crate::interrupt::requested() {
                return Err(interrupted(self.remove.len(), sent).into());
            }
            target.send(*stage, &messages::encode(message)).await?;
        }
        target.settle().await
    }
}

/// Reset: remove the partitions of `stage`'s layer and every later layer dated `from` or later,
/// then replay `stage` from `from`.
pub async fn plan_reset(
    target: &Target,
    table: &TableName,
    stage: Stage,
    from: NaiveDate,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<Plan> {
    let replay = replay_messages(
        target,
        stage,
        std::slice::from_ref(table),
        from,
        None,
        as_of,
    )
    .await?;
    let mut plan = Plan::default();
    for s in stage.and_downstream() {
        for p in partitions(target, table, s.layer()).await? {
            if p.date >= from {
                plan.remove.push(p);
            }
        }
    }
    plan.replay = replay.into_iter().map(|m| (stage, m)).collect();
    Ok(plan)
}

/// Rollback: make the snapshot of `to` the latest again by removing the later ones.
pub async fn plan_rollback(
    target: &Target,
    table: &TableName,
    to: NaiveDate,
) -> anyhow::Result<Plan> {
    let snapshots = partitions(target, table, Layer::Snapshot).await?;
    if !snapshots.iter().any(|p| p.date == to) {
        let dates: Vec<String> = snapshots.iter().map(|p| date_value(p.date)).collect();
        bail!(
            "{table} has no snapshot of {} (it has: {})",
            date_value(to),
            if dates.is_empty() {
                "none".into()
            } else {
                dates.join(", ")
            }
        );
    }
    Ok(Plan {
        remove: snapshots.into_iter().filter(|p| p.date > to).collect(),
        ..Plan::default()
    })
}

/// Something `status` flags on a table: data that is published in one layer and missing from
/// the next, so the snapshot does not hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// A raw import without the later layer's partition of its date (a "hole": e.g. a night
    /// killed after ingest, or a partition removed by hand). `missing` is the first layer
    /// that lacks it.
    Hole {
        table: TableName,
        import_date: NaiveDate,
        missing: Layer,
    },
    /// The latest snapshot (if any) is older than the latest raw import.
    Behind {
        table: TableName,
        snapshot: Option<NaiveDate>,
        import_date: NaiveDate,
        /// Where a rebuild starts: the day after the latest snapshot, else the first import.
        rebuild_from: NaiveDate,
    },
}

impl Gap {
    /// One line: what is missing and the command that repairs it (printing its plan first).
    pub fn describe(&self) -> String {
        match self {
            Gap::Hole {
                table,
                import_date,
                missing,
            } => {
                let stage = Stage::publishing(*missing);
                format!(
                    "HOLE    {table}: the raw import {} has no {missing} partition, so no snapshot holds it; repair: tascomi reset --table {table} --stage {stage} --from {import_date}",
                    date_value(*import_date),
                )
            }
            Gap::Behind {
                table,
                snapshot,
                import_date,
                rebuild_from,
            } => format!(
                "BEHIND  {table}: the latest snapshot ({}) is older than the latest raw import {}; the dead-letter queues say why (tascomi redrive after the fix); without a hole, rebuild: tascomi replay --stage snapshot --table {table} --from {rebuild_from}",
                snapshot.map_or("none".into(), date_value),
                date_value(*import_date),
            ),
        }
    }
}

/// The holes and lagging snapshots of every table of the pipeline file. A run still in progress
/// shows as `Behind` (and, between two stages, as a hole) until it finishes.
pub async fn gaps(target: &Target) -> anyhow::Result<Vec<Gap>> {
    let mut out = Vec::new();
    for config in &target.pipeline().tables {
        let table = &config.name;
        let raw = dates(&partitions(target, table, Layer::Raw).await?);
        let parsed = dates(&partitions(target, table, Layer::Parsed).await?);
        let increments = dates(&partitions(target, table, Layer::Increment).await?);
        let snapshots = dates(&partitions(target, table, Layer::Snapshot).await?);
        out.extend(table_gaps(table, &raw, &parsed, &increments, &snapshots));
    }
    Ok(out)
}

/// The holes and lagging snapshot of one table, from the dates of its published partitions.
pub fn table_gaps(
    table: &TableName,
    raw: &BTreeSet<NaiveDate>,
    parsed: &BTreeSet<NaiveDate>,
    increments: &BTreeSet<NaiveDate>,
    snapshots: &BTreeSet<NaiveDate>,
) -> Vec<Gap> {
    let mut out = Vec::new();
    for date in raw {
        let missing = if !parsed.contains(date) {
            Some(Layer::Parsed)
        } else if !increments.contains(date) {
            Some(Layer::Increment)
        } else {
            None
        };
        if let Some(missing) = missing {
            out.push(Gap::Hole {
                table: table.clone(),
                import_date: *date,
                missing,
            });
        }
    }
    let latest_snapshot = snapshots.last().copied();
    if let Some(latest_raw) = raw.last()
        && latest_snapshot.is_none_or(|s| s < *latest_raw)
    {
        let first_raw = raw.first().copied().unwrap_or(*latest_raw);
        out.push(Gap::Behind {
            table: table.clone(),
            snapshot: latest_snapshot,
            import_date: *latest_raw,
            rebuild_from: latest_snapshot
                .and_then(|s| s.succ_opt())
                .unwrap_or(first_raw),
        });
    }
    out
}

fn dates(published: &[Published]) -> BTreeSet<NaiveDate> {
    published.iter().map(|p| p.date).collect()
}

/// What `drift` found for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    pub table: String,
    /// Columns the parsed table gained since its first partition that the dictionary does not
    /// type: they arrive as text.
    pub new_columns: Vec<String>,
    /// Columns the dictionary types that the parsed table does not have.
    pub missing_columns: Vec<String>,
    /// The table is recast but the dictionary does not list it.
    pub missing_from_dictionary: bool,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.new_columns.is_empty()
            && self.missing_columns.is_empty()
            && !self.missing_from_dictionary
    }
}

/// The columns of the files of a published partition (from the Parquet footers only).
async fn partition_columns(
    target: &Target,
    info: &PartitionInfo,
) -> anyhow::Result<BTreeSet<String>> {
    let storage = target.platform().storage.clone();
    let (bucket, prefix) = split_s3_uri(&info.location).with_context(|| {
        format!(
            "partition location {} is not an s3:// address",
            info.location
        )
    })?;
    let mut columns = BTreeSet::new();
    for object in storage.list(bucket, prefix).await? {
        let metadata = read_metadata(storage.clone(), bucket, &object.key).await?;
        for column in metadata.file_metadata().schema_descr().columns() {
            columns.insert(column.name().to_owned());
        }
    }
    Ok(columns)
}

/// Compares the parsed tables with the column-type dictionary.
pub async fn drift(
    target: &Target,
    dictionary: &common::dictionary::ColumnTypes,
) -> anyhow::Result<Vec<Drift>> {
    let mut out = Vec::new();
    for config in &target.pipeline().tables {
        if config.keep_as_text {
            continue;
        }
        let table = config.name.as_str();
        let mut drift = Drift {
            table: table.to_owned(),
            missing_from_dictionary: !dictionary.has_table(table),
            ..Drift::default()
        };
        let parsed = partitions(target, &config.name, Layer::Parsed).await?;
        if let (Some(first), Some(latest)) = (parsed.first(), parsed.last()) {
            let latest_columns = partition_columns(target, &latest.info).await?;
            let first_columns = partition_columns(target, &first.info).await?;
            drift.new_columns = latest_columns
                .difference(&first_columns)
                .filter(|c| dictionary.column_type(table, c).is_none())
                .cloned()
                .collect();
            drift.missing_columns = dictionary
                .columns(table)
                .filter(|(c, _)| !latest_columns.contains(*c))
                .map(|(c, _)| c.to_owned())
                .collect();
        }
        out.push(drift);
    }
    Ok(out)
}
