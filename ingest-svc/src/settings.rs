//! The stage's settings: the API client's, and how far an incremental run looks back.

use common::config::{ConfigError, Env, PipelineFile};

use crate::client::ClientSettings;

/// The stage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSettings {
    pub client: ClientSettings,
    /// Days an incremental run looks back at most: `TASCOMI_MAX_LOOKBACK_DAYS`, else the
    /// pipeline file's `max_lookback_days` (default 60).
    pub max_lookback_days: u32,
}

impl IngestSettings {
    /// The defaults, talking to `base_url` (the simulator's URL in tests and the local demo).
    pub fn new(base_url: &str) -> Self {
        Self {
            client: ClientSettings::new(base_url),
            max_lookback_days: common::config::DEFAULT_MAX_LOOKBACK_DAYS,
        }
    }

    pub fn from_env(env: &Env, pipeline: &PipelineFile) -> Result<Self, ConfigError> {
        let settings = Self {
            client: ClientSettings::from_env(env)?,
            max_lookback_days: env
                .parse_or("TASCOMI_MAX_LOOKBACK_DAYS", pipeline.max_lookback_days)?,
        };
        if settings.max_lookback_days == 0 {
            return Err(ConfigError::Invalid {
                variable: "TASCOMI_MAX_LOOKBACK_DAYS".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(settings)
    }
}
