//! The setting every transform stage has: how many rows it reads and transforms at a time.
//!
//! Besides the writer's open file, one batch and its transformed copy is what a transform stage
//! holds, so the batch size is its memory: each stage names its variable and default.

use crate::config::{ConfigError, Env};

/// Larger batches only cost memory; this keeps a typo from asking for gigabytes.
pub const MAX_BATCH_ROWS: usize = 1_000_000;

/// The rows per batch in `variable`, `default` when it is unset: 1 to [`MAX_BATCH_ROWS`]. An
/// error names the variable.
pub fn batch_rows_from_env(
    env: &Env,
    variable: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    env.parse_in_range(variable, default, 1..=MAX_BATCH_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_applies_and_bad_values_name_the_variable() {
        let variable = "TASCOMI_EXAMPLE_BATCH_ROWS";
        assert_eq!(
            batch_rows_from_env(&Env::default(), variable, 7).unwrap(),
            7
        );
        let env = Env::from_pairs([(variable, "512")]);
        assert_eq!(batch_rows_from_env(&env, variable, 7).unwrap(), 512);
        for bad in ["0", "lots", "2000000"] {
            let env = Env::from_pairs([(variable, bad)]);
            let err = batch_rows_from_env(&env, variable, 7)
                .unwrap_err()
                .to_string();
            assert!(err.contains(variable), "{err}");
        }
    }
}
