//! Finding the files of a published partition: what a stage reads from the layer before it.
//!
//! The catalog says which run's folder a partition is; the folder's Parquet files are the
//! partition. Listing the partition's own prefix instead would also find the files of a run still
//! writing, or of a crashed one.

use common::catalog::CatalogError;
use common::layout::PartitionRef;
use common::platform::Platform;
use common::publish::published_partitions;
use common::storage::{ObjectMeta, StorageError, split_s3_uri};

/// The files of one published partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFiles {
    /// `s3://bucket/prefix/` the catalog points at.
    pub location: String,
    pub bucket: String,
    /// The Parquet files below the location, sorted by key (an empty partition has none).
    pub files: Vec<ObjectMeta>,
    /// The run that published it, as the catalog recorded it.
    pub run_id: Option<String>,
}

impl PublishedFiles {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("looking up {partition}: {source}")]
    Catalog {
        partition: String,
        #[source]
        source: CatalogError,
    },
    #[error("listing {partition}: {source}")]
    Storage {
        partition: String,
        #[source]
        source: StorageError,
    },
    #[error(
        "{partition} has the location {location:?} in the catalog, which is not an s3:// address"
    )]
    BadLocation { partition: String, location: String },
}

impl SourceError {
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Catalog { source, .. } => source.is_transient(),
            SourceError::Storage { source, .. } => source.is_transient(),
            SourceError::BadLocation { .. } => false,
        }
    }
}

/// The files of `partition` as published, or `None` when the catalog has no such partition.
pub async fn published_files(
    platform: &Platform,
    partition: &PartitionRef,
) -> Result<Option<PublishedFiles>, SourceError> {
    let partitions = published_partitions(platform.catalog.as_ref(), partition)
        .await
        .map_err(|source| SourceError::Catalog {
            partition: partition.describe(),
            source,
        })?;
    let Some((_, info)) = partitions
        .into_iter()
        .find(|(date, _)| *date == partition.date)
    else {
        return Ok(None);
    };
    let (bucket, prefix) =
        split_s3_uri(&info.location).ok_or_else(|| SourceError::BadLocation {
            partition: partition.describe(),
            location: info.location.clone(),
        })?;
    let files = platform
        .storage
        .list(bucket, prefix)
        .await
        .map_err(|source| SourceError::Storage {
            partition: partition.describe(),
            source,
        })?
        .into_iter()
        .filter(|object| object.key.ends_with(".parquet"))
        .collect();
    Ok(Some(PublishedFiles {
        bucket: bucket.to_owned(),
        location: info.location.clone(),
        files,
        run_id: info.parameters.get("run_id").cloned(),
    }))
}
