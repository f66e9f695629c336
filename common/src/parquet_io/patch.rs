//! A row group written again with some rows replaced, encoding only the columns whose values
//! changed and copying the others as the bytes they already are.
//!
//! A nightly snapshot replaces a few rows of most row groups, and in real planning data a
//! changed record changes a few of its columns (its status, dates, officer). Encoding a column
//! (dictionary, statistics, zstd) costs far more than decoding it, so a column chunk none of
//! whose replaced values differ is copied byte for byte with its statistics
//! (`SerializedRowGroupWriter::append_column`), and only the changed columns are encoded again.
//!
//! [`SourceRowGroup`] is one row group of a file, fetched whole with one ranged get, decoded
//! from memory and copied from; [`FileEncoder::write_patched`] writes it again. The copied
//! chunks carry no page index (the columns encoded again do); readers do not need one.

use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::{Buf, Bytes};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use super::{FileEncoder, ParquetIoError, finish_columns, reader_metadata, schema_width};
use crate::storage::Storage;

/// The bytes of one row group, addressed by their offsets in the whole file.
#[derive(Debug, Clone)]
struct FetchedRange {
    /// Where `bytes` start in the file.
    start: u64,
    bytes: Bytes,
    file_len: u64,
}

impl FetchedRange {
    fn slice(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let from = start
            .checked_sub(self.start)
            .map(|at| at as usize)
            .filter(|at| at + length <= self.bytes.len())
            .ok_or_else(|| {
                ParquetError::General(format!(
                    "bytes {start}..{} are outside the fetched row group {}..{}",
                    start + length as u64,
                    self.start,
                    self.start + self.bytes.len() as u64
                ))
            })?;
        Ok(self.bytes.slice(from..from + length))
    }
}

impl Length for FetchedRange {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for FetchedRange {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        let end = self.start + self.bytes.len() as u64;
        let length = end.saturating_sub(start) as usize;
        Ok(self.slice(start, length)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        self.slice(start, length)
    }
}

/// One row group of a Parquet file in storage, held encoded (its compressed size).
#[derive(Debug, Clone)]
pub struct SourceRowGroup {
    range: FetchedRange,
    metadata: ArrowReaderMetadata,
    index: usize,
}

impl SourceRowGroup {
    /// Fetches row group `index` of the file whose footer is `metadata` (`file_len` bytes long).
    pub async fn fetch(
        storage: Arc<dyn Storage>,
        bucket: &str,
        key: &str,
        file_len: u64,
        metadata: Arc<ParquetMetaData>,
        index: usize,
    ) -> Result<Self, ParquetIoError> {
        let parquet_error = |source| ParquetIoError::Parquet {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let group = metadata
            .row_groups()
            .get(index)
            .ok_or_else(|| parquet_error(ParquetError::General(format!("no row group {index}"))))?;
        let ranges = group.columns().iter().map(|c| c.byte_range());
        let start = ranges.clone().map(|(start, _)| start).min().unwrap_or(0);
        let end = ranges.map(|(start, len)| start + len).max().unwrap_or(0);
        let bytes = storage.get_range(bucket, key, start..end).await?;
        let metadata = reader_metadata(metadata).map_err(parquet_error)?;
        Ok(Self {
            range: FetchedRange {
                start,
                bytes,
                file_len,
            },
            metadata,
            index,
        })
    }

    pub fn rows(&self) -> usize {
        self.metadata.metadata().row_group(self.index).num_rows() as usize
    }

    /// Decodes the row group, every column or only the leaf columns `columns`, in batches of
    /// at most `batch_rows` rows, one batch at a time.
    pub fn read(
        &self,
        columns: Option<&[usize]>,
        batch_rows: usize,
    ) -> Result<impl Iterator<Item = Result<RecordBatch, ParquetError>> + use<>, ParquetError> {
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.range.clone(),
            self.metadata.clone(),
        )
        .with_row_groups(vec![self.index])
        .with_batch_size(batch_rows.max(1));
        if let Some(columns) = columns {
            let mask =
                ProjectionMask::leaves(self.metadata.parquet_schema(), columns.iter().copied());
            builder = builder.with_projection(mask);
        }
        Ok(builder
            .build()?
            .map(|batch| batch.map_err(|e| ParquetError::ArrowError(e.to_string()))))
    }

    /// Decodes only the rows `rows` (ascending, numbered from 0 in the row group), every
    /// column: the other rows' values are skipped, not decoded.
    pub fn read_rows(&self, rows: &[usize]) -> Result<Vec<RecordBatch>, ParquetError> {
        let ranges = rows.iter().map(|&row| row..row + 1);
        let selection = RowSelection::from_consecutive_ranges(ranges, self.rows());
        ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.range.clone(),
            self.metadata.clone(),
        )
        .with_row_groups(vec![self.index])
        .with_row_selection(selection)
        .with_batch_size(rows.len().max(1))
        .build()?
        .map(|batch| batch.map_err(|e| ParquetError::ArrowError(e.to_string())))
        .collect()
    }

    /// The column chunk `column` as the writer takes an encoded chunk.
    fn encoded(&self, column: usize) -> ColumnCloseResult {
        let group = self.metadata.metadata().row_group(self.index);
        let chunk = group.column(column);
        ColumnCloseResult {
            bytes_written: chunk.compressed_size() as u64,
            rows_written: group.num_rows() as u64,
            metadata: chunk.clone(),
            bloom_filter: None,
            column_index: None,
            offset_index: None,
        }
    }
}

impl FileEncoder {
    /// Whether [`Self::write_patched`] can write `source` into this file: both flat, with the
    /// same Parquet columns (names, types, repetition).
    pub fn can_patch(&self, source: &SourceRowGroup) -> bool {
        let ours = self.writer.schema_descr();
        let theirs = source.metadata.parquet_schema();
        schema_width(&self.schema) == self.schema.fields().len()
            && ours.num_columns() == theirs.num_columns()
            && (0..ours.num_columns()).all(|i| ours.column(i) == theirs.column(i))
    }

    /// Writes `source` again as a row group of this file: the leaf columns `changed` (ascending)
    /// from `batches`, whose columns are those, in that order, with as many rows in all as
    /// `source`; every other column copied from `source` as it is encoded. Callers check
    /// [`Self::can_patch`] first.
    pub fn write_patched(
        &mut self,
        source: &SourceRowGroup,
        changed: &[usize],
        batches: &[RecordBatch],
    ) -> Result<(), ParquetError> {
        self.close_row_group()?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if !changed.is_empty() && rows != source.rows() {
            return Err(ParquetError::General(format!(
                "a patched row group has {rows} rows of its changed columns, not {}",
                source.rows()
            )));
        }
        let index = self.writer.flushed_row_groups().len();
        let mut writers: Vec<Option<_>> = (self.factory.create_column_writers(index)?)
            .into_iter()
            .map(Some)
            .collect();
        // Only the changed columns' writers are used; the others are dropped unused.
        let encoders = changed
            .iter()
            .map(|&column| (column, writers[column].take().expect("distinct columns")))
            .collect();
        let fields = self.schema.fields();
        let chunks = finish_columns(encoders, self.threads, |column, mut writer| {
            let at = changed.binary_search(&column).expect("a changed column");
            for batch in batches {
                for leaf in compute_leaves(&fields[column], batch.column(at))? {
                    writer.write(&leaf)?;
                }
            }
            writer.close()
        })?;
        let mut chunks = chunks.into_iter().peekable();
        let mut group = self.writer.next_row_group()?;
        for column in 0..source.metadata.parquet_schema().num_columns() {
            match chunks.next_if(|(c, _)| *c == column) {
                Some((_, chunk)) => chunk.append_to_row_group(&mut group)?,
                None => group.append_column(&source.range, source.encoded(column))?,
            }
        }
        group.close()?;
        self.rows += source.rows();
        Ok(())
    }
}
