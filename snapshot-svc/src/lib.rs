//! snapshot-svc: the last stage. On "partition ready" for an increment of a table, it publishes
//! today's full, de-duplicated snapshot of the table (`<table>` in the refined-zone database,
//! partitioned by `snapshot_year/month/day/date`) and sends "partition ready" for it.
//!
//! - [`stage`]: the handler: lock the table, plan, merge, gate, publish, say "partition ready".
//! - [`plan`]: what goes in: the base, the increments to apply, and the checks that nothing is
//!   missing (no hole) or already done.
//! - [`coverage`]: the rule that a snapshot is never built on a hole (an import that did not
//!   reach the increment layer).
//! - [`winner`]: the one rule that picks the version of a record the snapshot keeps.
//! - [`increment`]: the increments reduced to one row per id and held, sorted by id.
//! - [`streamed`]: a first snapshot streamed from an increment in id order, or nearly.
//! - [`inputs`]: reading the base's footers and the increments' files.
//! - [`merge`]: the streaming merge with the previous snapshot, copying untouched files.
//! - [`patch`]: merging into a file in place, encoding only the columns that changed.
//! - [`output`]: writing the files, copy or rewrite, and the accounting (report, gate checks,
//!   partition parameters).
//! - [`schema`]: the union of columns and the safe-cast rule for a changed type.
//! - [`settings`]: batch and file sizes from the environment.
//!
//! docs/snapshot.md explains the design and the operations (re-runs, backfills, rebuilds).

pub mod coverage;
pub mod error;
pub mod increment;
pub mod inputs;
pub mod merge;
pub mod output;
pub mod patch;
pub mod plan;
pub mod schema;
pub mod settings;
pub mod stage;
pub mod streamed;
#[cfg(test)]
mod test_rows;
pub mod winner;

pub use coverage::{Holes, MissingPartition, Window};
pub use error::SnapshotError;
pub use plan::{IncrementRun, SnapshotRequest};
pub use settings::SnapshotSettings;
pub use stage::{SnapshotOutcome, SnapshotStage};
