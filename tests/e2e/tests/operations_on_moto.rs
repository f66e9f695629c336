//! The operator's commands on a deployment (SQS, S3, Glue on moto): status, drift, replay,
//! reset, rollback and redrive, with the stages' runners playing the ECS services.

use std::collections::BTreeMap;

use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{TableName, date_value};
use common::messages::{self, IngestMode, IngestRequest};
use ctl::ops;
use ctl::stage::Stage;
use ctl::target::{AwsTarget, Target};
use e2e::{MotoDeployment, expected_snapshot, moto};
use tascomi_sim::{SimApi, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_act_on_a_deployment() {
    let Some(sdk) = moto().await else { return };
    let dictionary = ColumnTypes::load(&tascomi_sim::production_dictionary_path()).unwrap();
    let pipeline = PipelineFile::parse("tables:\n  appeals: daily\n", "test").unwrap();
    let config = SimConfig {
        dictionary: dictionary.clone(),
        ..SimConfig::default()
    };
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    let deployment = MotoDeployment::new(&sdk, &sim, &pipeline, dictionary.clone()).await;
    let appeals = TableName::new("appeals").unwrap();
    let days: Vec<_> = (0..3).map(|i| first + chrono::Duration::days(i)).collect();
    for day in &days {
        sim.set_today(*day);
        let request = IngestRequest {
            table: appeals.clone(),
            mode: IngestMode::Incremental,
            requested_by: "test".into(),
            as_of: Some(*day),
            since: None,
        };
        deployment.queues[0]
            .input
            .send(&messages::encode(&request), &BTreeMap::new())
            .await
            .unwrap();
        deployment.settle().await;
    }
    let last = days[2];
    let before = deployment.snapshot("appeals", last).await;
    assert_eq!(before, expected_snapshot(&sim, "appeals", last));

    let target = Target::Aws(Box::new(
        AwsTarget::from_env(&deployment.env, pipeline.clone())
            .await
            .unwrap(),
    ));

    // status: every layer's latest partition and the queues.
    let report = ctl::cli::status_report(&target, last).await.unwrap();
    assert_eq!(report.matches(&date_value(last)).count(), 4, "{report}");
    assert!(
        report.contains("ingest") && report.contains("snapshot"),
        "{report}"
    );

    // drift: the simulated data matches the dictionary.
    let drift = ops::drift(&target, &dictionary).await.unwrap();
    assert!(drift.iter().all(ops::Drift::is_empty), "{drift:?}");

    // replay recast from the second day: the same snapshot comes back, republished.
    let replay = ops::replay_messages(
        &target,
        Stage::Recast,
        std::slice::from_ref(&appeals),
        days[1],
        None,
        Some(last),
    )
    .await
    .unwrap();
    assert_eq!(replay.len(), 2);
    ops::send_all(&target, Stage::Recast, &replay)
        .await
        .unwrap();
    deployment.settle().await;
    assert_eq!(deployment.snapshot("appeals", last).await, before);

    // reset parse from the second day: parsed, increment and snapshot partitions from then on
    // are removed, then rebuilt by the replay.
    let plan = ops::plan_reset(&target, &appeals, Stage::Parse, days[1], Some(last))
        .await
        .unwrap();
    let text = plan.describe();
    assert_eq!(
        text.matches("unpublish and remove appeals parsed").count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("unpublish and remove appeals snapshot")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(plan.replay.len(), 2, "{text}");
    plan.execute(&target).await.unwrap();
    assert_eq!(deployment.snapshot_dates("appeals").await, vec![days[0]]);
    deployment.settle().await;
    assert_eq!(
        deployment.snapshot_dates("appeals").await,
        vec![days[0], last]
    );
    assert_eq!(deployment.snapshot("appeals", last).await, before);

    // rollback to the first day.
    let plan = ops::plan_rollback(&target, &appeals, days[0])
        .await
        .unwrap();
    assert_eq!(plan.remove.len(), 1);
    plan.execute(&target).await.unwrap();
    assert_eq!(deployment.snapshot_dates("appeals").await, vec![days[0]]);
    assert!(
        ops::plan_rollback(&target, &appeals, days[2])
            .await
            .is_err()
    );

    // redrive: a message parked in parse's dead-letter queue goes back and is handled.
    let message = &ops::replay_messages(
        &target,
        Stage::Parse,
        std::slice::from_ref(&appeals),
        last,
        None,
        Some(last),
    )
    .await
    .unwrap()[0];
    let reason = BTreeMap::from([("failure_reason".to_string(), "test".to_string())]);
    deployment.queues[1]
        .dead_letter
        .send(&messages::encode(message), &reason)
        .await
        .unwrap();
    let moved = target.redrive(Stage::Parse).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].reason(), "test");
    deployment.settle().await;
    assert_eq!(
        deployment.snapshot_dates("appeals").await,
        vec![days[0], last]
    );
    assert_eq!(deployment.snapshot("appeals", last).await, before);
    assert!(deployment.dead_letters().await.is_empty());
    sim.stop().await;
}
