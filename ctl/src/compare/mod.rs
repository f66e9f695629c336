//! `tascomi compare`: reconciles two snapshots of a table, or of every table of the pipeline
//! file: two snapshot dates of one lake, or the same date in two lakes (another Glue database
//! prefix, such as the old Glue jobs' lake during a parallel run, or another local data
//! directory).
//!
//! Per table it reports the rows on each side, the ids on one side only (how many, and the
//! smallest few), and per column the ids on both sides whose values differ (how many, and a
//! few with both values); the columns on one side only, and the columns typed differently.
//! Rows are matched by `id`; values compare by type (see [`plan`]): a timestamp written as
//! INT96 by Spark equals the same instant written as INT64 microseconds by us. Memory: see
//! [`engine`].
//!
//! A snapshot is found through its side's catalog (the published partition), so a comparison
//! reads exactly what Athena reads on each side.

pub mod engine;
pub mod plan;
pub mod report;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use common::catalog::PartitionInfo;
use common::layout::{Layer, PartitionRef, TableName, date_value};
use common::parquet_io::read_metadata;
use common::platform::Platform;
use common::publish::published_partitions;
use common::source::{PartitionReader, PublishedFiles, published_files};

use crate::cli::parse_date_arg;
use crate::target::Target;

pub use engine::{Comparer, Options};
pub use report::{CompareOutcome, SideSummary, TableComparison};

/// Rows per batch read.
const BATCH_ROWS: usize = 8192;

/// `tascomi compare`: what to compare, and how to print it.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The table to compare (default: every table of the pipeline file).
    #[arg(long, value_name = "TABLE")]
    pub table: Option<TableName>,
    /// The snapshot compared on the left, this deployment's or data directory's, YYYY-MM-DD or
    /// YYYYMMDD (default: its latest).
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub date: Option<NaiveDate>,
    /// The snapshot compared on the right, YYYY-MM-DD or YYYYMMDD (default: the same date as
    /// the left in the other lake of --against-prefix or --against-data-dir; without either,
    /// the snapshot before the left one).
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub against_date: Option<NaiveDate>,
    /// The right side is the lake whose Glue databases are PREFIX-tascomi-raw-zone and
    /// PREFIX-tascomi-refined-zone (the old Glue jobs' lake in a parallel run, e.g.
    /// dataplatform-prod), read through the same catalog and storage as the left.
    #[arg(long, value_name = "PREFIX", conflicts_with = "against_data_dir")]
    pub against_prefix: Option<String>,
    /// The right side is the local data directory DIR (another lake root of the embedded
    /// default).
    #[arg(long, value_name = "DIR")]
    pub against_data_dir: Option<PathBuf>,
    /// Columns left out of the comparison, comma-separated (in a parallel run, e.g.
    /// import_datetime,import_timestamp: the two pipelines imported at other times).
    #[arg(long, value_name = "COLUMN,...", value_delimiter = ',')]
    pub ignore_columns: Vec<String>,
    /// Columns typed with another width on each side (int and bigint, float and double) are
    /// listed, but are not a difference (their values still are compared).
    #[arg(long)]
    pub ignore_widening: bool,
    /// How many example ids (with their values) to show per finding.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub examples: usize,
    /// Print one JSON document instead of the text report.
    #[arg(long)]
    pub json: bool,
}

impl CompareArgs {
    fn options(&self) -> Options {
        Options {
            examples: self.examples,
            ignore_widening: self.ignore_widening,
            ignore_columns: self
                .ignore_columns
                .iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect::<BTreeSet<_>>(),
            ..Options::default()
        }
    }

    /// Whether the right side is another lake than the left.
    fn other_lake(&self) -> bool {
        self.against_prefix.is_some() || self.against_data_dir.is_some()
    }
}

/// One side's lake: where its catalog and files are.
#[derive(Debug, Clone)]
struct Lake {
    platform: Platform,
    /// The data directory of a local lake.
    dir: Option<PathBuf>,
}

impl Lake {
    fn partition(&self, table: &TableName, date: NaiveDate) -> PartitionRef {
        self.platform.layout.partition(table, Layer::Snapshot, date)
    }

    /// `<database>.<table>`, and the data directory of a local lake.
    fn place(&self, table: &TableName) -> String {
        let p = self.partition(table, NaiveDate::MIN);
        match &self.dir {
            Some(dir) => format!("{}.{} in {}", p.database, p.catalog_table, dir.display()),
            None => format!("{}.{}", p.database, p.catalog_table),
        }
    }

    /// The published snapshots of `table`, oldest first.
    async fn snapshots(
        &self,
        table: &TableName,
    ) -> anyhow::Result<Vec<(NaiveDate, PartitionInfo)>> {
        let any = self.partition(table, NaiveDate::MIN);
        published_partitions(self.platform.catalog.as_ref(), &any)
            .await
            .with_context(|| format!("listing the snapshots of {}", self.place(table)))
    }
}

/// Compares the snapshots `args` names on `target` (the left side) and on the side
/// `args` names (the right side): every table of the pipeline file, or `--table`.
///
/// A table that cannot be compared (no snapshot of the date on a side, no id column) is in the
/// outcome with its reason, as a difference; a failure to read a snapshot is an error.
pub async fn run(args: CompareArgs, target: &Target) -> anyhow::Result<CompareOutcome> {
    let left = Lake {
        platform: target.platform().clone(),
        dir: target.local().map(|l| l.data_dir.clone()),
    };
    let right = match (&args.against_prefix, &args.against_data_dir) {
        (Some(prefix), _) => {
            let prefix = prefix.trim();
            if prefix.is_empty() {
                bail!("--against-prefix is empty: give the other lake's Glue database prefix");
            }
            let mut platform = left.platform.clone();
            platform.layout.database_prefix = prefix.to_owned();
            Lake {
                platform,
                dir: left.dir.clone(),
            }
        }
        (None, Some(dir)) => {
            if !dir.is_dir() {
                bail!(
                    "--against-data-dir {} is not a directory: check the path",
                    dir.display()
                );
            }
            Lake {
                platform: Platform::local(dir),
                dir: Some(dir.clone()),
            }
        }
        (None, None) => left.clone(),
    };
    if !args.other_lake() && args.date.is_some() && args.date == args.against_date {
        bail!(
            "--date and --against-date name the same snapshot of the same lake: give another --against-date, or the other lake (--against-prefix, --against-data-dir)"
        );
    }
    let tables = crate::ops::tables(target, args.table.as_ref());
    if tables.is_empty() {
        bail!("the pipeline file names no table: give --table");
    }
    let mut compared = Vec::with_capacity(tables.len());
    for table in &tables {
        compared.push(compare_table(&left, &right, table, &args).await?);
    }
    Ok(CompareOutcome::new(compared, args.json))
}

/// The snapshot of `date` among `snapshots`, or why there is none.
fn find(
    snapshots: &[(NaiveDate, PartitionInfo)],
    date: NaiveDate,
    side: &str,
    place: &str,
) -> Result<(), String> {
    if snapshots.iter().any(|(d, _)| *d == date) {
        Ok(())
    } else {
        Err(format!(
            "no snapshot dated {} on the {side} ({place}{})",
            date_value(date),
            match snapshots.last() {
                Some((latest, _)) => format!(": its latest is {}", date_value(*latest)),
                None => ": it has no snapshot".into(),
            }
        ))
    }
}

/// Compares one table's two snapshots.
async fn compare_table(
    left: &Lake,
    right: &Lake,
    table: &TableName,
    args: &CompareArgs,
) -> anyhow::Result<TableComparison> {
    let mut sides = (
        SideSummary {
            place: left.place(table),
            ..SideSummary::default()
        },
        SideSummary {
            place: right.place(table),
            ..SideSummary::default()
        },
    );
    let left_snapshots = left.snapshots(table).await?;
    let right_snapshots = if args.other_lake() {
        right.snapshots(table).await?
    } else {
        left_snapshots.clone()
    };
    let problem = |sides: (SideSummary, SideSummary), why: String| {
        Ok(TableComparison::problem(
            table.as_str(),
            sides.0,
            sides.1,
            why,
        ))
    };
    let left_date = match (args.date, left_snapshots.last()) {
        (Some(date), _) => date,
        (None, Some((latest, _))) => *latest,
        (None, None) => {
            let why = format!("no snapshot on the left ({})", sides.0.place);
            return problem(sides, why);
        }
    };
    let right_date = match args.against_date {
        Some(date) => date,
        None if args.other_lake() => left_date,
        None => match left_snapshots.iter().rev().find(|(d, _)| *d < left_date) {
            Some((date, _)) => *date,
            None => {
                let why = format!(
                    "no snapshot before {} on the left to compare it with (give --against-date, or another lake)",
                    date_value(left_date)
                );
                return problem(sides, why);
            }
        },
    };
    if !args.other_lake() && left_date == right_date {
        let why = format!(
            "both sides are the snapshot dated {} of the same lake: give another --against-date, or another lake",
            date_value(left_date)
        );
        return problem(sides, why);
    }
    if let Err(why) = find(&left_snapshots, left_date, "left", &sides.0.place) {
        return problem(sides, why);
    }
    if let Err(why) = find(&right_snapshots, right_date, "right", &sides.1.place) {
        return problem(sides, why);
    }
    let (left_ref, right_ref) = (
        left.partition(table, left_date),
        right.partition(table, right_date),
    );
    let left_files = files(left, &left_ref).await?;
    let right_files = files(right, &right_ref).await?;
    for (summary, files, date) in [
        (&mut sides.0, &left_files, left_date),
        (&mut sides.1, &right_files, right_date),
    ] {
        summary.snapshot_date = Some(date_value(date));
        summary.location = Some(files.location.clone());
        summary.files = files.files.len();
    }
    let left_schema = schema(left, &left_ref, &left_files).await?;
    let right_schema = schema(right, &right_ref, &right_files).await?;
    let mut comparer = Comparer::new(table.as_str(), args.options(), &left_schema, &right_schema);
    let mut reader = PartitionReader::new(
        left.platform.storage.clone(),
        &left_ref,
        &left_files,
        BATCH_ROWS,
    );
    while let Some((_, batch)) = reader.next_batch().await? {
        comparer
            .push_left(&batch)
            .with_context(|| format!("{left_ref} (left)"))?;
    }
    let mut reader = PartitionReader::new(
        right.platform.storage.clone(),
        &right_ref,
        &right_files,
        BATCH_ROWS,
    );
    while let Some((_, batch)) = reader.next_batch().await? {
        comparer
            .push_right(&batch)
            .with_context(|| format!("{right_ref} (right)"))?;
    }
    let mut found = comparer.finish();
    let (rows, columns) = (
        (found.left.rows, found.right.rows),
        (found.left.columns, found.right.columns),
    );
    (found.left, found.right) = sides;
    (found.left.rows, found.right.rows) = rows;
    (found.left.columns, found.right.columns) = columns;
    found.identical = found.is_identical();
    Ok(found)
}

/// The files of a published snapshot.
async fn files(lake: &Lake, partition: &PartitionRef) -> anyhow::Result<PublishedFiles> {
    published_files(&lake.platform, partition)
        .await?
        .with_context(|| {
            format!(
                "{partition} is no longer published ({})",
                lake.place(&partition.table)
            )
        })
}

/// The columns of a snapshot: those of its files, read from their footers, each once, in the
/// order they first appear. An INT96 timestamp (Spark's) is a timestamp in microseconds, as
/// `common::parquet_io` reads it (a batch read otherwise is cast to it, see
/// [`engine`]): nanoseconds would not hold the dates before 1677 a source may have.
async fn schema(
    lake: &Lake,
    partition: &PartitionRef,
    files: &PublishedFiles,
) -> anyhow::Result<SchemaRef> {
    let mut fields: Vec<FieldRef> = Vec::new();
    for file in &files.files {
        let metadata = read_metadata(lake.platform.storage.clone(), &files.bucket, &file.key)
            .await
            .with_context(|| format!("reading the footer of a file of {partition}"))?;
        let meta = metadata.file_metadata();
        let schema =
            parquet::arrow::parquet_to_arrow_schema(meta.schema_descr(), meta.key_value_metadata())
                .with_context(|| format!("the columns of s3://{}/{}", files.bucket, file.key))?;
        let descr = meta.schema_descr();
        let flat = descr.num_columns() == schema.fields().len();
        for (i, field) in schema.fields().iter().enumerate() {
            if fields.iter().any(|f| f.name() == field.name()) {
                continue;
            }
            let int96 = flat && descr.column(i).physical_type() == parquet::basic::Type::INT96;
            match field.data_type() {
                DataType::Timestamp(_, zone) if int96 => {
                    fields.push(Arc::new(field.as_ref().clone().with_data_type(
                        DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
                    )))
                }
                _ => fields.push(field.clone()),
            }
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}
