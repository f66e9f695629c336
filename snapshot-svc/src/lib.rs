//! snapshot-svc: the last stage. On "partition ready" for an increment of a table, it publishes
//! today's full, de-duplicated snapshot of the table (`<table>` in the refined-zone database,
//! partitioned by `snapshot_year/month/day/date`) and sends "partition ready" for it.
//!
//! - [`stage`]: the handler: plan from the catalog, lock the table, merge, gate, publish.
//! - [`coverage`]: the rule that a snapshot is never built on a hole (an import that did not
//!   reach the increment layer).
//! - [`increment`]: the increments reduced to one row per id, sorted by id.
//! - [`merge`]: the streaming merge with the previous snapshot, copying untouched files.
//! - [`schema`]: the union of columns and the safe-cast rule for a changed type.
//! - [`settings`]: batch and file sizes from the environment.
//!
//! docs/snapshot.md explains the design and the operations (re-runs, backfills, rebuilds).

pub mod coverage;
pub mod error;
pub mod increment;
pub mod merge;
pub mod schema;
pub mod settings;
pub mod stage;

pub use coverage::{Holes, MissingPartition, Window};
pub use error::SnapshotError;
pub use settings::SnapshotSettings;
pub use stage::{IncrementRun, SnapshotOutcome, SnapshotRequest, SnapshotStage};
