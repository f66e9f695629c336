//! One run per partition at a time within a process.
//!
//! The runner handles several messages at once, and a queue may deliver the same message twice
//! close together. Two runs of one partition would each publish a complete partition (the later
//! one wins), but on the embedded default, where orphan run folders are collected at once, one
//! run's clean-up could remove the other's files before it publishes. Taking the partition's lock
//! for the whole run rules that out. Across processes the publish protocol's grace period does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::layout::PartitionRef;
use tokio::sync::OwnedMutexGuard;

/// Locks keyed by partition. Cheap to create; hold one per stage.
#[derive(Debug, Default)]
pub struct PartitionLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PartitionLocks {
    /// Waits until no other run in this process holds `partition`, then holds it until the
    /// guard is dropped.
    pub async fn lock(&self, partition: &PartitionRef) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget the locks nobody holds or waits for, so the map stays small.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks
                .entry(format!("{}/{}", partition.bucket, partition.key_prefix()))
                .or_default()
                .clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;
    use crate::layout::{Layer, TableName};
    use std::time::Duration;

    fn partition(table: &str) -> PartitionRef {
        let layout = Layout {
            raw_bucket: "raw".into(),
            refined_bucket: "refined".into(),
            database_prefix: "t".into(),
        };
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        layout.partition(&TableName::new(table).unwrap(), Layer::Parsed, date)
    }

    #[tokio::test]
    async fn a_partition_is_held_by_one_run_and_others_are_free() {
        let locks = Arc::new(PartitionLocks::default());
        let held = locks.lock(&partition("appeals")).await;
        // Another partition is not blocked.
        let wards = partition("wards");
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock(&wards));
        assert!(other.await.is_ok());
        // The same partition waits until the first run ends.
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { drop(locks.lock(&partition("appeals")).await) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        let _again = locks.lock(&partition("appeals")).await;
        assert_eq!(
            locks.locks.lock().unwrap().len(),
            1,
            "idle locks are forgotten"
        );
    }
}
