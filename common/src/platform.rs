//! The handles a stage works with, built once at start-up: storage, catalog, layout.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Catalog, GlueCatalog, LocalCatalog};
use crate::config::{ConfigError, Env, layout_from_env};
use crate::layout::Layout;
use crate::parquet_io::WriteOptions;
use crate::storage::{LocalStorage, S3Storage, Storage};

/// Where a stage reads and writes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Platform {
    pub storage: Arc<dyn Storage>,
    pub catalog: Arc<dyn Catalog>,
    pub layout: Layout,
    pub write_options: WriteOptions,
    /// How old an unpublished run folder must be before a publication removes it
    /// (`TASCOMI_ORPHAN_GRACE_SECS`, default 6 hours: longer than any run).
    pub orphan_grace: Duration,
    /// Key prefix, in the refined bucket, of the data-quality results (JSON lines).
    pub metrics_prefix: String,
}

pub const DEFAULT_METRICS_PREFIX: &str = "planning/tascomi/data-quality/";

impl Platform {
    /// S3 and Glue, with names from the environment. `TASCOMI_MANAGE_DATABASES=false` (databases
    /// created by Terraform): the services never create a Glue database.
    pub fn aws(sdk: &aws_config::SdkConfig, env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            storage: Arc::new(S3Storage::new(sdk)),
            catalog: Arc::new(if env.parse_or("TASCOMI_MANAGE_DATABASES", true)? {
                GlueCatalog::new(sdk)
            } else {
                GlueCatalog::with_managed_databases(GlueCatalog::new(sdk))
            }),
            layout: layout_from_env(env)?,
            write_options: WriteOptions::default(),
            orphan_grace: env.secs_or("TASCOMI_ORPHAN_GRACE_SECS", 6 * 3600)?,
            metrics_prefix: env
                .get("TASCOMI_METRICS_PREFIX")
                .unwrap_or(DEFAULT_METRICS_PREFIX)
                .to_owned(),
        })
    }

    /// The embedded default: buckets are folders of `data_dir`, the catalog is JSON files in
    /// `data_dir/_catalog`. Orphans (left only by a killed process) are collected after five
    /// minutes, so that two deliveries of one message handled at once cannot collect each other.
    pub fn local(data_dir: &std::path::Path) -> Self {
        Self {
            storage: Arc::new(LocalStorage::new(data_dir)),
            catalog: Arc::new(LocalCatalog::new(data_dir.join("_catalog"))),
            layout: Layout {
                raw_bucket: "raw-zone".into(),
                refined_bucket: "refined-zone".into(),
                database_prefix: "local".into(),
            },
            write_options: WriteOptions::default(),
            orphan_grace: Duration::from_secs(300),
            metrics_prefix: DEFAULT_METRICS_PREFIX.to_owned(),
        }
    }
}
