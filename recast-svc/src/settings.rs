//! The recast stage's own settings, read from the injected environment.

use common::config::{ConfigError, Env};
use common::transform_stage::batch_rows_from_env;

/// How the stage reads and writes. Checked at start-up; an error names the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecastSettings {
    /// Rows per batch read from a parsed file (`TASCOMI_RECAST_BATCH_ROWS`, default 4096).
    /// Besides the writer's open file, one batch of text and its typed copy is what the stage
    /// holds: about 4096 × 15 KB for the 752-column `applications` table, so about 60 MB.
    pub batch_rows: usize,
}

pub const BATCH_ROWS_VARIABLE: &str = "TASCOMI_RECAST_BATCH_ROWS";
pub const DEFAULT_BATCH_ROWS: usize = 4096;

impl Default for RecastSettings {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }
}

impl RecastSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let batch_rows = batch_rows_from_env(env, BATCH_ROWS_VARIABLE, DEFAULT_BATCH_ROWS)?;
        Ok(Self { batch_rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_bad_values_name_the_variable() {
        assert_eq!(
            RecastSettings::from_env(&Env::default()).unwrap(),
            RecastSettings::default()
        );
        let env = Env::from_pairs([("TASCOMI_RECAST_BATCH_ROWS", "512")]);
        assert_eq!(RecastSettings::from_env(&env).unwrap().batch_rows, 512);
        for bad in ["0", "lots", "2000000"] {
            let env = Env::from_pairs([("TASCOMI_RECAST_BATCH_ROWS", bad)]);
            let err = RecastSettings::from_env(&env).unwrap_err().to_string();
            assert!(err.contains("TASCOMI_RECAST_BATCH_ROWS"), "{err}");
        }
    }
}
