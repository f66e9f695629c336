//! A partition written and published on a platform as the stages do it: a new run of the
//! partition on the platform's storage, then published in its catalog.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use common::layout::PartitionRef;
use common::messages::PartitionReady;
use common::platform::Platform;
use common::publish::{PartitionWriter, PublishError, Published, new_run_id};

/// A writer of a new run of `partition`, on the platform's storage with its write options.
pub fn new_run(
    platform: &Platform,
    partition: &PartitionRef,
    schema: SchemaRef,
) -> PartitionWriter {
    PartitionWriter::new(
        platform.storage.clone(),
        partition.clone(),
        new_run_id(),
        schema,
        platform.write_options,
    )
}

/// Publishes the run `writer` wrote (replacing any earlier run of its partition), recording
/// `parameters` with the partition.
pub async fn publish_run(
    platform: &Platform,
    writer: PartitionWriter,
    parameters: BTreeMap<String, String>,
) -> Result<Published, PublishError> {
    writer
        .finish()
        .await?
        .publish(
            platform.catalog.as_ref(),
            &platform.layout,
            parameters,
            platform.orphan_grace,
        )
        .await
}

/// Writes `batches` as a new run of `partition` and publishes it, with no parameters of its
/// own; returns what was published and the message the next stage receives.
pub async fn publish_batches(
    platform: &Platform,
    partition: &PartitionRef,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = RecordBatch>,
) -> Result<(Published, PartitionReady), PublishError> {
    let mut writer = new_run(platform, partition, schema);
    for batch in batches {
        writer.write(&batch).await?;
    }
    let published = publish_run(platform, writer, BTreeMap::new()).await?;
    let ready = PartitionReady::new(
        partition,
        published.location.clone(),
        published.run_id.clone(),
        None,
    );
    Ok((published, ready))
}
