//! Arrow record batches to Parquet files in storage, and back as a stream.
//!
//! Reading fetches the footer and then one row group's column chunks at a time through ranged
//! gets, so memory is bounded by a row group and the batch size, not by the file or table size.
//! Writing buffers one file (at most [`WriteOptions::target_file_bytes`] plus a row group) and
//! uploads it whole; a partition larger than that is split into several files.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{
    ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata, parquet_to_arrow_schema,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::SchemaDescriptor;

use crate::storage::{Storage, StorageError};
use crate::threads::{on_threads, threads};

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
    /// The file is not there (any more).
    pub fn is_not_found(&self) -> bool {
        let not_found = |e: &StorageError| matches!(e, StorageError::NotFound { .. });
        match self {
            ParquetIoError::Storage(err) => not_found(err),
            ParquetIoError::Parquet { source, .. } => matches!(
                source,
                ParquetError::External(e) if e.downcast_ref::<StorageError>().is_some_and(not_found)
            ),
        }
    }

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

/// The inherent [`ParquetIoError::is_transient`], as the trait every stage's errors implement.
impl crate::failure::Transience for ParquetIoError {
    fn is_transient(&self) -> bool {
        ParquetIoError::is_transient(self)
    }
}

/// Batches of a Parquet file, in file order.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, ParquetIoError>> + Send>>;

/// Values (rows × columns) per batch read at most: 752 text columns make 1,394 rows.
pub const MAX_BATCH_VALUES: usize = 1 << 20;

/// A file is decoded by several tasks only when each gets at least this many columns: for a
/// narrow file, the split costs more than it saves.
const MIN_COLUMNS_PER_DECODER: usize = 16;

/// How files are written.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// A file is closed once its encoded size passes this many bytes.
    pub target_file_bytes: usize,
    /// Rows per row group at most (also the unit a reader holds in memory).
    pub row_group_rows: usize,
    /// A row group is closed once its encoded size passes this many bytes, so that wide
    /// tables hold fewer rows per group and memory stays bounded.
    pub row_group_bytes: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: 128 * 1024 * 1024,
            row_group_rows: 64 * 1024,
            row_group_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A column chunk's dictionary is given up for plain encoding once it passes this many bytes.
/// The columns that gain from a dictionary (statuses, codes, officers, dates) have a few
/// thousand distinct values at most and stay far below it; a column of free text (descriptions,
/// addresses) passes it within a few thousand rows, and from then on its values are no longer
/// hashed, which was the largest single cost of encoding wide text tables (Parquet's default
/// limit is 1 MiB).
pub const DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

/// Writer properties shared by every file we write: zstd, dictionary encoding, statistics
/// (the snapshot's copy-or-rewrite decision reads the id statistics).
pub fn writer_properties(options: &WriteOptions) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .build()
}

/// Encodes batches into one in-memory Parquet file, the columns of each batch encoded on
/// several threads at once (wide tables spend most of their time encoding columns, and columns
/// are independent).
///
/// A row group is closed at [`WriteOptions::row_group_rows`] rows or once its encoded size passes
/// [`WriteOptions::row_group_bytes`], so memory holds at most one row group besides the file.
pub struct FileEncoder {
    writer: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    options: WriteOptions,
    /// The open row group's column writers (one per Parquet leaf column), if one is open.
    columns: Vec<ArrowColumnWriter>,
    /// Rows in the open row group.
    group_rows: usize,
    rows: usize,
    threads: usize,
}

impl std::fmt::Debug for FileEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEncoder")
            .field("rows", &self.rows)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl FileEncoder {
    pub fn new(schema: SchemaRef, options: &WriteOptions) -> Result<Self, ParquetError> {
        let mut properties = writer_properties(options);
        // Readers get the Arrow types back exactly (timestamps' units and zones), as with
        // `ArrowWriter`.
        add_encoded_arrow_schema_to_metadata(&schema, &mut properties);
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(properties.coerce_types())
            .convert(&schema)?;
        let writer = SerializedFileWriter::new(
            Vec::new(),
            parquet_schema.root_schema_ptr(),
            Arc::new(properties),
        )?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, schema.clone());
        let threads = threads().min(schema_width(&schema)).max(1);
        Ok(Self {
            writer,
            factory,
            schema,
            options: *options,
            columns: Vec::new(),
            group_rows: 0,
            rows: 0,
            threads,
        })
    }

    /// Appends a batch of the encoder's schema, closing row groups at their limits.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut at = 0;
        while at < batch.num_rows() {
            if self.columns.is_empty() {
                let index = self.writer.flushed_row_groups().len();
                self.columns = self.factory.create_column_writers(index)?;
            }
            let room = self.options.row_group_rows.max(1) - self.group_rows;
            let take = room.min(batch.num_rows() - at);
            self.encode(&batch.slice(at, take))?;
            at += take;
            self.group_rows += take;
            self.rows += take;
            if self.group_rows >= self.options.row_group_rows
                || self.group_size() >= self.options.row_group_bytes
            {
                self.close_row_group()?;
            }
        }
        Ok(())
    }

    /// Encodes `batch` into the open row group's column writers, the columns shared out over
    /// the threads.
    fn encode(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut leaves = Vec::with_capacity(self.columns.len());
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        let threads = self.threads;
        let mut shares: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
        // Round robin: neighbouring columns often cost alike, so each share gets a similar mix.
        for (i, job) in self.columns.iter_mut().zip(&leaves).enumerate() {
            shares[i % threads].push(job);
        }
        on_threads(shares, |share| {
            share
                .into_iter()
                .try_for_each(|(writer, leaf)| writer.write(leaf))
        })
        .into_iter()
        .collect()
    }

    /// Encoded bytes of the open row group, estimated.
    fn group_size(&self) -> usize {
        self.columns
            .iter()
            .map(ArrowColumnWriter::get_estimated_total_bytes)
            .sum()
    }

    fn close_row_group(&mut self) -> Result<(), ParquetError> {
        if self.columns.is_empty() {
            return Ok(());
        }
        let columns = std::mem::take(&mut self.columns);
        let chunks = finish_columns(
            columns.into_iter().enumerate().collect(),
            self.threads,
            |_, writer| writer.close(),
        )?;
        let mut group = self.writer.next_row_group()?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.group_rows = 0;
        Ok(())
    }

    /// Bytes encoded so far, flushed or buffered.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.group_size()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(mut self) -> Result<Bytes, ParquetError> {
        self.close_row_group()?;
        // Writes the footer.
        Ok(Bytes::from(self.writer.into_inner()?))
    }
}

/// Finishes column writers on `threads` threads: `finish` gets each numbered writer and
/// returns its encoded chunk. The chunks come back in order of their numbers. Writers are
/// shared out round robin, since neighbouring columns often cost alike.
fn finish_columns(
    writers: Vec<(usize, ArrowColumnWriter)>,
    threads: usize,
    finish: impl Fn(usize, ArrowColumnWriter) -> Result<ArrowColumnChunk, ParquetError> + Sync,
) -> Result<Vec<(usize, ArrowColumnChunk)>, ParquetError> {
    let threads = threads.min(writers.len()).max(1);
    let mut shares: Vec<Vec<(usize, ArrowColumnWriter)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (i, writer) in writers.into_iter().enumerate() {
        shares[i % threads].push(writer);
    }
    let mut chunks = on_threads(shares, |share| {
        share
            .into_iter()
            .map(|(number, writer)| Ok((number, finish(number, writer)?)))
            .collect::<Result<Vec<_>, ParquetError>>()
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    chunks.sort_unstable_by_key(|(number, _)| *number);
    Ok(chunks)
}

/// Parquet leaf columns of `schema` (one per flat field).
fn schema_width(schema: &Schema) -> usize {
    schema.flattened_fields().len()
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

/// The Arrow schema a file is read with: the one it was written with, except that INT96
/// timestamps (Spark's long-time default, in the lake the Glue jobs wrote) are microseconds, the
/// lake's one timestamp unit.
pub fn file_schema(metadata: &ParquetMetaData) -> Result<Schema, ParquetError> {
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    Ok(int96_as_micros(file.schema_descr(), &schema).unwrap_or(schema))
}

/// How a file whose footer is `metadata` is decoded: with the schema it was written with, INT96
/// timestamps as microseconds ([`file_schema`]).
fn reader_metadata(metadata: Arc<ParquetMetaData>) -> Result<ArrowReaderMetadata, ParquetError> {
    let written = ArrowReaderMetadata::try_new(metadata.clone(), ArrowReaderOptions::new())?;
    match int96_as_micros(written.parquet_schema(), written.schema()) {
        Some(schema) => ArrowReaderMetadata::try_new(
            metadata,
            ArrowReaderOptions::new().with_schema(Arc::new(schema)),
        ),
        None => Ok(written),
    }
}

/// `schema` with its INT96 columns as microsecond timestamps; `None` when the file has no INT96
/// column. Only top-level columns are looked at: the lake's tables are flat.
fn int96_as_micros(parquet: &SchemaDescriptor, schema: &Schema) -> Option<Schema> {
    if parquet.num_columns() != schema.fields().len() {
        return None;
    }
    let int96 = |i: usize| parquet.column(i).physical_type() == parquet::basic::Type::INT96;
    if !(0..parquet.num_columns()).any(int96) {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match f.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, zone) if int96(i) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(TimeUnit::Microsecond, zone.clone())),
            _ => f.as_ref().clone(),
        })
        .collect();
    Some(Schema::new_with_metadata(fields, schema.metadata().clone()))
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

/// Streams a Parquet file in storage as batches of at most `batch_rows` rows (fewer for a
/// wide file: at most [`MAX_BATCH_VALUES`] values), with its schema.
///
/// On a machine with several cores, a file is decoded by a task of its own, one batch ahead of
/// the consumer, and a wide file's columns by several such tasks at once (each a share of the
/// columns); the batches come out whole and in file order either way.
pub async fn read_file(
    storage: Arc<dyn Storage>,
    bucket: &str,
    key: &str,
    batch_rows: usize,
) -> Result<(SchemaRef, BatchStream), ParquetIoError> {
    read_file_columns(storage, bucket, key, batch_rows, None).await
}

/// [`read_file`] of only the named columns (those the file has), when `columns` is given: the
/// others are neither fetched nor decoded.
pub async fn read_file_columns(
    storage: Arc<dyn Storage>,
    bucket: &str,
    key: &str,
    batch_rows: usize,
    columns: Option<&[&str]>,
) -> Result<(SchemaRef, BatchStream), ParquetIoError> {
    let mut reader = StorageFileReader::open(storage, bucket, key).await?;
    let on_error = reader.clone();
    let metadata = reader
        .get_metadata(None)
        .await
        .and_then(reader_metadata)
        .map_err(|e| on_error.parquet_error(e))?;
    let schema = metadata.schema().clone();
    // Wide files come in fewer rows per batch: a batch's memory follows its values, not rows.
    let batch_rows = batch_rows
        .min(MAX_BATCH_VALUES / schema.fields().len().max(1))
        .max(1);
    let flat = metadata.parquet_schema().num_columns() == schema.fields().len();
    let parts = threads()
        .min(schema.fields().len() / MIN_COLUMNS_PER_DECODER)
        .max(1);
    let stream_of = |projection: Option<ProjectionMask>| {
        let mut builder =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader.clone(), metadata.clone())
                .with_batch_size(batch_rows);
        if let Some(projection) = projection {
            builder = builder.with_projection(projection);
        }
        let on_error = on_error.clone();
        let stream = builder.build().map_err(|e| on_error.parquet_error(e))?;
        Ok::<_, ParquetIoError>(stream.map_err(move |e| on_error.parquet_error(e)))
    };
    if let Some(names) = columns {
        let mask = ProjectionMask::columns(metadata.parquet_schema(), names.iter().copied());
        let stream = stream_of(Some(mask))?;
        let projected = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| names.contains(&f.name().as_str()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        return Ok((projected, Box::pin(stream)));
    }
    if !flat || threads() < 2 {
        return Ok((schema, Box::pin(stream_of(None)?)));
    }
    // Field i is decoded by part i % parts, as that part's column i / parts. Even a single
    // part is decoded by a task of its own, so decoding overlaps the consumer's work.
    let mut receivers = Vec::with_capacity(parts);
    for part in 0..parts {
        let leaves = (part..schema.fields().len()).step_by(parts);
        let mask = ProjectionMask::leaves(metadata.parquet_schema(), leaves);
        let mut stream = stream_of(Some(mask))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if sender.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        receivers.push(receiver);
    }
    let whole = schema.clone();
    let stream = futures::stream::unfold(receivers, move |mut receivers| {
        let whole = whole.clone();
        let on_error = on_error.clone();
        async move {
            let mut parts = Vec::with_capacity(receivers.len());
            for receiver in &mut receivers {
                match receiver.recv().await {
                    Some(Ok(batch)) => parts.push(batch),
                    Some(Err(err)) => return Some((Err(err), receivers)),
                    None => return None,
                }
            }
            let count = parts.len();
            let columns = (0..whole.fields().len())
                .map(|i| parts[i % count].column(i / count).clone())
                .collect();
            let batch = RecordBatch::try_new(whole, columns)
                .map_err(|e| on_error.parquet_error(ParquetError::ArrowError(e.to_string())));
            Some((batch, receivers))
        }
    });
    Ok((schema, Box::pin(stream)))
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

mod patch;
pub use patch::SourceRowGroup;

#[cfg(test)]
mod tests;
