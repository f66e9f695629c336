//! Delivery through real SQS on moto: poison messages and duplicate deliveries handled by two
//! consumers at once.
//!
//! - Poison messages (undecodable JSON, an unknown message version, a table the pipeline does
//!   not have, a partition that does not exist) reach their stage's dead-letter queue with the
//!   reason in the `failure_reason` attribute, on their first receive (within the queue's
//!   configured receives), while good messages on the same queues flow on and publish.
//! - The same message delivered three times, the deliveries split between two consumers (two
//!   sets of stage instances, as two ECS tasks would be) and handled at the same moment, at every
//!   stage: the published result is the result of one delivery: one partition per layer and
//!   night, the snapshot equal to what the API holds, every id once, and every partition the
//!   files of one whole run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::messages::{self, IngestMode, IngestRequest, PartitionReady};
use common::publish::published_partitions;
use common::queue::Received;
use common::runner::{Disposition, RunnerSettings};
use e2e::fault_proxy::{FaultPlan, FaultProxy, StageRunners};
use e2e::watcher::Watcher;
use e2e::{MotoDeployment, STAGES, expected_snapshot, moto};
use tascomi_sim::{SimApi, SimConfig, SimHandle};

const TABLES: [&str; 2] = ["appeals", "contacts"];

fn pipeline() -> PipelineFile {
    PipelineFile::parse("tables:\n  appeals: daily\n  contacts: daily\n", "test").unwrap()
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        visibility_timeout: Duration::from_secs(120),
        wait_time: Duration::ZERO,
        retry_base: Duration::from_secs(1),
        ..RunnerSettings::default()
    }
}

fn ingest_request(table: &str, today: chrono::NaiveDate) -> String {
    messages::encode(&IngestRequest {
        table: table.parse().unwrap(),
        mode: IngestMode::Incremental,
        requested_by: "test".into(),
        as_of: Some(today),
        since: None,
    })
}

struct Setup {
    sim: SimHandle,
    deployment: MotoDeployment,
    dictionary: ColumnTypes,
    first: chrono::NaiveDate,
}

async fn setup(sdk: &aws_config::SdkConfig) -> Setup {
    let dictionary = ColumnTypes::load(&tascomi_sim::production_dictionary_path()).unwrap();
    let config = SimConfig {
        dictionary: dictionary.clone(),
        ..SimConfig::default()
    };
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    let deployment = MotoDeployment::new(sdk, &sim, &pipeline(), dictionary.clone()).await;
    Setup {
        sim,
        deployment,
        dictionary,
        first,
    }
}

/// Handles deliveries of `stage` all at once, as one consumer.
async fn handle_all(
    runners: &StageRunners,
    stage: usize,
    deliveries: Vec<Received>,
) -> Vec<Disposition> {
    futures::future::join_all(deliveries.into_iter().map(|d| runners.process(stage, d))).await
}

/// Every message left in every stage's dead-letter queue: (stage, body, failure_reason).
async fn dead_letters(deployment: &MotoDeployment) -> Vec<(&'static str, String, String)> {
    let mut all = Vec::new();
    for (stage, q) in STAGES.iter().zip(&deployment.queues) {
        loop {
            let batch = q.dead_letter.receive(10, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let reason = m
                    .attributes
                    .get("failure_reason")
                    .cloned()
                    .unwrap_or_default();
                all.push((*stage, m.body.clone(), reason));
                q.dead_letter.acknowledge(&m.receipt).await.unwrap();
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_reason_while_good_ones_publish() {
    let Some(sdk) = moto().await else { return };
    let started = Instant::now();
    let s = setup(&sdk).await;
    let today = s.first;
    s.sim.set_today(today);
    let stages = StageRunners::new(
        &sdk,
        &s.deployment,
        &s.sim,
        &pipeline(),
        s.dictionary.clone(),
        &settings(),
    );
    let layout = &s.deployment.platform.layout;
    let appeals: TableName = "appeals".parse().unwrap();
    // A day the pipeline never ran: no partition of it exists in any layer.
    let missing_day = today - chrono::Duration::days(3);
    let missing = |layer: Layer| {
        let partition = layout.partition(&appeals, layer, missing_day);
        let location = format!("s3://{}/{}", partition.bucket, partition.key_prefix());
        messages::encode(&PartitionReady::new(
            &partition,
            location,
            "0190f0c2a1b27c3d8e9f0a1b2c3d4e5f".into(),
            Some(missing_day),
        ))
    };
    let unknown_version =
        ingest_request("appeals", today).replace("\"version\":1", "\"version\":2");
    assert!(unknown_version.contains("\"version\":2"));
    // (stage, body, what the reason must say)
    let poison: Vec<(usize, String, &str)> = vec![
        (
            0,
            "{\"version\":1,\"type\":\"ingest_req".into(),
            "not a JSON object",
        ),
        (0, unknown_version.clone(), "version 2 is not supported"),
        (
            0,
            ingest_request("wards", today),
            "\"wards\" is not configured",
        ),
        (1, "not json at all".into(), "not a JSON object"),
        (
            1,
            missing(Layer::Raw).replace("\"version\":1", "\"version\":7"),
            "version 7 is not supported",
        ),
        (1, missing(Layer::Raw), "is not published in the catalog"),
        (2, missing(Layer::Parsed), "is not published in the catalog"),
        (3, "[1, 2, 3]".into(), "not a JSON object"),
        (
            3,
            missing(Layer::Raw),
            "takes increment partitions (and carry-forward requests), not raw",
        ),
        (
            3,
            missing(Layer::Increment),
            "is not published in the catalog",
        ),
    ];
    // Good and poison messages interleaved on the same queues.
    let ingest = &s.deployment.queues[0].input;
    ingest
        .send(&ingest_request("appeals", today), &BTreeMap::new())
        .await
        .unwrap();
    for (stage, body, _) in &poison {
        s.deployment.queues[*stage]
            .input
            .send(body, &BTreeMap::new())
            .await
            .unwrap();
    }
    ingest
        .send(&ingest_request("contacts", today), &BTreeMap::new())
        .await
        .unwrap();

    let dispositions = stages.settle(&s.deployment, Duration::from_secs(180)).await;
    let dead: Vec<&String> = dispositions
        .iter()
        .filter_map(|d| match d {
            Disposition::DeadLettered(reason) => Some(reason),
            _ => None,
        })
        .collect();
    let retried = dispositions
        .iter()
        .filter(|d| matches!(d, Disposition::Retrying { .. }))
        .count();
    assert_eq!(dead.len(), poison.len(), "{dispositions:?}");
    assert_eq!(retried, 0, "poison is permanent: {dispositions:?}");
    assert!(
        !dispositions
            .iter()
            .any(|d| matches!(d, Disposition::Discarded(_))),
        "{dispositions:?}"
    );

    // Each poison message is in its own stage's dead-letter queue, body unchanged, with why.
    let letters = dead_letters(&s.deployment).await;
    assert_eq!(letters.len(), poison.len(), "{letters:#?}");
    for (stage, body, reason) in &poison {
        let found = letters
            .iter()
            .find(|(s, b, _)| *s == STAGES[*stage] && b == body)
            .unwrap_or_else(|| panic!("{body} not in the {} dead-letter queue", STAGES[*stage]));
        assert!(
            found.2.contains(reason),
            "{}: reason {:?} does not say {reason:?}",
            STAGES[*stage],
            found.2
        );
    }
    // The good messages published through every layer.
    for table in TABLES {
        assert_eq!(
            s.deployment.snapshot(table, today).await,
            expected_snapshot(&s.sim, table, today),
            "{table}"
        );
    }
    eprintln!(
        "poison: {} poison messages dead-lettered on their first receive, 2 good requests \
         published, {:.0?}",
        poison.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_to_two_consumers_at_once_publishes_what_one_delivery_does() {
    let Some(sdk) = moto().await else { return };
    let started = Instant::now();
    let s = setup(&sdk).await;
    let pipeline = pipeline();
    // Two consumers of every queue, with their own clients and stage instances.
    let consumers = [0, 1].map(|_| {
        StageRunners::new(
            &sdk,
            &s.deployment,
            &s.sim,
            &pipeline,
            s.dictionary.clone(),
            &settings(),
        )
    });
    let tables: Vec<TableName> = TABLES.iter().map(|t| t.parse().unwrap()).collect();
    let watcher = Watcher::spawn(s.deployment.platform.clone(), tables.clone());
    const COPIES: usize = 3;
    const NIGHTS: i64 = 2;
    let (mut done, mut discarded) = (0, 0);
    for night in 0..NIGHTS {
        let today = s.first + chrono::Duration::days(night);
        s.sim.set_today(today);
        for table in TABLES {
            for _ in 0..COPIES {
                s.deployment.queues[0]
                    .input
                    .send(&ingest_request(table, today), &BTreeMap::new())
                    .await
                    .unwrap();
            }
        }
        // Stage by stage: take every delivery off the queue, deal them out to the two
        // consumers alternately, and let both handle theirs at the same moment.
        // Every copy reaches every stage: each stage sends one message per handled copy.
        let mut arriving = COPIES * TABLES.len();
        for (stage, name) in STAGES.iter().enumerate() {
            let queue = &s.deployment.queues[stage].input;
            let mut deliveries = Vec::new();
            while deliveries.len() < arriving {
                let batch = queue.receive(10, Duration::from_secs(1)).await.unwrap();
                assert!(!batch.is_empty(), "{name}: {} deliveries", deliveries.len());
                deliveries.extend(batch);
            }
            let mut shares = [Vec::new(), Vec::new()];
            for (i, delivery) in deliveries.into_iter().enumerate() {
                shares[i % 2].push(delivery);
            }
            let [a, b] = shares;
            let (a, b) = tokio::join!(
                handle_all(&consumers[0], stage, a),
                handle_all(&consumers[1], stage, b)
            );
            // A copy finds its work done (the snapshot already holds its increment): it is
            // acknowledged as nothing to do. Nothing is retried or dead-lettered.
            arriving = 0;
            for disposition in a.iter().chain(&b) {
                match disposition {
                    Disposition::Done { sent } => {
                        done += 1;
                        arriving += sent;
                    }
                    Disposition::Discarded(_) => discarded += 1,
                    other => panic!("{name} night {night}: {other:?}"),
                }
            }
        }
        assert!(dead_letters(&s.deployment).await.is_empty());
        for q in &s.deployment.queues[..4] {
            let depth = q.input.depth().await.unwrap();
            assert_eq!(depth.visible + depth.in_flight, 0, "{}", q.url);
        }
        for table in TABLES {
            assert_eq!(
                s.deployment.snapshot(table, today).await,
                expected_snapshot(&s.sim, table, today),
                "{table} on {today}"
            );
        }
    }
    let seen = watcher.stop().await;
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    // One partition per night in every layer: duplicates replaced, never added.
    for table in &tables {
        for layer in Layer::ALL {
            let any = s
                .deployment
                .platform
                .layout
                .partition(table, layer, s.first);
            let partitions = published_partitions(s.deployment.platform.catalog.as_ref(), &any)
                .await
                .unwrap();
            assert_eq!(partitions.len() as i64, NIGHTS, "{table} {layer}");
        }
    }
    eprintln!(
        "concurrent delivery: {NIGHTS} nights x {} tables x {COPIES} copies: {done} deliveries \
         done and {discarded} found nothing to do, by two consumers at once; watcher {} rounds, \
         {} complete, {} superseded, 0 violations; {:.0?}",
        TABLES.len(),
        seen.rounds,
        seen.complete,
        seen.superseded,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_transiently_is_dead_lettered_with_its_reason_on_the_last_receive()
 {
    let Some(sdk) = moto().await else { return };
    let started = Instant::now();
    let s = setup(&sdk).await;
    let today = s.first;
    s.sim.set_today(today);
    // The ingest stage's storage and catalog answer 500 to everything (its queue works): every
    // receive of its message fails transiently and is left for redelivery. The deployment's
    // queues redrive after 3 receives (MotoDeployment), and the runner is told so: on the third
    // receive it dead-letters the message itself, with the reason.
    let upstream = sdk.endpoint_url().expect("moto's endpoint").to_owned();
    let outage = FaultPlan {
        internal_error: 1.0,
        spare_sqs: true,
        ..FaultPlan::none()
    };
    let proxy = FaultProxy::start(&upstream, outage).await.unwrap();
    let proxied = proxy
        .sdk_config(&sdk)
        .to_builder()
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(50)))
        .build();
    let broken = StageRunners::new(
        &proxied,
        &s.deployment,
        &s.sim,
        &pipeline(),
        s.dictionary.clone(),
        &RunnerSettings {
            max_receives: 3,
            ..settings()
        },
    );
    let body = ingest_request("appeals", today);
    s.deployment.queues[0]
        .input
        .send(&body, &BTreeMap::new())
        .await
        .unwrap();

    let mut receives = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let batch = s.deployment.queues[0]
            .input
            .receive(1, Duration::from_secs(1))
            .await
            .unwrap();
        for delivery in batch {
            let receive = delivery.receive_count;
            receives.push(receive);
            let disposition = broken.process(0, delivery).await;
            if receive < 3 {
                assert!(
                    matches!(&disposition, Disposition::Retrying { reason, .. } if reason.contains("InternalError")),
                    "{disposition:?}"
                );
            } else {
                assert!(
                    matches!(&disposition, Disposition::DeadLettered(reason) if reason.contains("after 3 receives") && reason.contains("InternalError")),
                    "{disposition:?}"
                );
            }
        }
        let depth = s.deployment.queues[0].input.depth().await.unwrap();
        if depth.visible + depth.in_flight == 0 {
            break;
        }
    }
    assert_eq!(
        receives,
        [1, 2, 3],
        "the configured receives, then the dead-letter queue"
    );
    let letters = dead_letters(&s.deployment).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0].0, &letters[0].1), ("ingest", &body));
    // The runner moved it, with the last error as the reason.
    assert!(
        letters[0].2.contains("still failing after 3 receives")
            && letters[0].2.contains("InternalError"),
        "{:?}",
        letters[0].2
    );
    assert!(proxy.counts().internal_errors > 0);
    eprintln!(
        "transient poison: {} receives, then dead-lettered with its reason; {}; {:.0?}",
        receives.len(),
        proxy.counts(),
        started.elapsed()
    );
}
