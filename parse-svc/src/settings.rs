//! The parse stage's own settings, read from the injected environment.

use common::config::{ConfigError, Env};
use common::transform_stage::batch_rows_from_env;

/// How the stage reads and writes. Checked at start-up; an error names the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseSettings {
    /// Raw rows per batch (`TASCOMI_PARSE_BATCH_ROWS`, default 1024), in both passes. Besides
    /// the writer's open file, one batch of JSON and its exploded columns is what the stage
    /// holds: a 752-field `applications` record is about 30 KB of JSON, so about 60 MB.
    pub batch_rows: usize,
}

pub const BATCH_ROWS_VARIABLE: &str = "TASCOMI_PARSE_BATCH_ROWS";
pub const DEFAULT_BATCH_ROWS: usize = 1024;

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }
}

impl ParseSettings {
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
            ParseSettings::from_env(&Env::default()).unwrap(),
            ParseSettings::default()
        );
        let env = Env::from_pairs([("TASCOMI_PARSE_BATCH_ROWS", "512")]);
        assert_eq!(ParseSettings::from_env(&env).unwrap().batch_rows, 512);
        for bad in ["0", "lots", "2000000"] {
            let env = Env::from_pairs([("TASCOMI_PARSE_BATCH_ROWS", bad)]);
            let err = ParseSettings::from_env(&env).unwrap_err().to_string();
            assert!(err.contains("TASCOMI_PARSE_BATCH_ROWS"), "{err}");
        }
    }
}
