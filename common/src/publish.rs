//! The one way a stage publishes a partition: write, then commit, then clean up.
//!
//! 1. [`PartitionWriter`] writes Parquet files into a folder of their own for this run,
//!    `<partition prefix>/run-<run id>/part-NNNNN.parquet`. Nothing points at it yet, so a crash
//!    here leaves only an orphan folder, never a visible half-partition.
//! 2. [`StagedPartition::publish`] ensures the catalog table (adding new columns) and switches
//!    the partition's location to the run folder in one catalog call: Athena sees the old run's
//!    files or the new run's files, never a mix (rule 2).
//! 3. It then deletes the files of the run it replaced and orphan run folders older than a grace
//!    period (left by crashed runs; young ones may belong to a run still writing).
//!
//! Publishing the same input twice gives the same rows in the partition, once (rule 1): a
//! partition holds exactly one run's files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use parquet::errors::ParquetError;

use crate::catalog::{Catalog, CatalogError, PartitionInfo, TableDef, columns_of};
use crate::layout::{Layout, PartitionRef, parse_date};
use crate::parquet_io::{FileEncoder, ParquetIoError, SourceRowGroup, WriteOptions};
use crate::storage::{Storage, StorageError, split_s3_uri};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("writing {partition}: {source}")]
    Write {
        partition: String,
        #[source]
        source: ParquetIoError,
    },
    #[error("publishing {partition}: {source}")]
    Catalog {
        partition: String,
        #[source]
        source: CatalogError,
    },
    #[error("storage for {partition}: {source}")]
    Storage {
        partition: String,
        #[source]
        source: StorageError,
    },
}

impl PublishError {
    pub fn is_transient(&self) -> bool {
        match self {
            PublishError::Write { source, .. } => source.is_transient(),
            PublishError::Catalog { source, .. } => source.is_transient(),
            PublishError::Storage { source, .. } => source.is_transient(),
        }
    }
}

/// The inherent [`PublishError::is_transient`], as the trait every stage's errors implement.
impl crate::failure::Transience for PublishError {
    fn is_transient(&self) -> bool {
        PublishError::is_transient(self)
    }
}

/// A new run id: a UUIDv7, so ids sort by time and an orphan's age can be read from its name.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// When a run id was made, if it is a UUIDv7.
fn run_started(run_id: &str) -> Option<DateTime<Utc>> {
    let (secs, nanos) = uuid::Uuid::parse_str(run_id)
        .ok()?
        .get_timestamp()?
        .to_unix();
    DateTime::from_timestamp(secs as i64, nanos)
}

/// One file written into a run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    /// True when the file was copied from another partition rather than encoded.
    pub copied: bool,
}

/// Writes one run of one partition. See the module docs for the protocol.
#[derive(Debug)]
pub struct PartitionWriter {
    storage: Arc<dyn Storage>,
    partition: PartitionRef,
    run_id: String,
    schema: SchemaRef,
    options: WriteOptions,
    current: Option<FileEncoder>,
    files: Vec<WrittenFile>,
}

impl PartitionWriter {
    pub fn new(
        storage: Arc<dyn Storage>,
        partition: PartitionRef,
        run_id: String,
        schema: SchemaRef,
        options: WriteOptions,
    ) -> Self {
        Self {
            storage,
            partition,
            run_id,
            schema,
            options,
            current: None,
            files: Vec::new(),
        }
    }

    pub fn partition(&self) -> &PartitionRef {
        &self.partition
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The run folder's key prefix, ending in `/`.
    pub fn run_prefix(&self) -> String {
        format!("{}run-{}/", self.partition.key_prefix(), self.run_id)
    }

    fn next_key(&self) -> String {
        format!("{}part-{:05}.parquet", self.run_prefix(), self.files.len())
    }

    fn write_error(&self, source: ParquetIoError) -> PublishError {
        PublishError::Write {
            partition: self.partition.describe(),
            source,
        }
    }

    /// Appends a batch (its schema must be the writer's). Uploads a file when it reaches the
    /// target size, so memory holds at most one file.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), PublishError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.encode(|encoder| encoder.write(batch).map(|()| true))
            .await
            .map(|_| ())
    }

    /// Writes `source` again as a row group: the leaf columns `changed` from `batches`, the
    /// others copied as they are encoded ([`FileEncoder::write_patched`]). `Ok(false)`, with
    /// nothing written, when `source`'s columns are not the writer's (encode its rows instead).
    /// Uploads a file when it reaches the target size.
    pub async fn write_patched(
        &mut self,
        source: &SourceRowGroup,
        changed: &[usize],
        batches: &[RecordBatch],
    ) -> Result<bool, PublishError> {
        self.encode(|encoder| {
            if !encoder.can_patch(source) {
                return Ok(false);
            }
            encoder
                .write_patched(source, changed, batches)
                .map(|()| true)
        })
        .await
    }

    /// Runs `work` on the open file's encoder (opening one if none is), then uploads the file
    /// if it reached the target size. `work`'s `Ok(false)` says it wrote nothing.
    async fn encode(
        &mut self,
        work: impl FnOnce(&mut FileEncoder) -> Result<bool, ParquetError>,
    ) -> Result<bool, PublishError> {
        let parquet_error = |this: &Self, source| {
            this.write_error(ParquetIoError::Parquet {
                bucket: this.partition.bucket.clone(),
                key: this.next_key(),
                source,
            })
        };
        if self.current.is_none() {
            let encoder = FileEncoder::new(self.schema.clone(), &self.options)
                .map_err(|e| parquet_error(self, e))?;
            self.current = Some(encoder);
        }
        let encoder = self.current.as_mut().expect("just created");
        let wrote = match work(encoder) {
            Ok(wrote) => wrote,
            Err(e) => return Err(parquet_error(self, e)),
        };
        if encoder.size() >= self.options.target_file_bytes {
            self.flush_file().await?;
        }
        Ok(wrote)
    }

    /// Whether rows written are waiting in a file not yet closed and uploaded.
    pub fn has_open_file(&self) -> bool {
        self.current.is_some()
    }

    /// Closes the file being written, if any, and uploads it.
    pub async fn flush_file(&mut self) -> Result<(), PublishError> {
        let Some(encoder) = self.current.take() else {
            return Ok(());
        };
        let key = self.next_key();
        let rows = encoder.rows() as u64;
        let body = encoder.finish().map_err(|source| {
            self.write_error(ParquetIoError::Parquet {
                bucket: self.partition.bucket.clone(),
                key: key.clone(),
                source,
            })
        })?;
        let bytes = body.len() as u64;
        self.storage
            .put(&self.partition.bucket, &key, body)
            .await
            .map_err(|e| self.write_error(e.into()))?;
        self.record(key, rows, bytes, false);
        Ok(())
    }

    /// Adds a whole existing file (same schema) by a server-side copy: no decoding, no upload.
    pub async fn copy_file(
        &mut self,
        from_bucket: &str,
        from_key: &str,
        rows: u64,
        bytes: u64,
    ) -> Result<(), PublishError> {
        self.flush_file().await?;
        let key = self.next_key();
        self.storage
            .copy(from_bucket, from_key, &self.partition.bucket, &key)
            .await
            .map_err(|e| self.write_error(e.into()))?;
        self.record(key, rows, bytes, true);
        Ok(())
    }

    /// Counts a file storage now has in this run.
    fn record(&mut self, key: String, rows: u64, bytes: u64, copied: bool) {
        self.files.push(WrittenFile {
            key,
            rows,
            bytes,
            copied,
        });
    }

    /// Best effort for a failed run: closes and deletes what it wrote, now rather than at the
    /// next publication's sweep. A failure here is only logged: that sweep removes the files.
    pub async fn abandon(self) {
        let partition = self.partition.describe();
        match self.finish().await {
            Ok(staged) => staged.discard_or_warn().await,
            Err(err) => {
                tracing::warn!(partition = %partition, error = %err, "could not close the failed run's files; a later publication removes them")
            }
        }
    }

    /// Uploads the last file. The partition is still unpublished.
    pub async fn finish(mut self) -> Result<StagedPartition, PublishError> {
        self.flush_file().await?;
        let location = format!("s3://{}/{}", self.partition.bucket, self.run_prefix());
        Ok(StagedPartition {
            storage: self.storage,
            partition: self.partition,
            run_id: self.run_id,
            schema: self.schema,
            location,
            files: self.files,
        })
    }
}

/// A run's files, written and not yet published.
#[derive(Debug)]
pub struct StagedPartition {
    storage: Arc<dyn Storage>,
    pub partition: PartitionRef,
    pub run_id: String,
    pub schema: SchemaRef,
    /// `s3://bucket/<run folder>/`.
    pub location: String,
    pub files: Vec<WrittenFile>,
}

/// What a publication did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub location: String,
    pub run_id: String,
    pub rows: u64,
    pub files: usize,
    pub copied_files: usize,
    pub bytes: u64,
    /// The location this publication replaced, when the partition existed.
    pub replaced: Option<String>,
}

impl StagedPartition {
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    fn storage_error(&self, source: StorageError) -> PublishError {
        PublishError::Storage {
            partition: self.partition.describe(),
            source,
        }
    }

    /// Registers the table (adding new columns) and switches the partition to this run's
    /// files; then removes the replaced run's files and old orphans. `parameters` are recorded
    /// with the partition beside `run_id`, `rows`, `files` and `bytes`.
    pub async fn publish(
        self,
        catalog: &dyn Catalog,
        layout: &Layout,
        parameters: BTreeMap<String, String>,
        orphan_grace: Duration,
    ) -> Result<Published, PublishError> {
        let p = &self.partition;
        let catalog_error = |source| PublishError::Catalog {
            partition: p.describe(),
            source,
        };
        let partition_keys: Vec<String> = p
            .layer
            .partition_keys()
            .iter()
            .map(|k| k.to_string())
            .collect();
        catalog
            .ensure_database(&p.database)
            .await
            .map_err(catalog_error)?;
        catalog
            .ensure_table(&TableDef {
                database: p.database.clone(),
                name: p.catalog_table.clone(),
                location: layout.table_location(&p.table, p.layer),
                columns: columns_of(&self.schema, &partition_keys),
                partition_keys,
            })
            .await
            .map_err(catalog_error)?;
        let mut parameters = parameters;
        parameters.insert("run_id".into(), self.run_id.clone());
        parameters.insert("rows".into(), self.rows().to_string());
        parameters.insert("files".into(), self.files.len().to_string());
        parameters.insert("bytes".into(), self.bytes().to_string());
        parameters.insert("published_at".into(), Utc::now().to_rfc3339());
        let replaced = catalog
            .publish_partition(
                &p.database,
                &p.catalog_table,
                &PartitionInfo {
                    values: p.values(),
                    location: self.location.clone(),
                    parameters,
                },
            )
            .await
            .map_err(catalog_error)?;
        self.remove_stale_runs(replaced.as_deref(), orphan_grace)
            .await?;
        Ok(Published {
            location: self.location.clone(),
            run_id: self.run_id.clone(),
            rows: self.rows(),
            files: self.files.len(),
            copied_files: self.files.iter().filter(|f| f.copied).count(),
            bytes: self.bytes(),
            replaced: replaced.filter(|r| *r != self.location),
        })
    }

    /// Deletes the files of the replaced run and of orphan runs older than `grace`.
    async fn remove_stale_runs(
        &self,
        replaced: Option<&str>,
        grace: Duration,
    ) -> Result<(), PublishError> {
        let prefix = self.partition.key_prefix();
        let objects = self
            .storage
            .list(&self.partition.bucket, &prefix)
            .await
            .map_err(|e| self.storage_error(e))?;
        let replaced_prefix = replaced
            .and_then(split_s3_uri)
            .filter(|(bucket, _)| *bucket == self.partition.bucket)
            .map(|(_, key)| key);
        let own_prefix = format!("{prefix}run-{}/", self.run_id);
        let now = Utc::now();
        let stale: Vec<String> = objects
            .into_iter()
            .map(|o| o.key)
            .filter(|key| !key.starts_with(&own_prefix))
            .filter(|key| {
                if replaced_prefix.is_some_and(|r| key.starts_with(r)) {
                    return true;
                }
                let run = key[prefix.len()..]
                    .strip_prefix("run-")
                    .and_then(|rest| rest.split_once('/'))
                    .map(|(id, _)| id);
                run.and_then(run_started).is_some_and(|started| {
                    now - started
                        > chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX)
                })
            })
            .collect();
        if !stale.is_empty() {
            tracing::debug!(partition = %self.partition, files = stale.len(), "removing stale runs");
            self.storage
                .delete(&self.partition.bucket, &stale)
                .await
                .map_err(|e| self.storage_error(e))?;
        }
        Ok(())
    }

    /// [`StagedPartition::discard`], logging a failure instead of returning it: a later
    /// publication's sweep removes what is left.
    pub async fn discard_or_warn(self) {
        let partition = self.partition.describe();
        if let Err(err) = self.discard().await {
            tracing::warn!(partition = %partition, error = %err, "could not remove the failed run's files; a later publication removes them");
        }
    }

    /// Deletes this run's files: the run failed and publishes nothing.
    pub async fn discard(self) -> Result<(), PublishError> {
        let keys: Vec<String> = self.files.iter().map(|f| f.key.clone()).collect();
        self.storage
            .delete(&self.partition.bucket, &keys)
            .await
            .map_err(|e| self.storage_error(e))
    }
}

/// The published partitions of one layer of one table, with their dates, oldest first.
pub async fn published_partitions(
    catalog: &dyn Catalog,
    partition_of: &PartitionRef,
) -> Result<Vec<(chrono::NaiveDate, PartitionInfo)>, CatalogError> {
    let mut partitions: Vec<_> = catalog
        .list_partitions(&partition_of.database, &partition_of.catalog_table)
        .await?
        .into_iter()
        .filter_map(|p| Some((parse_date(p.values.get(3)?)?, p)))
        .collect();
    partitions.sort_by_key(|(date, _)| *date);
    Ok(partitions)
}

#[cfg(test)]
mod tests;
