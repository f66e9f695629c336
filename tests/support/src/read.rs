//! Reading a published partition whole, for checking what a stage published.

use arrow::array::RecordBatch;
use common::layout::PartitionRef;
use common::parquet_io::read_all;
use common::platform::Platform;
use common::source::published_files;

/// Every row of a published partition, read whole (small test partitions only). `None` when
/// the catalog has no such partition.
pub async fn read_published(
    platform: &Platform,
    partition: &PartitionRef,
) -> Result<Option<Vec<RecordBatch>>, anyhow::Error> {
    let Some(published) = published_files(platform, partition).await? else {
        return Ok(None);
    };
    let mut batches = Vec::new();
    for file in &published.files {
        batches.extend(read_all(platform.storage.clone(), &published.bucket, &file.key).await?);
    }
    Ok(Some(batches))
}
