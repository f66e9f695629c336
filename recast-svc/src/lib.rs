//! The recast stage: a parsed partition (text columns) becomes an increment partition whose
//! columns have the types of the column-type dictionary.
//!
//! On a "partition ready" message for the parsed layer, [`RecastStage`]:
//! 1. finds the parsed partition's published files through the catalog;
//! 2. [plans](plan) each column: cast to the dictionary's type, or kept (bookkeeping columns,
//!    columns the dictionary does not list, tables marked `keep_as_text`);
//! 3. streams the files batch by batch, [casting](cast) with Arrow's kernels, feeding the
//!    data-quality gate and counting the values that would not cast, and writes each batch;
//! 4. records the data-quality results (the gate's checks, cast failures per column, dictionary
//!    columns the partition lacks), then publishes `increment_<table>` with the typed schema if
//!    the gate passed, or discards the run's files if it failed.
//!
//! Memory is bounded by one batch and one output file.
//!
//! Steps 1 and 4, with the lock, the gate and the next message, are the flow every transform
//! stage shares ([`common::transform_stage`]); this crate holds the recast's own part
//! ([`stage::Cast`]: the plan, the casts, the cast failures and missing columns reported).

pub mod cast;
pub mod error;
pub mod plan;
pub mod settings;
pub mod stage;

pub use error::RecastError;
pub use settings::RecastSettings;
pub use stage::{RecastOutcome, RecastStage};
