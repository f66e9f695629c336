//! Storage faults: the four stages run with their S3, SQS and Glue clients pointed at a
//! fault-injecting proxy in front of moto (`e2e::fault_proxy`), which answers a seeded share of
//! the requests with `500 InternalError`, `503 SlowDown`, a connection closed before the request
//! reached moto, or a connection closed after moto applied it (the answer lost). The SDK retries
//! some, the runner retries the rest (a transient failure leaves the message on its queue).
//!
//! Must hold: every night completes with nothing dead-lettered, the snapshot equals what the
//! API holds (no row missing, none doubled), every layer has one partition per night, and a
//! watcher reading the catalog all along only ever sees complete partitions of one run each.
//!
//! `TASCOMI_RELIABILITY_LONG=1` runs four nights with three seeds; `TASCOMI_FAULT_SEED` changes
//! the seed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::messages::{self, IngestMode, IngestRequest};
use common::publish::published_partitions;
use common::queue::SqsQueue;
use common::runner::{Disposition, RunnerSettings};
use e2e::fault_proxy::{FaultCounts, FaultPlan, FaultProxy, StageRunners};
use e2e::watcher::Watcher;
use e2e::{MotoDeployment, STAGES, expected_snapshot, moto};
use tascomi_sim::{SimApi, SimConfig};

const TABLES: [&str; 2] = ["appeals", "contacts"];
const DEFAULT_SEED: u64 = 0x5707_a6e5;

fn env_flag(name: &str) -> Option<String> {
    common::config::Env::from_process()
        .get(name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// 15 % of the requests fail: 5 % 500, 4 % 503, 3 % dropped, 3 % answers lost.
fn plan(seed: u64) -> FaultPlan {
    FaultPlan {
        seed,
        internal_error: 0.05,
        slow_down: 0.04,
        drop_request: 0.03,
        lose_response: 0.03,
        spare_sqs: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_behind_a_faulty_storage_retry_and_publish_whole_partitions_only() {
    let Some(sdk) = moto().await else { return };
    let long = env_flag("TASCOMI_RELIABILITY_LONG").is_some_and(|v| v == "1");
    let seed: u64 = env_flag("TASCOMI_FAULT_SEED")
        .map(|s| s.parse().expect("TASCOMI_FAULT_SEED is a number"))
        .unwrap_or(DEFAULT_SEED);
    let (seeds, nights) = if long {
        (vec![seed, seed + 1, seed + 2], 4)
    } else {
        (vec![seed], 2)
    };
    let mut total = FaultCounts::default();
    for seed in seeds {
        let started = Instant::now();
        let counts = one_trial(&sdk, seed, nights).await;
        eprintln!(
            "storage faults, seed {seed}, {nights} nights, {:.0?}: {counts}",
            started.elapsed()
        );
        total.requests += counts.requests;
        total.internal_errors += counts.internal_errors;
        total.slow_downs += counts.slow_downs;
        total.dropped_requests += counts.dropped_requests;
        total.lost_responses += counts.lost_responses;
    }
    assert!(total.faults() > 0);
}

async fn one_trial(sdk: &aws_config::SdkConfig, seed: u64, nights: i64) -> FaultCounts {
    let dictionary = ColumnTypes::load(&tascomi_sim::production_dictionary_path()).unwrap();
    let pipeline =
        PipelineFile::parse("tables:\n  appeals: daily\n  contacts: daily\n", "test").unwrap();
    let config = SimConfig {
        dictionary: dictionary.clone(),
        ..SimConfig::default()
    };
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    let deployment = MotoDeployment::new(sdk, &sim, &pipeline, dictionary.clone()).await;
    // As deployed (infra: max_receive_count 5), with a short visibility timeout so that a lost
    // acknowledgement or a lost receive costs seconds, not minutes.
    for stage in STAGES {
        let queue = format!("{}-{stage}", deployment.unique);
        SqsQueue::create_queue_with_dlq(sdk, &queue, &format!("{queue}-dlq"), 5, 10)
            .await
            .unwrap();
    }

    let upstream = sdk.endpoint_url().expect("moto's endpoint").to_owned();
    let proxy = FaultProxy::start(&upstream, plan(seed)).await.unwrap();
    let settings = RunnerSettings {
        visibility_timeout: Duration::from_secs(10),
        wait_time: Duration::ZERO,
        retry_base: Duration::from_secs(1),
        ..RunnerSettings::default()
    };
    // The SDK's own retries (3 attempts, as deployed) with a shorter first backoff than its
    // 1 s default, so that some 150 faults cost seconds, not minutes.
    let proxied = proxy
        .sdk_config(sdk)
        .to_builder()
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(100)))
        .build();
    let stages = StageRunners::new(
        &proxied,
        &deployment,
        &sim,
        &pipeline,
        dictionary,
        &settings,
    );
    let tables: Vec<TableName> = TABLES.iter().map(|t| t.parse().unwrap()).collect();
    // The watcher reads through moto directly: it plays Athena, not a stage.
    let watcher = Watcher::spawn(deployment.platform.clone(), tables.clone());

    let mut retried = 0;
    for night in 0..nights {
        let today = first + chrono::Duration::days(night);
        sim.set_today(today);
        for table in &tables {
            let request = IngestRequest {
                table: table.clone(),
                mode: IngestMode::Incremental,
                requested_by: "test".into(),
                as_of: Some(today),
                since: None,
            };
            deployment.queues[0]
                .input
                .send(&messages::encode(&request), &BTreeMap::new())
                .await
                .unwrap();
        }
        let dispositions = stages.settle(&deployment, Duration::from_secs(300)).await;
        retried += dispositions
            .iter()
            .filter(|d| matches!(d, Disposition::Retrying { .. }))
            .count();
        assert!(
            !dispositions
                .iter()
                .any(|d| matches!(d, Disposition::DeadLettered(_))),
            "seed {seed} night {night}: {dispositions:?}"
        );
        assert_eq!(
            deployment.dead_letters().await,
            Vec::<String>::new(),
            "seed {seed} night {night}"
        );
        for table in TABLES {
            assert_eq!(
                deployment.snapshot(table, today).await,
                expected_snapshot(&sim, table, today),
                "seed {seed}: {table} on {today}"
            );
        }
    }
    let counts = proxy.counts();
    let seen = watcher.stop().await;
    eprintln!(
        "seed {seed}: {retried} messages left for a retry by the runner; watcher: {} rounds, \
         {} complete, {} superseded, {} violations",
        seen.rounds,
        seen.complete,
        seen.superseded,
        seen.violations.len()
    );
    assert!(
        seen.violations.is_empty(),
        "seed {seed}: {:?}",
        seen.violations
    );
    assert!(seen.complete > 0, "the watcher saw partitions");

    // One partition per night in every layer: retries replaced, never added.
    for table in &tables {
        for layer in Layer::ALL {
            let any = deployment.platform.layout.partition(table, layer, first);
            let partitions = published_partitions(deployment.platform.catalog.as_ref(), &any)
                .await
                .unwrap();
            assert_eq!(partitions.len() as i64, nights, "{table} {layer}");
        }
    }
    // A fault share that means something: at least one fault of every kind.
    assert!(
        counts.internal_errors > 0
            && counts.slow_downs > 0
            && counts.dropped_requests > 0
            && counts.lost_responses > 0,
        "{counts}"
    );
    sim.stop().await;
    counts
}
