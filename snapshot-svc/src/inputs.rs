//! Reading what goes into a snapshot: the base's files (their footers and statistics; their
//! rows are streamed by the merge) and the increments' files, batch by batch.
//!
//! `Inputs::read` lists the files of the plan's base and increments and reads their footers;
//! the new snapshot's schema is the union of their columns ([`crate::schema`]). The increments
//! are then read in one of two ways (the rule is [`crate::winner`]'s):
//! - `Inputs::prepare`: held, one row per id, sorted by id ([`crate::increment::Preparer`]);
//! - `Inputs::read_order`: only the ids and `last_updated`, to find the winners of an
//!   increment in id order, or nearly, without holding it ([`crate::streamed`]); the merge then
//!   reads the increment again with `IncrementReader`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::row::OwnedRow;
use chrono::NaiveDate;
use common::catalog::PartitionInfo;
use common::layout::{Layer, TableName, date_value};
use common::parquet_io::{BatchStream, read_file_columns, read_metadata};
use common::storage::{Storage, split_s3_uri};
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Result, SnapshotError};
use crate::increment::{PreparedIncrement, Preparer};
use crate::merge::MergeColumns;
use crate::plan::Plan;
use crate::schema::{SchemaUnion, conform};
use crate::streamed::InOrderWinners;
use crate::winner::{ID_COLUMN, KeyEncoder, LAST_UPDATED_COLUMN, id_encoder, rule_columns};

/// What a merge reads: the base's files with their footers, the increments' files, and the
/// new snapshot's schema.
#[derive(Debug)]
pub(crate) struct Inputs {
    pub(crate) table: String,
    pub(crate) target: SchemaRef,
    pub(crate) base: Vec<((String, String, u64), Arc<ParquetMetaData>)>,
    increments: Vec<IncrementFile>,
    storage: Arc<dyn Storage>,
    batch_rows: usize,
}

impl Inputs {
    /// The encoder of the new snapshot's ids.
    pub(crate) fn id_encoder(&self) -> Result<KeyEncoder> {
        id_encoder(&self.target, &self.table)
    }

    /// Reads the footers of the base's files and lists the increments' files; the new
    /// snapshot's schema is the union of all of them. `None` when there is nothing at all.
    /// Read in batches of `batch_rows` rows.
    pub(crate) async fn read(
        storage: &Arc<dyn Storage>,
        batch_rows: usize,
        table: &TableName,
        plan: &Plan,
    ) -> Result<Option<Self>> {
        let table = table.to_string();
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
            for object in list_files(storage, info, &origin).await? {
                let metadata = footer(storage.clone(), &object.0, &object.1).await?;
                let schema = schema_of(&metadata, &object.0, &object.1)?;
                union.add(&schema, &origin).map_err(schema_error)?;
                base.push((object, metadata));
            }
        }
        let mut increments = Vec::new();
        for (date, info) in &plan.apply {
            let origin = format!("increment import_date={}", date_value(*date));
            for (bucket, key, _) in list_files(storage, info, &origin).await? {
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
            storage: storage.clone(),
            batch_rows,
        }))
    }

    /// The storage the files are read from.
    pub(crate) fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// The base's files, summarised from their footers (see [`BaseFile::from_metadata`]).
    pub(crate) fn base_files(
        &self,
        ids: &KeyEncoder,
        columns: &MergeColumns,
    ) -> Result<Vec<BaseFile>> {
        self.base
            .iter()
            .map(|((bucket, key, bytes), metadata)| {
                BaseFile::from_metadata(bucket, key, *bytes, metadata, ids, columns)
            })
            .collect()
    }

    /// Reads every increment file batch by batch and keeps one row per id (see
    /// [`crate::increment`]).
    pub(crate) async fn prepare(&self, ids: Arc<KeyEncoder>) -> Result<PreparedIncrement> {
        let mut preparer = Preparer::new(self.target.clone(), ID_COLUMN, LAST_UPDATED_COLUMN, ids)
            .map_err(arrow_error(format!("{} increment", self.table)))?;
        let mut reader = IncrementReader::new(self, self.target.clone());
        while let Some((batch, date, what)) = reader.next().await? {
            preparer.add(batch, date).map_err(arrow_error(what))?;
        }
        preparer
            .finish(self.batch_rows)
            .map_err(arrow_error(format!("{} increment", self.table)))
    }

    /// Reads only the ids and `last_updated` of the increments and, when the ids come in id
    /// order or nearly (rows out of place by fewer than `window` distinct ids), says which rows
    /// win (row numbers in read order, listed in id order) and how many rows had no id. `None`
    /// as soon as an id is further out of order. Memory: `window` ids, and 8 bytes per winning
    /// row.
    pub(crate) async fn read_order(
        &self,
        ids: Arc<KeyEncoder>,
        window: usize,
    ) -> Result<Option<(Vec<u64>, u64)>> {
        let keys = rule_columns(&self.target);
        let mut winners = InOrderWinners::new(&keys, ID_COLUMN, LAST_UPDATED_COLUMN, ids, window)
            .map_err(arrow_error(format!("{} increment", self.table)))?;
        let mut reader = IncrementReader::new(self, keys);
        while let Some((batch, date, what)) = reader.next().await? {
            if !winners.add(&batch, date).map_err(arrow_error(what))? {
                return Ok(None);
            }
        }
        Ok(Some(winners.finish()))
    }
}

/// The Parquet files of a published partition, sorted by key: (bucket, key, bytes).
async fn list_files(
    storage: &Arc<dyn Storage>,
    info: &PartitionInfo,
    what: &str,
) -> Result<Vec<(String, String, u64)>> {
    let (bucket, prefix) =
        split_s3_uri(&info.location).ok_or_else(|| SnapshotError::BadLocation {
            what: what.to_owned(),
            location: info.location.clone(),
        })?;
    let objects = storage
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

/// Reads the increments' files in order, batch by batch, each batch conformed to `target` (and
/// only `target`'s columns fetched), with its import date and the file it came from.
pub(crate) struct IncrementReader<'a> {
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
    /// A reader of the increments' columns in `target`.
    pub(crate) fn new(inputs: &'a Inputs, target: SchemaRef) -> Self {
        Self {
            inputs,
            target,
            next_file: 0,
            current: None,
        }
    }

    /// The next batch with its import date and its file, or `None` after the last file.
    pub(crate) async fn next(&mut self) -> Result<Option<(RecordBatch, NaiveDate, String)>> {
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
                self.inputs.storage.clone(),
                &file.bucket,
                &file.key,
                self.inputs.batch_rows,
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

pub(crate) fn arrow_error(what: String) -> impl FnOnce(arrow::error::ArrowError) -> SnapshotError {
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

/// One file of the previous snapshot, summarised from its footer (no rows read).
#[derive(Debug, Clone)]
pub struct BaseFile {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub rows: u64,
    pub schema: SchemaRef,
    /// Smallest and largest id, when the statistics give them for every row group.
    pub id_range: Option<(OwnedRow, OwnedRow)>,
    /// Each row group's smallest and largest id, when the statistics give them for all.
    pub groups: Option<Vec<(OwnedRow, OwnedRow)>>,
    /// Rows without an id, when the statistics say.
    pub id_nulls: Option<u64>,
    /// Rows with a completeness value, when the statistics say.
    pub complete: Option<u64>,
    /// The file's footer.
    pub metadata: Arc<ParquetMetaData>,
}

impl BaseFile {
    pub(crate) fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Summarises a file from its footer (`metadata`): schema, row count and the statistics
    /// of the id and completeness columns. `ids` encodes ids of the new snapshot's id type.
    pub fn from_metadata(
        bucket: &str,
        key: &str,
        bytes: u64,
        metadata: &Arc<ParquetMetaData>,
        ids: &KeyEncoder,
        columns: &MergeColumns,
    ) -> Result<Self> {
        let what = format!("s3://{bucket}/{key}");
        let arrow_error = |source: ParquetError| SnapshotError::Arrow {
            what: what.clone(),
            source: source.into(),
        };
        let file = metadata.file_metadata();
        let schema = file_schema(metadata).map_err(arrow_error)?;
        if schema.column_with_name(&columns.id).is_none() {
            return Err(SnapshotError::MissingColumn {
                what,
                column: columns.id.clone(),
            });
        }
        let rows = file.num_rows().max(0) as u64;
        let groups = || metadata.row_groups().iter();
        let id_stats = StatisticsConverter::try_new(&columns.id, &schema, file.schema_descr())
            .map_err(arrow_error)?;
        let id_nulls = sum_known(
            &id_stats
                .row_group_null_counts(groups())
                .map_err(arrow_error)?,
        );
        let mins = id_stats.row_group_mins(groups()).map_err(arrow_error)?;
        let maxes = id_stats.row_group_maxes(groups()).map_err(arrow_error)?;
        let group_ids = group_ranges(ids, &mins, &maxes);
        let id_range = group_ids.as_ref().and_then(|groups| {
            let min = groups.iter().map(|(min, _)| min).min()?;
            let max = groups.iter().map(|(_, max)| max).max()?;
            Some((min.clone(), max.clone()))
        });
        let complete = match schema.column_with_name(&columns.completeness) {
            None => Some(0),
            Some(_) => {
                let stats = StatisticsConverter::try_new(
                    &columns.completeness,
                    &schema,
                    file.schema_descr(),
                )
                .map_err(arrow_error)?;
                let nulls = stats.row_group_null_counts(groups()).map_err(arrow_error)?;
                sum_known(&nulls).map(|n| rows.saturating_sub(n))
            }
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            bytes,
            rows,
            schema: Arc::new(schema),
            id_range,
            groups: group_ids,
            id_nulls,
            complete,
            metadata: metadata.clone(),
        })
    }
}

/// The Arrow schema a Parquet file is read with (INT96 timestamps as microseconds).
pub use common::parquet_io::file_schema;

/// Reads a file's footer.
pub async fn footer(
    storage: Arc<dyn Storage>,
    bucket: &str,
    key: &str,
) -> Result<Arc<ParquetMetaData>> {
    read_metadata(storage, bucket, key)
        .await
        .map_err(|source| SnapshotError::Read {
            what: format!("s3://{bucket}/{key}"),
            source: Box::new(source),
        })
}

fn sum_known(counts: &arrow::array::UInt64Array) -> Option<u64> {
    (counts.null_count() == 0).then(|| counts.values().iter().sum())
}

/// Each row group's smallest and largest id, as keys; `None` when any row group lacks them or
/// they do not cast to the id type.
fn group_ranges(
    ids: &KeyEncoder,
    mins: &ArrayRef,
    maxes: &ArrayRef,
) -> Option<Vec<(OwnedRow, OwnedRow)>> {
    if mins.is_empty() || mins.null_count() > 0 || maxes.null_count() > 0 {
        return None;
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mins = ids
        .encode(&cast_with_options(mins, ids.data_type(), &options).ok()?)
        .ok()?;
    let maxes = ids
        .encode(&cast_with_options(maxes, ids.data_type(), &options).ok()?)
        .ok()?;
    Some(
        mins.iter()
            .zip(maxes.iter())
            .map(|(min, max)| (min.owned(), max.owned()))
            .collect(),
    )
}
