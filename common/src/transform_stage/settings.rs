//! The setting every transform stage has: how many rows it reads and transforms at a time.
//!
//! Besides the writer's open file, one batch and its transformed copy is what a transform stage
//! holds, so the batch size is its memory: each stage names its variable and default.

use std::fmt;
use std::marker::PhantomData;

use crate::config::{ConfigError, Env};

/// A transform stage's batch size: the variable that sets it and its default.
pub trait BatchRows {
    /// `TASCOMI_<STAGE>_BATCH_ROWS`.
    const VARIABLE: &'static str;
    const DEFAULT: usize;
}

/// A transform stage's own settings, read from the injected environment (`S` names the
/// stage's variable and default). Checked at start-up; an error names the variable.
pub struct TransformSettings<S> {
    /// Rows per batch, 1 to [`MAX_BATCH_ROWS`].
    pub batch_rows: usize,
    stage: PhantomData<fn() -> S>,
}

impl<S: BatchRows> TransformSettings<S> {
    pub fn with_batch_rows(batch_rows: usize) -> Self {
        Self {
            batch_rows,
            stage: PhantomData,
        }
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        batch_rows_from_env(env, S::VARIABLE, S::DEFAULT).map(Self::with_batch_rows)
    }
}

impl<S: BatchRows> Default for TransformSettings<S> {
    fn default() -> Self {
        Self::with_batch_rows(S::DEFAULT)
    }
}

// By hand rather than derived: a derive would ask the marker `S` for the traits too.
impl<S> Clone for TransformSettings<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for TransformSettings<S> {}

impl<S> PartialEq for TransformSettings<S> {
    fn eq(&self, other: &Self) -> bool {
        self.batch_rows == other.batch_rows
    }
}

impl<S> Eq for TransformSettings<S> {}

impl<S: BatchRows> fmt::Debug for TransformSettings<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformSettings")
            .field("variable", &S::VARIABLE)
            .field("batch_rows", &self.batch_rows)
            .finish()
    }
}

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

    struct Example;
    impl BatchRows for Example {
        const VARIABLE: &'static str = "TASCOMI_EXAMPLE_BATCH_ROWS";
        const DEFAULT: usize = 7;
    }

    #[test]
    fn a_stage_s_settings_read_its_own_variable() {
        type Settings = TransformSettings<Example>;
        assert_eq!(
            Settings::from_env(&Env::default()).unwrap(),
            Settings::default()
        );
        assert_eq!(Settings::default().batch_rows, 7);
        let env = Env::from_pairs([(Example::VARIABLE, "512")]);
        assert_eq!(Settings::from_env(&env).unwrap().batch_rows, 512);
        let env = Env::from_pairs([(Example::VARIABLE, "0")]);
        let err = Settings::from_env(&env).unwrap_err().to_string();
        assert!(err.contains(Example::VARIABLE), "{err}");
        assert!(format!("{:?}", Settings::default()).contains(Example::VARIABLE));
    }
}
