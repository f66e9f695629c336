//! What can go wrong parsing a partition, classified once into the runner's [`Failure`].

use arrow::error::ArrowError;
use common::layout::Layer;
use common::parquet_io::ParquetIoError;
use common::publish::PublishError;
use common::quality::GateError;
use common::runner::Failure;
use common::storage::StorageError;

use crate::explode::RecordError;
use crate::schema::FieldError;
use crate::source::SourceError;

/// Every error names the partition (`<table> <layer> import_date=<YYYYMMDD>`), and where it
/// applies the file, page, row or column.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("parse-svc reads raw partitions, but the message names the {layer} layer of {table}")]
    WrongLayer { table: String, layer: Layer },
    #[error(
        "{partition} is not published in the catalog (a replayed message for a partition that was removed?)"
    )]
    NotPublished { partition: String },
    /// `file` is the `s3://bucket/key` of the raw file.
    #[error("{partition}: file {file} has no column {column}")]
    MissingColumn {
        partition: String,
        file: String,
        column: String,
    },
    /// The arrow error says which type the column has.
    #[error("{partition}: column {column} of {file} does not convert to {expected}: {source}")]
    ColumnType {
        partition: String,
        file: String,
        column: String,
        expected: String,
        #[source]
        source: Box<ArrowError>,
    },
    /// `row` counts the page's rows from 1, as they are stored in the raw partition.
    #[error("{partition}, page {page}, row {row}: {problem}")]
    BadRecord {
        partition: String,
        page: String,
        row: u64,
        problem: RecordError,
    },
    #[error("{partition}: {problem}")]
    BadField {
        partition: String,
        problem: FieldError,
    },
    #[error("{partition}: data-quality gate failed, nothing published: {failures}")]
    GateFailed { partition: String, failures: String },
    /// The rows of a partition are numbered in 32 bits to keep the per-id memory of the
    /// duplicate rule small (see [`crate::versions`]).
    #[error("{partition} has more than 4,294,967,295 records, more than one partition can hold")]
    TooManyRecords { partition: String },
    /// The two passes read the same published files, so only a file changed in place between
    /// them (or a bug) can make them differ.
    #[error("{partition}: the raw partition changed between the two passes: {detail}")]
    PassesDiffer { partition: String, detail: String },
    #[error("{partition}: recording the data-quality results: {source}")]
    Metrics {
        partition: String,
        #[source]
        source: StorageError,
    },
    #[error("{partition}: building a batch: {source}")]
    Arrow {
        partition: String,
        #[source]
        source: ArrowError,
    },
    #[error("reading {partition}: {source}")]
    Read {
        partition: String,
        #[source]
        source: ParquetIoError,
    },
    // Boxed: these two are the largest, and every `Result` of the stage carries the error.
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Publish(Box<PublishError>),
}

impl From<SourceError> for ParseError {
    fn from(err: SourceError) -> Self {
        ParseError::Source(Box::new(err))
    }
}

impl From<GateError> for ParseError {
    fn from(err: GateError) -> Self {
        match err {
            GateError::Record { partition, source } => ParseError::Metrics { partition, source },
            GateError::Failed {
                partition,
                failures,
            } => ParseError::GateFailed {
                partition,
                failures,
            },
        }
    }
}

impl From<PublishError> for ParseError {
    fn from(err: PublishError) -> Self {
        ParseError::Publish(Box::new(err))
    }
}

pub type Result<T, E = ParseError> = std::result::Result<T, E>;

impl ParseError {
    /// True when the same message may succeed later (storage or catalog unavailable,
    /// throttled); everything about the data itself is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            ParseError::Metrics { source, .. } => source.is_transient(),
            ParseError::Read { source, .. } => source.is_transient(),
            ParseError::Source(err) => err.is_transient(),
            ParseError::Publish(err) => err.is_transient(),
            ParseError::WrongLayer { .. }
            | ParseError::NotPublished { .. }
            | ParseError::MissingColumn { .. }
            | ParseError::ColumnType { .. }
            | ParseError::BadRecord { .. }
            | ParseError::BadField { .. }
            | ParseError::GateFailed { .. }
            | ParseError::TooManyRecords { .. }
            | ParseError::PassesDiffer { .. }
            | ParseError::Arrow { .. } => false,
        }
    }

    pub fn into_failure(self) -> Failure {
        if self.is_transient() {
            Failure::transient(self)
        } else {
            Failure::permanent(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_trouble_is_transient_and_bad_data_is_permanent() {
        let busy = ParseError::Metrics {
            partition: "appeals parsed import_date=20261121".into(),
            source: StorageError::Failed {
                operation: "put",
                bucket: "b".into(),
                key: "k".into(),
                message: "SlowDown".into(),
                transient: true,
            },
        };
        assert!(matches!(busy.into_failure(), Failure::Transient(_)));
        let bad = ParseError::BadRecord {
            partition: "appeals raw import_date=20261121".into(),
            page: "3".into(),
            row: 7,
            problem: RecordError::NotAnObject { found: "array" },
        };
        let text = bad.to_string();
        assert_eq!(
            text,
            "appeals raw import_date=20261121, page 3, row 7: the record is a JSON array, not an object"
        );
        assert!(matches!(bad.into_failure(), Failure::Permanent(_)));
    }
}
