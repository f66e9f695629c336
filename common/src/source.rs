//! Reading the layer before: finding the files of a published partition, and reading them
//! batch by batch.
//!
//! The catalog says which run's folder a partition is; the folder's Parquet files are the
//! partition. Listing the partition's own prefix instead would also find the files of a run still
//! writing, or of a crashed one.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;

use crate::catalog::CatalogError;
use crate::failure::Transience;
use crate::layout::PartitionRef;
use crate::parquet_io::{BatchStream, ParquetIoError, read_file};
use crate::platform::Platform;
use crate::publish::published_partitions;
use crate::storage::{ObjectMeta, Storage, StorageError, split_s3_uri};

/// The files of one published partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFiles {
    /// `s3://bucket/prefix/` the catalog points at.
    pub location: String,
    pub bucket: String,
    /// The Parquet files below the location, sorted by key (an empty partition has none).
    pub files: Vec<ObjectMeta>,
    /// The run that published it, as the catalog recorded it.
    pub run_id: Option<String>,
}

impl PublishedFiles {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// `s3://bucket/key` of the `index`th file.
    pub fn uri(&self, index: usize) -> String {
        format!("s3://{}/{}", self.bucket, self.files[index].key)
    }
}

/// What can go wrong finding or reading a published partition. Every error names the partition.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("looking up {partition}: {source}")]
    Catalog {
        partition: String,
        #[source]
        source: CatalogError,
    },
    #[error("listing {partition}: {source}")]
    Storage {
        partition: String,
        #[source]
        source: StorageError,
    },
    #[error(
        "{partition} has the location {location:?} in the catalog, which is not an s3:// address"
    )]
    BadLocation { partition: String, location: String },
    #[error("reading {partition}: {source}")]
    Read {
        partition: String,
        #[source]
        source: ParquetIoError,
    },
    #[error(
        "{partition}: file s3://{bucket}/{key} does not have the columns of the partition's first file"
    )]
    MixedSchemas {
        partition: String,
        bucket: String,
        key: String,
    },
}

impl Transience for SourceError {
    fn is_transient(&self) -> bool {
        match self {
            SourceError::Catalog { source, .. } => source.is_transient(),
            SourceError::Storage { source, .. } => source.is_transient(),
            // A file of a published partition that is gone was, but for a hand-made deletion,
            // removed by a later run that replaced the partition while this one read it: the
            // retry reads the catalog again and finds the new run (a file that stays gone ends
            // in the dead-letter queue with this reason after the retries).
            SourceError::Read { source, .. } => source.is_transient() || source.is_not_found(),
            SourceError::BadLocation { .. } | SourceError::MixedSchemas { .. } => false,
        }
    }
}

/// The files of `partition` as published, or `None` when the catalog has no such partition.
pub async fn published_files(
    platform: &Platform,
    partition: &PartitionRef,
) -> Result<Option<PublishedFiles>, SourceError> {
    let partitions = published_partitions(platform.catalog.as_ref(), partition)
        .await
        .map_err(|source| SourceError::Catalog {
            partition: partition.describe(),
            source,
        })?;
    let Some((_, info)) = partitions
        .into_iter()
        .find(|(date, _)| *date == partition.date)
    else {
        return Ok(None);
    };
    let (bucket, prefix) =
        split_s3_uri(&info.location).ok_or_else(|| SourceError::BadLocation {
            partition: partition.describe(),
            location: info.location.clone(),
        })?;
    let files = platform
        .storage
        .list(bucket, prefix)
        .await
        .map_err(|source| SourceError::Storage {
            partition: partition.describe(),
            source,
        })?
        .into_iter()
        .filter(|object| object.key.ends_with(".parquet"))
        .collect();
    Ok(Some(PublishedFiles {
        bucket: bucket.to_owned(),
        location: info.location.clone(),
        files,
        run_id: info.parameters.get("run_id").cloned(),
    }))
}

/// Reads a published partition's files batch by batch, file after file in key order: the same
/// batches in the same order on every pass. Holds one batch (and the file's decoding ahead of
/// it) at a time.
pub struct PartitionReader<'a> {
    storage: Arc<dyn Storage>,
    partition: &'a PartitionRef,
    source: &'a PublishedFiles,
    batch_rows: usize,
    same_columns: bool,
    next_file: usize,
    current: Option<(usize, BatchStream)>,
    first_schema: Option<SchemaRef>,
}

impl std::fmt::Debug for PartitionReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionReader")
            .field("partition", &self.partition.describe())
            .field("location", &self.source.location)
            .field("next_file", &self.next_file)
            .finish_non_exhaustive()
    }
}

impl<'a> PartitionReader<'a> {
    /// A reader of `source`, the published files of `partition`, in batches of at most
    /// `batch_rows` rows.
    pub fn new(
        storage: Arc<dyn Storage>,
        partition: &'a PartitionRef,
        source: &'a PublishedFiles,
        batch_rows: usize,
    ) -> Self {
        Self {
            storage,
            partition,
            source,
            batch_rows,
            same_columns: false,
            next_file: 0,
            current: None,
            first_schema: None,
        }
    }

    /// From now on, refuses a file whose columns are not those of the first file
    /// ([`SourceError::MixedSchemas`]): for a reader that relies on one schema for the
    /// partition.
    pub fn require_same_columns(&mut self) {
        self.same_columns = true;
    }

    pub fn partition(&self) -> &'a PartitionRef {
        self.partition
    }

    pub fn source(&self) -> &'a PublishedFiles {
        self.source
    }

    /// Starts a new pass from the first file.
    pub fn rewind(&mut self) {
        self.next_file = 0;
        self.current = None;
    }

    /// The schema of the partition's first file (opened for the pass, if no file is open yet),
    /// or `None` when the partition has no files.
    pub async fn first_schema(&mut self) -> Result<Option<SchemaRef>, SourceError> {
        if self.first_schema.is_none() && self.current.is_none() && !self.source.files.is_empty() {
            self.open_next().await?;
        }
        Ok(self.first_schema.clone())
    }

    /// The next batch of the pass with the index of its file in [`PublishedFiles::files`], or
    /// `None` at the end of the pass.
    pub async fn next_batch(&mut self) -> Result<Option<(usize, RecordBatch)>, SourceError> {
        loop {
            if let Some((file, stream)) = &mut self.current {
                let file = *file;
                let batch = stream.try_next().await;
                match batch.map_err(|source| self.read_error(source))? {
                    Some(batch) => return Ok(Some((file, batch))),
                    None => self.current = None,
                }
            }
            if self.next_file >= self.source.files.len() {
                return Ok(None);
            }
            self.open_next().await?;
        }
    }

    async fn open_next(&mut self) -> Result<(), SourceError> {
        let file = &self.source.files[self.next_file];
        let (schema, stream) = read_file(
            self.storage.clone(),
            &self.source.bucket,
            &file.key,
            self.batch_rows,
        )
        .await
        .map_err(|source| self.read_error(source))?;
        match &self.first_schema {
            None => self.first_schema = Some(schema),
            Some(first) if self.same_columns && schema.fields() != first.fields() => {
                return Err(SourceError::MixedSchemas {
                    partition: self.partition.describe(),
                    bucket: self.source.bucket.clone(),
                    key: file.key.clone(),
                });
            }
            Some(_) => {}
        }
        self.current = Some((self.next_file, stream));
        self.next_file += 1;
        Ok(())
    }

    fn read_error(&self, source: ParquetIoError) -> SourceError {
        SourceError::Read {
            partition: self.partition.describe(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Layer, TableName};
    use crate::publish::{PartitionWriter, new_run_id};
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use chrono::NaiveDate;
    use std::collections::BTreeMap;

    fn partition(platform: &Platform, day: u32) -> PartitionRef {
        let date = NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        let table = TableName::new("appeals").unwrap();
        platform.layout.partition(&table, Layer::Parsed, date)
    }

    fn numbers(values: &[i32]) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("n", DataType::Int32, false)]);
        let column = Arc::new(Int32Array::from(values.to_vec()));
        RecordBatch::try_new(Arc::new(schema), vec![column]).unwrap()
    }

    fn texts(values: &[&str]) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("t", DataType::Utf8, false)]);
        let column = Arc::new(StringArray::from(values.to_vec()));
        RecordBatch::try_new(Arc::new(schema), vec![column]).unwrap()
    }

    /// Publishes `files` (one batch each, one file each) as `partition`.
    async fn publish(platform: &Platform, partition: &PartitionRef, files: &[RecordBatch]) {
        let schema = files
            .first()
            .map_or_else(|| numbers(&[]).schema(), |b| b.schema());
        let mut writer = PartitionWriter::new(
            platform.storage.clone(),
            partition.clone(),
            new_run_id(),
            schema,
            platform.write_options,
        );
        for batch in files {
            writer.write(batch).await.unwrap();
            writer.flush_file().await.unwrap();
        }
        let staged = writer.finish().await.unwrap();
        let parameters = BTreeMap::new();
        let grace = platform.orphan_grace;
        let catalog = platform.catalog.as_ref();
        staged
            .publish(catalog, &platform.layout, parameters, grace)
            .await
            .unwrap();
    }

    async fn read_pass(reader: &mut PartitionReader<'_>) -> Vec<(usize, Vec<i32>)> {
        let mut found = Vec::new();
        while let Some((file, batch)) = reader.next_batch().await.unwrap() {
            let values = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap();
            found.push((file, values.values().to_vec()));
        }
        found
    }

    #[tokio::test]
    async fn a_published_partition_is_read_file_by_file_the_same_on_every_pass() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let day = partition(&platform, 21);
        assert!(published_files(&platform, &day).await.unwrap().is_none());

        publish(&platform, &day, &[numbers(&[1, 2, 3]), numbers(&[4])]).await;
        let source = published_files(&platform, &day).await.unwrap().unwrap();
        assert_eq!(source.files.len(), 2);
        assert!(source.bytes() > 0);
        assert!(source.run_id.is_some());
        assert!(
            source
                .uri(1)
                .starts_with(&format!("s3://{}/", source.bucket))
        );

        let mut reader = PartitionReader::new(platform.storage.clone(), &day, &source, 2);
        let schema = reader.first_schema().await.unwrap().unwrap();
        assert_eq!(schema.field(0).name(), "n");
        let first = read_pass(&mut reader).await;
        assert_eq!(first, [(0, vec![1, 2]), (0, vec![3]), (1, vec![4])]);
        reader.rewind();
        assert_eq!(read_pass(&mut reader).await, first);
    }

    #[tokio::test]
    async fn an_empty_partition_has_no_files_and_no_schema() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let day = partition(&platform, 21);
        publish(&platform, &day, &[]).await;
        let source = published_files(&platform, &day).await.unwrap().unwrap();
        assert!(source.files.is_empty());
        let mut reader = PartitionReader::new(platform.storage.clone(), &day, &source, 2);
        assert!(reader.first_schema().await.unwrap().is_none());
        assert!(reader.next_batch().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_file_with_other_columns_is_refused_only_when_one_schema_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let (first, second) = (partition(&platform, 21), partition(&platform, 22));
        publish(&platform, &first, &[numbers(&[1])]).await;
        publish(&platform, &second, &[texts(&["a"])]).await;
        let mut mixed = published_files(&platform, &first).await.unwrap().unwrap();
        let other = published_files(&platform, &second).await.unwrap().unwrap();
        mixed.files.extend(other.files);

        let mut lenient = PartitionReader::new(platform.storage.clone(), &first, &mixed, 10);
        let mut batches = 0;
        while lenient.next_batch().await.unwrap().is_some() {
            batches += 1;
        }
        assert_eq!(batches, 2);

        let mut strict = PartitionReader::new(platform.storage.clone(), &first, &mixed, 10);
        strict.require_same_columns();
        assert!(strict.next_batch().await.unwrap().is_some());
        let err = strict.next_batch().await.unwrap_err();
        assert!(matches!(err, SourceError::MixedSchemas { .. }), "{err:?}");
        assert!(!err.is_transient());
        assert!(
            err.to_string().starts_with(
                "appeals parsed import_date=20261121: file s3://raw-zone/planning/tascomi/parsed/appeals/import_year=2026/import_month=11/import_day=22/"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_file_is_a_read_error_naming_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let day = partition(&platform, 21);
        publish(&platform, &day, &[numbers(&[1])]).await;
        let source = published_files(&platform, &day).await.unwrap().unwrap();
        platform
            .storage
            .delete(&source.bucket, &[source.files[0].key.clone()])
            .await
            .unwrap();
        let mut reader = PartitionReader::new(platform.storage.clone(), &day, &source, 10);
        let err = reader.next_batch().await.unwrap_err();
        assert!(matches!(err, SourceError::Read { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("reading appeals parsed import_date=20261121: "),
            "{err}"
        );
    }

    /// A published partition replaced while a stage read it: its old files are gone, and the
    /// retry reads the new run; anything else about a file stays as classified before.
    #[test]
    fn a_file_gone_from_a_published_partition_is_transient() {
        let gone = ParquetIoError::Storage(StorageError::NotFound {
            bucket: "b".into(),
            key: "t/run-1/part-00000.parquet".into(),
        });
        assert!(gone.is_not_found());
        let read = SourceError::Read {
            partition: "appeals parsed import_date=20261121".into(),
            source: gone,
        };
        assert!(read.is_transient(), "{read}");
        let broken = SourceError::Read {
            partition: "appeals parsed import_date=20261121".into(),
            source: ParquetIoError::Parquet {
                bucket: "b".into(),
                key: "k".into(),
                source: parquet::errors::ParquetError::General("bad footer".into()),
            },
        };
        assert!(!broken.is_transient());
        let mixed = SourceError::MixedSchemas {
            partition: "p".into(),
            bucket: "b".into(),
            key: "k".into(),
        };
        assert!(!mixed.is_transient());
    }
}
