//! What can go wrong recasting a partition, classified once ([`Transience`]) into the runner's
//! `Failure`. The flow's own errors (wrong layer, not published, reading, the gate, publishing)
//! are [`TransformError`]s.

use arrow::error::ArrowError;
use common::failure::Transience;
use common::transform_stage::TransformError;

use crate::plan::PlanError;

/// Every error names the partition (`<table> <layer> import_date=<YYYYMMDD>`), and where it
/// applies the file or column.
#[derive(Debug, thiserror::Error)]
pub enum RecastError {
    #[error("{partition}: {source}")]
    Plan {
        partition: String,
        #[source]
        source: PlanError,
    },
    #[error("{partition}: casting column {column}: {source}")]
    Cast {
        partition: String,
        column: String,
        #[source]
        source: ArrowError,
    },
    #[error(transparent)]
    Transform(#[from] TransformError),
}

pub type Result<T, E = RecastError> = std::result::Result<T, E>;

impl Transience for RecastError {
    /// Only the flow's storage and catalog trouble may go away; everything about the data
    /// itself is permanent.
    fn is_transient(&self) -> bool {
        match self {
            RecastError::Transform(err) => err.is_transient(),
            RecastError::Plan { .. } | RecastError::Cast { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::quality::GateError;
    use common::runner::Failure;
    use common::storage::StorageError;

    #[test]
    fn storage_trouble_is_transient_and_a_failed_gate_is_permanent() {
        let busy = RecastError::from(TransformError::from(GateError::Record {
            partition: "appeals increment import_date=20261121".into(),
            source: StorageError::failed("put", "b", "k", "SlowDown", true),
        }));
        assert!(matches!(busy.into_failure(), Failure::Transient(_)));
        let gate = RecastError::from(TransformError::GateFailed {
            partition: "appeals increment import_date=20261121".into(),
            failures: "unique_id = 2 (threshold 0)".into(),
        });
        assert!(matches!(gate.into_failure(), Failure::Permanent(_)));
    }
}
