//! Every table has a snapshot of every day, and every published snapshot is announced.
//!
//! - A table not fetched tonight (a weekly table on another night) gets today's snapshot from a
//!   carry-forward request: its latest snapshot's files copied server-side to today's date and
//!   registered in the catalog; idempotent on replay; never over a hole; nothing done for a table
//!   without a snapshot yet.
//! - Each publication puts exactly one "Tascomi snapshot published" event with the partition's
//!   table, date, location and rows; a failed put is retried and made good by the retry.
//!
//! Run on the embedded default (local files and catalog) and on moto (S3 `CopyObject`, Glue),
//! which is skipped without `AWS_ENDPOINT_URL` (`scripts/test.sh` starts moto).
#![allow(clippy::print_stdout)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use common::events::{LocalEventSink, SNAPSHOT_PUBLISHED, SOURCE, SnapshotPublished};
use common::layout::{Layer, date_value, london_today};
use common::messages::{self, PartitionReady};

use common::queue::{MemoryQueue, Queue};
use common::runner::{Disposition, Failure, Handler, Runner, RunnerSettings};
use common::storage::split_s3_uri;
use snapshot_svc::SnapshotStage;
use snapshot_svc::plan::parameters;
use support::{
    Lake, day, increment, publish_raw, published, published_hours_ago, read_snapshot, records,
    small_settings, table,
};

/// The stage of the scenarios, announcing to a sink the test keeps.
fn stage_with_events(lake: &Lake) -> (SnapshotStage, LocalEventSink) {
    let events = LocalEventSink::new();
    let stage = SnapshotStage::new(
        lake.platform.clone(),
        support::pipeline("id"),
        small_settings(),
    )
    .with_events(Arc::new(events.clone()));
    (stage, events)
}

/// The carry-forward request of `date`, as the operator command would send it.
fn carry_forward(lake: &Lake, date: NaiveDate) -> PartitionReady {
    PartitionReady::carry_forward(&lake.platform.layout, &table(), "schedule", Some(date))
}

async fn handled(stage: &SnapshotStage, message: PartitionReady) -> PartitionReady {
    match stage.handle(message).await {
        Ok(mut next) => {
            assert_eq!(next.len(), 1);
            next.remove(0)
        }
        Err(failure) => panic!("snapshot failed: {failure}"),
    }
}

async fn discarded(stage: &SnapshotStage, message: PartitionReady) -> String {
    match stage.handle(message).await {
        Err(Failure::Discard(reason)) => reason,
        other => panic!("expected nothing to do, got {other:?}"),
    }
}

/// The objects of a published partition.
async fn files_of(lake: &Lake, location: &str) -> Vec<String> {
    let (bucket, prefix) = split_s3_uri(location).unwrap();
    let objects = lake.platform.storage.list(bucket, prefix).await.unwrap();
    objects.into_iter().map(|o| o.key).collect()
}

// ---------------------------------------------------------------- scenarios

/// Sunday's load makes Sunday's snapshot; Monday and Tuesday, not fetched, get theirs carried
/// forward: the same rows, each file copied (none rewritten), registered under their own date.
/// A replayed request changes nothing.
async fn a_table_not_fetched_is_carried_forward_every_night(lake: &Lake) {
    let (stage, events) = stage_with_events(lake);
    let sunday = increment(lake, day(1), &records(1..=45, "v1"), day(1)).await;
    handled(&stage, sunday).await;
    let base = read_snapshot(&lake.platform, day(1)).await;
    assert_eq!(base.keys.len(), 5, "45 rows at 10 per file");

    let monday = handled(&stage, carry_forward(lake, day(2))).await;
    assert_eq!(monday.layer, Layer::Snapshot);
    assert!(
        !monday.carry_forward,
        "downstream hears an ordinary partition_ready"
    );
    assert_eq!(monday.partition["snapshot_date"], "20261102");
    let carried = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(monday.location, carried.location);
    assert_eq!(carried.ids(), base.ids());
    assert_eq!(carried.rows(), 45);
    assert_eq!(carried.parameter(parameters::COPIED_FILES), "5");
    assert_eq!(carried.parameter(parameters::REWRITTEN_FILES), "0");
    assert_eq!(
        carried.parameter(parameters::BASE_SNAPSHOT_DATE),
        "20261101"
    );
    assert_eq!(carried.parameter(parameters::APPLIED_INCREMENTS), "");
    assert_eq!(
        carried.parameter(parameters::INCLUDED_INCREMENTS),
        base.parameter(parameters::INCLUDED_INCREMENTS)
    );
    assert_ne!(carried.location, base.location);
    assert!(carried.location.contains("/snapshot_date=20261102/"));
    assert_eq!(files_of(lake, &carried.location).await.len(), 5);
    // The base is untouched.
    assert_eq!(files_of(lake, &base.location).await.len(), 5);

    // Delivered twice: nothing more is written.
    let reason = discarded(&stage, carry_forward(lake, day(2))).await;
    assert!(reason.contains("already in today's snapshot"), "{reason}");
    assert_eq!(
        read_snapshot(&lake.platform, day(2)).await.location,
        carried.location
    );

    // Tuesday carries Monday's forward.
    handled(&stage, carry_forward(lake, day(3))).await;
    let tuesday = read_snapshot(&lake.platform, day(3)).await;
    assert_eq!(tuesday.ids(), base.ids());
    assert_eq!(
        tuesday.parameter(parameters::BASE_SNAPSHOT_DATE),
        "20261102"
    );

    // One announcement per publication, and one more for the replay (at least once).
    let announced: Vec<String> = events
        .snapshots_published()
        .into_iter()
        .map(|e| e.snapshot_date)
        .collect();
    assert_eq!(announced, ["20261101", "20261102", "20261102", "20261103"]);
}

/// Monday's import reached raw but not parse (a night killed half-way, long ago): Tuesday's
/// carry-forward is not built on that hole; it is refused, naming the repair, and publishes
/// nothing.
async fn a_carry_forward_is_never_built_on_a_hole(lake: &Lake) {
    let (stage, events) = stage_with_events(lake);
    let sunday = increment(lake, day(1), &records(1..=12, "v1"), day(1)).await;
    handled(&stage, sunday).await;
    publish_raw(&lake.platform, day(2), "incremental").await;
    published_hours_ago(&lake.platform, Layer::Raw, day(2), 30).await;

    let text = match stage.handle(carry_forward(lake, day(3))).await {
        Err(Failure::Permanent(err)) => format!("{err:#}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    };
    for expected in [
        "applications snapshot snapshot_date=20261103: not built on a hole, nothing published",
        "applications parsed import_date=20261102 is not published",
        "tascomi replay --stage parse --table applications --from 2026-11-02 --to 2026-11-02",
    ] {
        assert!(text.contains(expected), "expected {expected:?} in {text}");
    }
    assert!(
        published(&lake.platform, Layer::Snapshot, day(3))
            .await
            .is_none()
    );
    assert_eq!(
        events.recorded().len(),
        1,
        "only Sunday's snapshot was announced"
    );
}

/// A table without any snapshot yet (added to the pipeline file mid-week): nothing to carry
/// forward, nothing published, nothing announced; its first load makes its first snapshot.
async fn nothing_is_carried_forward_without_a_snapshot(lake: &Lake) {
    let (stage, events) = stage_with_events(lake);
    let reason = discarded(&stage, carry_forward(lake, day(2))).await;
    assert!(
        reason.contains("no snapshot before snapshot_date=20261102 to carry forward"),
        "{reason}"
    );
    assert!(
        published(&lake.platform, Layer::Snapshot, day(2))
            .await
            .is_none()
    );
    assert!(events.recorded().is_empty());
}

/// A published snapshot is announced once, with the partition's table, date, location and rows.
async fn a_published_snapshot_is_announced_once(lake: &Lake) {
    let (stage, events) = stage_with_events(lake);
    let night = increment(lake, day(1), &records(1..=23, "v1"), day(1)).await;
    let ready = handled(&stage, night).await;
    let snap = read_snapshot(&lake.platform, day(1)).await;

    let recorded = events.recorded();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].source, SOURCE);
    assert_eq!(recorded[0].detail_type, SNAPSHOT_PUBLISHED);
    assert_eq!(
        recorded[0].snapshot_published(),
        Some(SnapshotPublished {
            table: "applications".into(),
            snapshot_date: "20261101".into(),
            location: snap.location.clone(),
            rows: 23,
            run_id: snap.parameter("run_id").to_owned(),
        })
    );
    assert_eq!(ready.location, snap.location);
    assert!(snap.location.starts_with("s3://"));
}

/// The put fails after the snapshot is published: the message fails transiently (it stays on
/// the queue); its retry finds the snapshot published and announces it then.
async fn a_failed_announcement_is_made_good_by_the_retry(lake: &Lake) {
    let (stage, events) = stage_with_events(lake);
    let night = increment(lake, day(1), &records(1..=8, "v1"), day(1)).await;
    events.fail_next(1);
    match stage.handle(night.clone()).await {
        Err(Failure::Transient(err)) => {
            let text = format!("{err:#}");
            assert!(
                text.contains("applications snapshot snapshot_date=20261101 is published"),
                "{text}"
            );
            assert!(text.contains("but not announced"), "{text}");
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
    let snap = read_snapshot(&lake.platform, day(1)).await;
    assert!(events.recorded().is_empty());

    discarded(&stage, night).await;
    let announced = events.snapshots_published();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].location, snap.location);
    assert_eq!(announced[0].rows, 8);
    assert_eq!(announced[0].run_id, snap.parameter("run_id"));
}

/// The request exactly as the schedule sends it (no date: today in London), through the runner:
/// handled, today's snapshot published, "partition ready" sent downstream.
async fn the_scheduled_request_carries_to_today(lake: &Lake) {
    let (stage, events) = stage_with_events(lake);
    let today = london_today();
    let yesterday = today.pred_opt().unwrap();
    let night = increment(lake, yesterday, &records(1..=15, "v1"), yesterday).await;
    handled(&stage, night).await;

    // infra/modules/tascomi-pipeline/schedule.tf, aws_scheduler_schedule.carry_forward.
    let body = serde_json::json!({
        "version": 1,
        "type": "partition_ready",
        "table": "applications",
        "layer": "snapshot",
        "partition": {},
        "location": format!("s3://{}/planning/tascomi/snapshot/applications/", lake.platform.layout.refined_bucket),
        "run_id": "schedule",
        "carry_forward": true,
    })
    .to_string();
    let input = MemoryQueue::new("snapshot", Duration::from_secs(60));
    let next = MemoryQueue::new("downstream", Duration::from_secs(60));
    let dlq = MemoryQueue::new("snapshot-dlq", Duration::from_secs(60));
    let runner = Runner::new(
        Arc::new(stage),
        Arc::new(input.clone()),
        Some(Arc::new(next.clone())),
        Some(Arc::new(dlq.clone())),
        RunnerSettings {
            wait_time: Duration::from_millis(20),
            ..Default::default()
        },
    );
    input.send(&body, &BTreeMap::new()).await.unwrap();
    let done = runner.drain(Duration::from_millis(20)).await;
    assert_eq!(done, [Disposition::Done { sent: 1 }]);
    let sent: PartitionReady = messages::decode(&next.bodies()[0], |_| true).unwrap();
    assert_eq!(sent.partition["snapshot_date"], date_value(today));
    assert_eq!(read_snapshot(&lake.platform, today).await.rows(), 15);
    assert_eq!(events.recorded().len(), 2);
    assert!(dlq.bodies().is_empty());
}

// ---------------------------------------------------------------- lakes

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(lake) = super::support::local_lake().await else { return };
                    super::$name(&lake).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(lake) = super::support::moto_lake("carry").await else { return };
                    super::$name(&lake).await;
                }
            )*
        }
    };
}

on_both!(
    a_table_not_fetched_is_carried_forward_every_night,
    a_carry_forward_is_never_built_on_a_hole,
    nothing_is_carried_forward_without_a_snapshot,
    a_published_snapshot_is_announced_once,
    a_failed_announcement_is_made_good_by_the_retry,
    the_scheduled_request_carries_to_today,
);
