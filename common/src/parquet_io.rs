//! Arrow record batches to Parquet files in storage, and back as a stream.
//!
//! Reading fetches the footer and then one row group's column chunks at a time through ranged
//! gets, so memory is bounded by a row group and the batch size, not by the file or table size.
//! Writing buffers one file (at most [`WriteOptions::target_file_bytes`] plus a row group) and
//! uploads it whole; a partition larger than that is split into several files.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, TryStreamExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;

use crate::storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum ParquetIoError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("parquet file s3://{bucket}/{key}: {source}")]
    Parquet {
        bucket: String,
        key: String,
        #[source]
        source: ParquetError,
    },
}

impl ParquetIoError {
    pub fn is_transient(&self) -> bool {
        match self {
            ParquetIoError::Storage(err) => err.is_transient(),
            ParquetIoError::Parquet { source, .. } => matches!(
                source,
                ParquetError::External(e) if e.downcast_ref::<StorageError>().is_some_and(StorageError::is_transient)
            ),
        }
    }
}

/// How files are written.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// A file is closed once its encoded size passes this many bytes.
    pub target_file_bytes: usize,
    /// Rows per row group (also the unit a reader holds in memory).
    pub row_group_rows: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: 128 * 1024 * 1024,
            row_group_rows: 64 * 1024,
        }
    }
}

/// Writer properties shared by every file we write: zstd, dictionary encoding, statistics
/// (the snapshot's copy-or-rewrite decision reads the id statistics).
pub fn writer_properties(options: &WriteOptions) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .build()
}

/// Encodes batches into one in-memory Parquet file.
#[derive(Debug)]
pub struct FileEncoder {
    writer: ArrowWriter<Vec<u8>>,
    rows: usize,
}

impl FileEncoder {
    pub fn new(schema: SchemaRef, options: &WriteOptions) -> Result<Self, ParquetError> {
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(writer_properties(options)))?;
        Ok(Self { writer, rows: 0 })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.rows += batch.num_rows();
        self.writer.write(batch)
    }

    /// Bytes encoded so far, flushed or buffered.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(self) -> Result<Bytes, ParquetError> {
        Ok(Bytes::from(self.writer.into_inner()?))
    }
}

/// A Parquet file in storage, read through ranged gets.
#[derive(Debug, Clone)]
pub struct StorageFileReader {
    storage: Arc<dyn Storage>,
    bucket: String,
    key: String,
    size: u64,
}

impl StorageFileReader {
    pub async fn open(
        storage: Arc<dyn Storage>,
        bucket: &str,
        key: &str,
    ) -> Result<Self, StorageError> {
        let size = storage.size(bucket, key).await?;
        Ok(Self {
            storage,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
        })
    }

    fn parquet_error(&self, source: ParquetError) -> ParquetIoError {
        ParquetIoError::Parquet {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            source,
        }
    }
}

impl AsyncFileReader for StorageFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.storage
                .get_range(&self.bucket, &self.key, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// The metadata (schema, row groups, statistics) of a Parquet file in storage.
pub async fn read_metadata(
    storage: Arc<dyn Storage>,
    bucket: &str,
    key: &str,
) -> Result<Arc<ParquetMetaData>, ParquetIoError> {
    let mut reader = StorageFileReader::open(storage, bucket, key).await?;
    reader
        .get_metadata(None)
        .await
        .map_err(|e| reader.parquet_error(e))
}

/// Streams one file's record batches of at most `batch_rows` rows.
pub async fn read_file(
    storage: Arc<dyn Storage>,
    bucket: &str,
    key: &str,
    batch_rows: usize,
) -> Result<
    (
        SchemaRef,
        impl Stream<Item = Result<RecordBatch, ParquetIoError>> + Send + use<>,
    ),
    ParquetIoError,
> {
    let reader = StorageFileReader::open(storage, bucket, key).await?;
    let on_error = reader.clone();
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| on_error.parquet_error(e))?;
    let schema = builder.schema().clone();
    let stream = builder
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| on_error.parquet_error(e))?
        .map_err(move |e| on_error.parquet_error(e));
    Ok((schema, stream))
}

/// Reads a whole (small) file into memory: for tests and tools, not for stages.
pub async fn read_all(
    storage: Arc<dyn Storage>,
    bucket: &str,
    key: &str,
) -> Result<Vec<RecordBatch>, ParquetIoError> {
    let (_, stream) = read_file(storage, bucket, key, 8192).await?;
    stream.try_collect().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStorage;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(start: i32, rows: i32) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let ids: Vec<i32> = (start..start + rows).collect();
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 3 != 0).then(|| format!("n{i}")))
            .collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn round_trips_in_bounded_batches() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let options = WriteOptions {
            row_group_rows: 1000,
            ..Default::default()
        };
        let mut encoder = FileEncoder::new(batch(0, 1).schema(), &options).unwrap();
        for i in 0..5 {
            encoder.write(&batch(i * 1000, 1000)).unwrap();
        }
        assert_eq!(encoder.rows(), 5000);
        storage
            .put("b", "t/f.parquet", encoder.finish().unwrap())
            .await
            .unwrap();

        let (schema, stream) = read_file(storage.clone(), "b", "t/f.parquet", 300)
            .await
            .unwrap();
        assert_eq!(schema.field(0).name(), "id");
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        assert!(batches.iter().all(|b| b.num_rows() <= 300));
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5000);
        let metadata = read_metadata(storage.clone(), "b", "t/f.parquet")
            .await
            .unwrap();
        assert_eq!(metadata.num_row_groups(), 5);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        storage
            .put(
                "b",
                "t/bad.parquet",
                Bytes::from_static(b"not parquet at all"),
            )
            .await
            .unwrap();
        let err = read_all(storage, "b", "t/bad.parquet")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://b/t/bad.parquet"), "{err}");
    }
}
