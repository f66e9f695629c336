//! The whole pipeline through the real AWS SDK against moto: four stages as `Runner`s over SQS,
//! S3 and Glue, fed by the simulated Tascomi API, two nights, every ingest request delivered
//! twice. The snapshot must equal what the API holds, once per id.

use std::collections::BTreeMap;
use std::time::Duration;

use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::messages::{self, IngestMode, IngestRequest};
use common::publish::published_partitions;
use e2e::{MotoDeployment, expected_snapshot, moto};
use tascomi_sim::{SimApi, SimConfig};

const TABLES: [&str; 2] = ["appeals", "contacts"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nights_with_duplicate_deliveries_publish_each_partition_once() {
    let Some(sdk) = moto().await else { return };
    let dictionary = ColumnTypes::load(&tascomi_sim::production_dictionary_path()).unwrap();
    let pipeline =
        PipelineFile::parse("tables:\n  appeals: daily\n  contacts: daily\n", "test").unwrap();
    let config = SimConfig {
        dictionary: dictionary.clone(),
        ..SimConfig::default()
    };
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    let deployment = MotoDeployment::new(&sdk, &sim, &pipeline, dictionary).await;

    for night in 0..2 {
        let today = first + chrono::Duration::days(night);
        sim.set_today(today);
        for table in TABLES {
            let request = IngestRequest {
                table: table.parse().unwrap(),
                mode: IngestMode::Incremental,
                requested_by: "test".into(),
                as_of: Some(today),
                since: None,
            };
            // At-least-once delivery: the schedule's message arrives twice.
            for _ in 0..2 {
                deployment.queues[0]
                    .input
                    .send(&messages::encode(&request), &BTreeMap::new())
                    .await
                    .unwrap();
            }
        }
        deployment.settle().await;
        assert_eq!(deployment.dead_letters().await, Vec::<String>::new());
        for table in TABLES {
            assert_eq!(
                deployment.snapshot(table, today).await,
                expected_snapshot(&sim, table, today),
                "{table} on {today}"
            );
        }
    }

    // One partition per night in every layer: duplicates replaced, never added.
    for table in TABLES {
        let name = TableName::new(table).unwrap();
        for layer in Layer::ALL {
            let any = deployment.platform.layout.partition(&name, layer, first);
            let partitions = published_partitions(deployment.platform.catalog.as_ref(), &any)
                .await
                .unwrap();
            assert_eq!(partitions.len(), 2, "{table} {layer}");
        }
    }
    // The snapshot stage announced its partitions downstream.
    let announced = deployment.queues[4]
        .input
        .receive(10, Duration::ZERO)
        .await
        .unwrap();
    assert!(!announced.is_empty());
    sim.stop().await;
}
