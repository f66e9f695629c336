//! The snapshot stage's own settings, read from the injected environment.

use std::time::Duration;

use common::config::{ConfigError, Env};
use common::parquet_io::WriteOptions;

/// How the merge reads and writes. Every value is checked at start-up; an error names the
/// variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// Rows per batch read from a Parquet file (`TASCOMI_SNAPSHOT_BATCH_ROWS`, default 8192).
    /// With the increment, this is what the merge holds in memory.
    pub batch_rows: usize,
    /// At most this many rows per snapshot file (`TASCOMI_SNAPSHOT_FILE_ROWS`, default
    /// 100,000). Small enough that each file covers a narrow id range, so that a nightly merge
    /// copies most files instead of rewriting them; large enough for Athena to scan efficiently.
    pub file_rows: usize,
    /// A snapshot file is closed once its encoded size passes this many bytes
    /// (`TASCOMI_SNAPSHOT_TARGET_FILE_BYTES`, default 64 MiB). The writer buffers one file, so
    /// this bounds the output side of the merge's memory.
    pub target_file_bytes: usize,
    /// How recently the input of a missing partition must have been published for a hole to
    /// count as work in flight (`TASCOMI_SNAPSHOT_HOLE_GRACE_SECS`, default 1800): the snapshot
    /// is then retried later instead of dead-lettered at once. 0 makes every hole permanent.
    pub hole_grace: Duration,
}

pub const DEFAULT_BATCH_ROWS: usize = 8192;
pub const DEFAULT_FILE_ROWS: usize = 100_000;
pub const DEFAULT_TARGET_FILE_BYTES: usize = 64 * 1024 * 1024;
pub const DEFAULT_HOLE_GRACE_SECS: u64 = 1800;

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            file_rows: DEFAULT_FILE_ROWS,
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            hole_grace: Duration::from_secs(DEFAULT_HOLE_GRACE_SECS),
        }
    }
}

impl SnapshotSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let settings = Self {
            batch_rows: env.parse_or("TASCOMI_SNAPSHOT_BATCH_ROWS", DEFAULT_BATCH_ROWS)?,
            file_rows: env.parse_or("TASCOMI_SNAPSHOT_FILE_ROWS", DEFAULT_FILE_ROWS)?,
            target_file_bytes: env.parse_or(
                "TASCOMI_SNAPSHOT_TARGET_FILE_BYTES",
                DEFAULT_TARGET_FILE_BYTES,
            )?,
            hole_grace: env.secs_or("TASCOMI_SNAPSHOT_HOLE_GRACE_SECS", DEFAULT_HOLE_GRACE_SECS)?,
        };
        for (variable, value) in [
            ("TASCOMI_SNAPSHOT_BATCH_ROWS", settings.batch_rows),
            ("TASCOMI_SNAPSHOT_FILE_ROWS", settings.file_rows),
            (
                "TASCOMI_SNAPSHOT_TARGET_FILE_BYTES",
                settings.target_file_bytes,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    variable: variable.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(settings)
    }

    /// The platform's write options with this stage's file size; row groups are no larger
    /// than a file.
    pub fn write_options(&self, platform: WriteOptions) -> WriteOptions {
        WriteOptions {
            target_file_bytes: self.target_file_bytes,
            row_group_rows: platform.row_group_rows.min(self.file_rows),
            ..platform
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let settings = SnapshotSettings::from_env(&Env::default()).unwrap();
        assert_eq!(settings, SnapshotSettings::default());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let env = Env::from_pairs([("TASCOMI_SNAPSHOT_FILE_ROWS", "many")]);
        let err = SnapshotSettings::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("TASCOMI_SNAPSHOT_FILE_ROWS=\"many\""), "{err}");
        let env = Env::from_pairs([("TASCOMI_SNAPSHOT_BATCH_ROWS", "0")]);
        let err = SnapshotSettings::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("TASCOMI_SNAPSHOT_BATCH_ROWS"), "{err}");
        let env = Env::from_pairs([("TASCOMI_SNAPSHOT_HOLE_GRACE_SECS", "soon")]);
        let err = SnapshotSettings::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("TASCOMI_SNAPSHOT_HOLE_GRACE_SECS"), "{err}");
    }

    #[test]
    fn hole_grace_is_read_in_seconds() {
        let env = Env::from_pairs([("TASCOMI_SNAPSHOT_HOLE_GRACE_SECS", "0")]);
        let settings = SnapshotSettings::from_env(&env).unwrap();
        assert_eq!(settings.hole_grace, Duration::ZERO);
        assert_eq!(
            SnapshotSettings::default().hole_grace,
            Duration::from_secs(1800)
        );
    }

    #[test]
    fn row_groups_never_exceed_a_file() {
        let settings = SnapshotSettings {
            file_rows: 1000,
            ..Default::default()
        };
        let options = settings.write_options(WriteOptions::default());
        assert_eq!(options.row_group_rows, 1000);
        assert_eq!(options.target_file_bytes, DEFAULT_TARGET_FILE_BYTES);
    }
}
