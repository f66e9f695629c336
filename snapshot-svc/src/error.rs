//! What a snapshot run fails with. Each error names the table, the partition or file, and the
//! column where there is one; [`SnapshotError::is_transient`] is the one place that decides
//! whether trying again may help.

use arrow::error::ArrowError;
use common::catalog::CatalogError;
use common::events::EventError;
use common::failure::Transience;
use common::parquet_io::ParquetIoError;
use common::publish::PublishError;
use common::storage::StorageError;

use crate::coverage::Holes;
use crate::schema::SchemaError;

pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "{table}: snapshot-svc takes increment partitions (and carry-forward requests), not {layer} partitions"
    )]
    WrongLayer { table: String, layer: String },
    #[error(
        "{partition} is not published in the catalog (a replayed message for a partition that was removed?)"
    )]
    NotPublished { partition: String },
    #[error("{table}: reading the catalog: {source}")]
    Catalog {
        table: String,
        #[source]
        source: Box<CatalogError>,
    },
    #[error("{what}: the catalog's location {location:?} is not an s3:// address")]
    BadLocation { what: String, location: String },
    #[error("{what}: {source}")]
    Storage {
        what: String,
        #[source]
        source: Box<StorageError>,
    },
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: Box<ParquetIoError>,
    },
    #[error("{table} snapshot: {source}")]
    Schema {
        table: String,
        #[source]
        source: Box<SchemaError>,
    },
    #[error("{what}: has no column {column}")]
    MissingColumn { what: String, column: String },
    #[error("{what}: {source}")]
    Arrow {
        what: String,
        #[source]
        source: ArrowError,
    },
    #[error(transparent)]
    Publish(Box<PublishError>),
    #[error("{partition}: data-quality gate failed, nothing published: {failures}")]
    Quality { partition: String, failures: String },
    /// An import the snapshot must hold has not reached the increment layer (see
    /// [`crate::coverage`]): nothing is published. Transient when every missing partition is
    /// in flight ([`Holes::is_transient`]).
    #[error("{0}")]
    Hole(Box<Holes>),
    /// No base snapshot, and no full load among the table's raw imports up to today: a first
    /// snapshot made of increments alone would be a fraction of the table.
    #[error(
        "{table} snapshot snapshot_date={snapshot_date}: not built, nothing published: a first snapshot needs a full load, and no raw import of {table} up to {snapshot_date} is one (raw partition parameter import_kind=full, or mode=full on older partitions); repair: {repair}"
    )]
    NoFullLoad {
        table: String,
        snapshot_date: String,
        /// The command that loads the table in full.
        repair: String,
    },
    #[error(
        "{table}: today's snapshot (snapshot_date={snapshot_date}) was published by run {other_run} while this merge ran; another merge of the table ran at the same time, so this one publishes nothing and is retried"
    )]
    Raced {
        table: String,
        snapshot_date: String,
        other_run: String,
    },
    /// The snapshot is published but the event that announces it was not put. Retried (when
    /// the bus may take it later): the retry finds the snapshot published and announces it.
    #[error(
        "{table} snapshot snapshot_date={snapshot_date} is published (run {run_id}) but not announced: {source}"
    )]
    Announce {
        table: String,
        snapshot_date: String,
        run_id: String,
        #[source]
        source: Box<EventError>,
    },
}

impl From<PublishError> for SnapshotError {
    fn from(source: PublishError) -> Self {
        SnapshotError::Publish(Box::new(source))
    }
}

impl SnapshotError {
    pub fn is_transient(&self) -> bool {
        match self {
            SnapshotError::Catalog { source, .. } => source.is_transient(),
            SnapshotError::Storage { source, .. } => source.is_transient(),
            // A file gone from a published partition: replaced by a later run while this one
            // read it (see common::source); the retry plans from the catalog again.
            SnapshotError::Read { source, .. } => source.is_transient() || source.is_not_found(),
            SnapshotError::Publish(source) => source.is_transient(),
            // The other merge has published; a retry finds its snapshot and decides again.
            SnapshotError::Raced { .. } => true,
            SnapshotError::Hole(holes) => holes.is_transient(),
            SnapshotError::Announce { source, .. } => source.transient,
            SnapshotError::WrongLayer { .. }
            | SnapshotError::NotPublished { .. }
            | SnapshotError::BadLocation { .. }
            | SnapshotError::Schema { .. }
            | SnapshotError::MissingColumn { .. }
            | SnapshotError::Arrow { .. }
            | SnapshotError::Quality { .. }
            | SnapshotError::NoFullLoad { .. } => false,
        }
    }
}

/// The runner's class of a snapshot error ([`Transience::into_failure`]), by
/// [`SnapshotError::is_transient`].
impl Transience for SnapshotError {
    fn is_transient(&self) -> bool {
        SnapshotError::is_transient(self)
    }
}
