//! `EventBridgeSink` against the moto server: an event put on a bus reaches a queue through a
//! rule that matches what downstream jobs match (source and detail-type), with its detail intact.

mod support;

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use common::events::{Event, EventBridgeSink, EventSink, SnapshotPublished};
use common::queue::{Queue, SqsQueue};

fn published() -> SnapshotPublished {
    SnapshotPublished {
        table: "wards".into(),
        snapshot_date: "20261124".into(),
        location: "s3://refined/planning/tascomi/snapshot/wards/snapshot_year=2026/snapshot_month=11/snapshot_day=24/snapshot_date=20261124/run-0193/".into(),
        rows: 42,
        run_id: "0193".into(),
    }
}

#[tokio::test]
async fn a_put_event_reaches_a_rule_target() {
    let Some(config) = support::moto().await else {
        return;
    };
    let bus = support::unique("tascomi-bus");
    let sink = EventBridgeSink::new(&config, &bus);
    let events = sink.client();
    events.create_event_bus().name(&bus).send().await.unwrap();

    // The downstream job's side: a rule on the bus, targeting a queue.
    let queue_name = support::unique("tascomi-ev");
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .create_queue()
        .queue_name(&queue_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let pattern = serde_json::json!({
        "source": ["tascomi.pipeline"],
        "detail-type": ["Tascomi snapshot published"],
        "detail": {"table": ["wards"]},
    });
    events
        .put_rule()
        .name("wards-snapshot")
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("wards-snapshot")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    sink.put(&Event::from(&published())).await.unwrap();
    // Another table's event does not match the rule.
    let other = SnapshotPublished {
        table: "appeals".into(),
        ..published()
    };
    sink.put(&Event::from(&other)).await.unwrap();

    let queue = SqsQueue::new(&config, url);
    let mut bodies = Vec::new();
    for _ in 0..10 {
        bodies.extend(
            queue
                .receive(10, Duration::from_secs(1))
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.body),
        );
        if !bodies.is_empty() {
            break;
        }
    }
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let envelope: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(envelope["source"], "tascomi.pipeline");
    assert_eq!(envelope["detail-type"], "Tascomi snapshot published");
    let detail: SnapshotPublished = serde_json::from_value(envelope["detail"].clone()).unwrap();
    assert_eq!(detail, published());
}

#[tokio::test]
async fn a_put_on_a_missing_bus_fails_with_the_bus_named() {
    let Some(config) = support::moto().await else {
        return;
    };
    let bus = support::unique("no-such-bus");
    let sink = EventBridgeSink::new(&config, &bus);
    match sink.put(&Event::from(&published())).await {
        // AWS refuses the entry (ResourceNotFoundException in the entry's error code).
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains(&bus), "{text}");
            assert!(!err.transient, "{text}");
        }
        // moto accepts puts on any bus name: nothing to check beyond the call's success.
        Ok(()) => eprintln!("moto accepted a put on a missing bus"),
    }
}
