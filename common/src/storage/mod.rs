//! Object storage: the narrow interface the stages need from S3.
//!
//! Keys are `/`-separated and never start with `/`. Implementations: [`S3Storage`] (aws-sdk-s3)
//! and [`LocalStorage`] (a directory per bucket under the data directory, the embedded default).

mod local;
mod s3;

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalStorage;
pub use s3::S3Storage;

/// What a storage call failed with. `NotFound` is its own variant because callers branch on it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object s3://{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    #[error("{operation} s3://{bucket}/{key} failed: {message}")]
    Failed {
        operation: &'static str,
        bucket: String,
        key: String,
        message: String,
        /// True when trying again later may succeed (throttling, 5xx, network).
        transient: bool,
    },
}

impl StorageError {
    /// A failed `operation` on `s3://bucket/key`, retried by the runner when `transient`.
    pub fn failed(
        operation: &'static str,
        bucket: &str,
        key: &str,
        message: impl ToString,
        transient: bool,
    ) -> StorageError {
        StorageError::Failed {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: message.to_string(),
            transient,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Failed {
                transient: true,
                ..
            }
        )
    }
}

/// The inherent [`StorageError::is_transient`], as the trait every stage's errors implement.
impl crate::failure::Transience for StorageError {
    fn is_transient(&self) -> bool {
        StorageError::is_transient(self)
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Object storage.
///
/// Contract: `put` makes the whole object visible at once or not at all (readers never see a
/// partial object); bodies over the implementation's part size are uploaded in parts. `put`,
/// `delete` and `copy` are idempotent. `list` returns every object below the prefix (all pages),
/// sorted by key.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Writes an object, replacing any object at that key.
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()>;

    /// Reads a whole object.
    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes>;

    /// Reads bytes `range.start..range.end` of an object (end exclusive, clamped to the size).
    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> Result<Bytes>;

    /// The size of an object in bytes.
    async fn size(&self, bucket: &str, key: &str) -> Result<u64>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes objects; keys that do not exist are not an error.
    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<()>;

    /// Copies an object inside the store, without passing its bytes through this process.
    async fn copy(&self, bucket: &str, from_key: &str, to_bucket: &str, to_key: &str)
    -> Result<()>;
}

/// Splits `s3://bucket/key` into bucket and key.
pub fn split_s3_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}
