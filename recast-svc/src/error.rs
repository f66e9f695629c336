//! What can go wrong recasting a partition, classified once into the runner's [`Failure`].

use arrow::error::ArrowError;
use common::layout::Layer;
use common::parquet_io::ParquetIoError;
use common::publish::PublishError;
use common::quality::GateError;
use common::runner::Failure;
use common::storage::StorageError;
use parse_svc::source::SourceError;

use crate::plan::PlanError;

/// Every error names the partition (`<table> <layer> import_date=<YYYYMMDD>`), and where it
/// applies the file or column.
#[derive(Debug, thiserror::Error)]
pub enum RecastError {
    #[error(
        "recast-svc reads parsed partitions, but the message names the {layer} layer of {table}"
    )]
    WrongLayer { table: String, layer: Layer },
    #[error(
        "{partition} is not published in the catalog (a replayed message for a partition that was removed?)"
    )]
    NotPublished { partition: String },
    #[error("{partition}: {source}")]
    Plan {
        partition: String,
        #[source]
        source: PlanError,
    },
    #[error(
        "{partition}: file s3://{bucket}/{key} does not have the columns of the partition's first file"
    )]
    MixedSchemas {
        partition: String,
        bucket: String,
        key: String,
    },
    #[error("{partition}: casting column {column}: {source}")]
    Cast {
        partition: String,
        column: String,
        #[source]
        source: ArrowError,
    },
    #[error("{partition}: data-quality gate failed, nothing published: {failures}")]
    GateFailed { partition: String, failures: String },
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

impl From<SourceError> for RecastError {
    fn from(err: SourceError) -> Self {
        RecastError::Source(Box::new(err))
    }
}

impl From<GateError> for RecastError {
    fn from(err: GateError) -> Self {
        match err {
            GateError::Record { partition, source } => RecastError::Metrics { partition, source },
            GateError::Failed {
                partition,
                failures,
            } => RecastError::GateFailed {
                partition,
                failures,
            },
        }
    }
}

impl From<PublishError> for RecastError {
    fn from(err: PublishError) -> Self {
        RecastError::Publish(Box::new(err))
    }
}

pub type Result<T, E = RecastError> = std::result::Result<T, E>;

impl RecastError {
    /// True when the same message may succeed later (storage or catalog unavailable,
    /// throttled); everything about the data itself is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            RecastError::Metrics { source, .. } => source.is_transient(),
            RecastError::Read { source, .. } => source.is_transient(),
            RecastError::Source(err) => err.is_transient(),
            RecastError::Publish(err) => err.is_transient(),
            RecastError::WrongLayer { .. }
            | RecastError::NotPublished { .. }
            | RecastError::Plan { .. }
            | RecastError::MixedSchemas { .. }
            | RecastError::Cast { .. }
            | RecastError::GateFailed { .. }
            | RecastError::Arrow { .. } => false,
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
    fn storage_trouble_is_transient_and_a_failed_gate_is_permanent() {
        let busy = RecastError::Metrics {
            partition: "appeals increment import_date=20261121".into(),
            source: StorageError::Failed {
                operation: "put",
                bucket: "b".into(),
                key: "k".into(),
                message: "SlowDown".into(),
                transient: true,
            },
        };
        assert!(matches!(busy.into_failure(), Failure::Transient(_)));
        let gate = RecastError::GateFailed {
            partition: "appeals increment import_date=20261121".into(),
            failures: "unique_id = 2 (threshold 0)".into(),
        };
        assert!(matches!(gate.into_failure(), Failure::Permanent(_)));
    }
}
