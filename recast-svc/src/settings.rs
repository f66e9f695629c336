//! The recast stage's own settings, read from the injected environment.

use common::transform_stage::{BatchRows, TransformSettings};

/// Rows per batch read from a parsed file (`TASCOMI_RECAST_BATCH_ROWS`, default 4096). Besides
/// the writer's open file, one batch of text and its typed copy is what the stage holds: about
/// 4096 × 15 KB for the 752-column `applications` table, so about 60 MB.
pub type RecastSettings = TransformSettings<RecastBatchRows>;

/// The recast stage's batch-size variable and default.
#[derive(Debug)]
pub enum RecastBatchRows {}

impl BatchRows for RecastBatchRows {
    const VARIABLE: &'static str = "TASCOMI_RECAST_BATCH_ROWS";
    const DEFAULT: usize = 4096;
}
