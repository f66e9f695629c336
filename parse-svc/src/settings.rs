//! The parse stage's own settings, read from the injected environment.

use common::transform_stage::{BatchRows, TransformSettings};

/// Raw rows per batch (`TASCOMI_PARSE_BATCH_ROWS`, default 1024), in both passes. Besides the
/// writer's open file, one batch of JSON and its exploded columns is what the stage holds: a
/// 752-field `applications` record is about 30 KB of JSON, so about 60 MB.
pub type ParseSettings = TransformSettings<ParseBatchRows>;

/// The parse stage's batch-size variable and default.
#[derive(Debug)]
pub enum ParseBatchRows {}

impl BatchRows for ParseBatchRows {
    const VARIABLE: &'static str = "TASCOMI_PARSE_BATCH_ROWS";
    const DEFAULT: usize = 1024;
}
