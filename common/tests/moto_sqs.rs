//! `SqsQueue` against the moto server: delivery, attributes, visibility, redrive, depth.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use common::queue::{Queue, QueueDepth, SqsQueue};

const SHORT: Duration = Duration::from_millis(0);

/// A fresh queue (visibility timeout `visibility_secs`) with a dead-letter queue after two
/// receives.
async fn queues(visibility_secs: u32) -> Option<(SqsQueue, SqsQueue)> {
    let config = support::moto().await?;
    let name = support::unique("tascomi-q");
    let (url, dlq_url) =
        SqsQueue::create_queue_with_dlq(&config, &name, &format!("{name}-dlq"), 2, visibility_secs)
            .await
            .unwrap();
    Some((SqsQueue::new(&config, url), SqsQueue::new(&config, dlq_url)))
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn sends_receives_and_acknowledges() {
    let Some((queue, _dlq)) = queues(30).await else {
        return;
    };
    assert!(queue.name().starts_with("tascomi-q-"));
    assert!(!queue.name().contains('/'));
    queue.send(r#"{"v":1}"#, &BTreeMap::new()).await.unwrap();

    let got = queue.receive(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, r#"{"v":1}"#);
    assert_eq!(got[0].receive_count, 1);
    assert!(got[0].attributes.is_empty());

    queue.acknowledge(&got[0].receipt).await.unwrap();
    // Acknowledging twice is not an error (a retried delete after a lost response).
    queue.acknowledge(&got[0].receipt).await.unwrap();
    assert!(queue.receive(10, SHORT).await.unwrap().is_empty());
    assert_eq!(queue.depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn string_attributes_round_trip() {
    let Some((queue, _dlq)) = queues(30).await else {
        return;
    };
    let sent = attrs(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("kind", "partition-ready"),
    ]);
    queue.send("body", &sent).await.unwrap();
    let got = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes, sent);
}

#[tokio::test]
async fn an_unacknowledged_message_comes_back_after_its_visibility_timeout() {
    let Some((queue, _dlq)) = queues(1).await else {
        return;
    };
    queue.send("again", &BTreeMap::new()).await.unwrap();
    let first = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        queue.receive(1, SHORT).await.unwrap().is_empty(),
        "hidden while in flight"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message_id, first[0].message_id);
    assert_eq!(second[0].receive_count, 2);
    queue.acknowledge(&second[0].receipt).await.unwrap();
}

#[tokio::test]
async fn extending_visibility_keeps_a_message_hidden() {
    let Some((queue, _dlq)) = queues(1).await else {
        return;
    };
    queue.send("long job", &BTreeMap::new()).await.unwrap();
    let got = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    queue
        .extend_visibility(&got[0].receipt, Duration::from_secs(30))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        queue
            .receive(1, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        queue.depth().await.unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 1
        }
    );
    queue.acknowledge(&got[0].receipt).await.unwrap();
}

#[tokio::test]
async fn a_message_received_too_often_moves_to_the_dead_letter_queue() {
    let Some((queue, dlq)) = queues(1).await else {
        return;
    };
    queue
        .send("poison", &attrs(&[("kind", "ingest-request")]))
        .await
        .unwrap();
    for count in 1..=2 {
        let got = queue.receive(1, Duration::from_secs(2)).await.unwrap();
        assert_eq!(got.len(), 1, "delivery {count}");
        assert_eq!(got[0].receive_count, count);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // The third receive finds it over maxReceiveCount = 2 and moves it instead of delivering.
    assert!(
        queue
            .receive(1, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    let dead = dlq.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].attributes, attrs(&[("kind", "ingest-request")]));
}

#[tokio::test]
async fn depth_counts_waiting_and_in_flight_messages() {
    let Some((queue, _dlq)) = queues(30).await else {
        return;
    };
    for body in ["a", "b", "c"] {
        queue.send(body, &BTreeMap::new()).await.unwrap();
    }
    let got = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        queue.depth().await.unwrap(),
        QueueDepth {
            visible: 2,
            in_flight: 1
        }
    );
}

#[tokio::test]
async fn creating_queues_twice_is_idempotent() {
    let Some(config) = support::moto().await else {
        return;
    };
    let name = support::unique("tascomi-q");
    let dlq = format!("{name}-dlq");
    let first = SqsQueue::create_queue_with_dlq(&config, &name, &dlq, 3, 60)
        .await
        .unwrap();
    let second = SqsQueue::create_queue_with_dlq(&config, &name, &dlq, 5, 120)
        .await
        .unwrap();
    assert_eq!(first, second);

    // The second call's settings win: a changed setting is applied, not refused.
    let attributes = aws_sdk_sqs::Client::new(&config)
        .get_queue_attributes()
        .queue_url(&first.0)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "120");
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&dlq)
    );
}
