//! What can go wrong parsing a partition, classified once ([`Transience`]) into the runner's
//! `Failure`. The flow's own errors (wrong layer, not published, reading, the gate, publishing)
//! are [`TransformError`]s.

use arrow::error::ArrowError;
use common::failure::Transience;
use common::transform_stage::TransformError;

use crate::explode::RecordError;
use crate::schema::FieldError;

/// Every error names the partition (`<table> <layer> import_date=<YYYYMMDD>`), and where it
/// applies the file, page, row or column.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
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
    /// The rows of a partition are numbered in 32 bits to keep the per-id memory of the
    /// duplicate rule small (see [`crate::versions`]).
    #[error("{partition} has more than 4,294,967,295 records, more than one partition can hold")]
    TooManyRecords { partition: String },
    /// The two passes read the same published files, so only a file changed in place between
    /// them (or a bug) can make them differ.
    #[error("{partition}: the raw partition changed between the two passes: {detail}")]
    PassesDiffer { partition: String, detail: String },
    #[error(transparent)]
    Transform(#[from] TransformError),
}

pub type Result<T, E = ParseError> = std::result::Result<T, E>;

impl Transience for ParseError {
    /// Only the flow's storage and catalog trouble may go away; everything about the data
    /// itself is permanent.
    fn is_transient(&self) -> bool {
        match self {
            ParseError::Transform(err) => err.is_transient(),
            ParseError::MissingColumn { .. }
            | ParseError::ColumnType { .. }
            | ParseError::BadRecord { .. }
            | ParseError::BadField { .. }
            | ParseError::TooManyRecords { .. }
            | ParseError::PassesDiffer { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::runner::Failure;
    use common::source::SourceError;
    use common::storage::StorageError;

    #[test]
    fn storage_trouble_is_transient_and_bad_data_is_permanent() {
        let busy = ParseError::from(TransformError::from(SourceError::Storage {
            partition: "appeals raw import_date=20261121".into(),
            source: StorageError::failed("list", "b", "k", "SlowDown", true),
        }));
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
