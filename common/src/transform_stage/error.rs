//! What can go wrong in the flow every transform stage shares, whatever the stage's own part.

use arrow::error::ArrowError;

use crate::failure::Transience;
use crate::layout::Layer;
use crate::publish::PublishError;
use crate::quality::GateError;
use crate::source::SourceError;
use crate::storage::StorageError;

/// Every error names the partition (`<table> <layer> import_date=<YYYYMMDD>`), and where it
/// applies the file. A stage's own error wraps it (transparently: the text is this one's).
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(
        "{stage}-svc reads {reads} partitions, but the message names the {layer} layer of {table}"
    )]
    WrongLayer {
        /// The stage's name (`parse`).
        stage: &'static str,
        /// The layer the stage reads.
        reads: Layer,
        table: String,
        /// The layer the message names.
        layer: Layer,
    },
    #[error(
        "{partition} is not published in the catalog (a replayed message for a partition that was removed?)"
    )]
    NotPublished { partition: String },
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
    // Boxed: these two are the largest, and every `Result` of a stage carries the error.
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Publish(Box<PublishError>),
}

impl From<SourceError> for TransformError {
    fn from(err: SourceError) -> Self {
        TransformError::Source(Box::new(err))
    }
}

impl From<GateError> for TransformError {
    fn from(err: GateError) -> Self {
        match err {
            GateError::Record { partition, source } => {
                TransformError::Metrics { partition, source }
            }
            GateError::Failed {
                partition,
                failures,
            } => TransformError::GateFailed {
                partition,
                failures,
            },
        }
    }
}

impl From<PublishError> for TransformError {
    fn from(err: PublishError) -> Self {
        TransformError::Publish(Box::new(err))
    }
}

impl Transience for TransformError {
    /// Storage or catalog trouble may go away; a message for the wrong layer or a partition
    /// that is not published, a failed gate and a batch that cannot be built never do.
    fn is_transient(&self) -> bool {
        match self {
            TransformError::Metrics { source, .. } => source.is_transient(),
            TransformError::Source(err) => err.is_transient(),
            TransformError::Publish(err) => err.is_transient(),
            TransformError::WrongLayer { .. }
            | TransformError::NotPublished { .. }
            | TransformError::GateFailed { .. }
            | TransformError::Arrow { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Failure;

    #[test]
    fn storage_trouble_is_transient_and_a_failed_gate_is_permanent() {
        let busy = TransformError::from(GateError::Record {
            partition: "appeals increment import_date=20261121".into(),
            source: StorageError::failed("put", "b", "k", "SlowDown", true),
        });
        assert!(matches!(busy, TransformError::Metrics { .. }));
        assert!(matches!(busy.into_failure(), Failure::Transient(_)));
        let gate = TransformError::from(GateError::Failed {
            partition: "appeals increment import_date=20261121".into(),
            failures: "unique_id = 2 (threshold 0)".into(),
        });
        assert_eq!(
            gate.to_string(),
            "appeals increment import_date=20261121: data-quality gate failed, nothing published: unique_id = 2 (threshold 0)"
        );
        assert!(matches!(gate.into_failure(), Failure::Permanent(_)));
    }

    #[test]
    fn a_message_for_another_layer_names_the_service_and_both_layers() {
        let err = TransformError::WrongLayer {
            stage: "recast",
            reads: Layer::Parsed,
            table: "appeals".into(),
            layer: Layer::Raw,
        };
        assert_eq!(
            err.to_string(),
            "recast-svc reads parsed partitions, but the message names the raw layer of appeals"
        );
        assert!(!err.is_transient());
    }
}
