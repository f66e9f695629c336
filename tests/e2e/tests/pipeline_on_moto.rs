//! The whole pipeline through the real AWS SDK against moto: four stages as `Runner`s over SQS,
//! S3 and Glue, fed by the simulated Tascomi API, two nights, every ingest request delivered
//! twice. The snapshot must equal what the API holds, once per id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use chrono::NaiveDate;
use common::config::{Env, PipelineFile};
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::messages::{self, IngestMode, IngestRequest};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::published_partitions;
use common::queue::{Queue, SqsQueue};
use common::runner::{Disposition, Handler, Runner, RunnerSettings};
use common::storage::split_s3_uri;
use tascomi_sim::{SimApi, SimConfig};

const TABLES: [&str; 2] = ["appeals", "contacts"];

async fn moto() -> Option<aws_config::SdkConfig> {
    let env = Env::from_process();
    if env.get("AWS_ENDPOINT_URL").is_none() {
        assert!(
            env.get("CI").is_none() && env.get("TASCOMI_REQUIRE_MOTO").is_none(),
            "AWS_ENDPOINT_URL is not set: run scripts/test.sh, which starts moto"
        );
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)");
        return None;
    }
    Some(common::aws::load_sdk_config().await)
}

async fn create_bucket(sdk: &aws_config::SdkConfig, bucket: &str) {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    region.as_str(),
                ))
                .build(),
        );
    }
    create.send().await.unwrap();
}

struct Queues {
    input: Arc<dyn Queue>,
    dead_letter: Arc<dyn Queue>,
}

async fn queues(sdk: &aws_config::SdkConfig, name: &str) -> Queues {
    let (url, dlq) = SqsQueue::create_queue_with_dlq(sdk, name, &format!("{name}-dlq"), 3, 120)
        .await
        .unwrap();
    Queues {
        input: Arc::new(SqsQueue::new(sdk, url)),
        dead_letter: Arc::new(SqsQueue::new(sdk, dlq)),
    }
}

#[async_trait::async_trait]
trait Drain: Send + Sync {
    async fn drain(&self) -> Vec<Disposition>;
}

#[async_trait::async_trait]
impl<H: Handler> Drain for Runner<H> {
    async fn drain(&self) -> Vec<Disposition> {
        Runner::drain(self, Duration::from_millis(100)).await
    }
}

fn runner<H: Handler>(handler: H, own: &Queues, next: Arc<dyn Queue>) -> Arc<dyn Drain> {
    let settings = RunnerSettings {
        visibility_timeout: Duration::from_secs(120),
        wait_time: Duration::ZERO,
        retry_base: Duration::from_secs(1),
        ..RunnerSettings::default()
    };
    Arc::new(Runner::new(
        Arc::new(handler),
        own.input.clone(),
        Some(next),
        Some(own.dead_letter.clone()),
        settings,
    ))
}

/// id -> last_updated of a published snapshot, read from S3 through the catalog's location.
async fn snapshot(
    platform: &Platform,
    table: &str,
    date: NaiveDate,
) -> BTreeMap<i64, Option<String>> {
    let table = TableName::new(table).unwrap();
    let partition = platform.layout.partition(&table, Layer::Snapshot, date);
    let partitions = published_partitions(platform.catalog.as_ref(), &partition)
        .await
        .unwrap();
    let (_, info) = partitions
        .iter()
        .find(|(d, _)| *d == date)
        .expect("snapshot published");
    let (bucket, prefix) = split_s3_uri(&info.location).unwrap();
    let mut rows = BTreeMap::new();
    for object in platform.storage.list(bucket, prefix).await.unwrap() {
        for batch in read_all(platform.storage.clone(), bucket, &object.key)
            .await
            .unwrap()
        {
            let ids = arrow::compute::cast(batch.column_by_name("id").unwrap(), &DataType::Int64)
                .unwrap();
            let updated = arrow::compute::cast(
                batch.column_by_name("last_updated").unwrap(),
                &DataType::Utf8,
            )
            .unwrap();
            let (ids, updated) = (ids.as_primitive::<Int64Type>(), updated.as_string::<i32>());
            for i in 0..batch.num_rows() {
                let value = (!updated.is_null(i)).then(|| updated.value(i).replace('T', " "));
                assert!(
                    rows.insert(ids.value(i), value).is_none(),
                    "id {} twice",
                    ids.value(i)
                );
            }
        }
    }
    rows
}

fn expected(
    sim: &tascomi_sim::SimHandle,
    table: &str,
    date: NaiveDate,
) -> BTreeMap<i64, Option<String>> {
    sim.expected_snapshot(table, date)
        .into_iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().parse().unwrap(),
                r["last_updated"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nights_with_duplicate_deliveries_publish_each_partition_once() {
    let Some(sdk) = moto().await else { return };
    let unique = format!("e2e{}", &uuid_like());
    create_bucket(&sdk, &format!("{unique}-raw")).await;
    create_bucket(&sdk, &format!("{unique}-refined")).await;
    let env = Env::from_pairs([
        ("TASCOMI_RAW_BUCKET", format!("{unique}-raw")),
        ("TASCOMI_REFINED_BUCKET", format!("{unique}-refined")),
        ("TASCOMI_DATABASE_PREFIX", unique.clone()),
    ]);
    let platform = Platform::aws(&sdk, &env).unwrap();
    let dictionary = ColumnTypes::load(&tascomi_sim::production_dictionary_path()).unwrap();
    let pipeline =
        PipelineFile::parse("tables:\n  appeals: daily\n  contacts: daily\n", "test").unwrap();

    let config = SimConfig {
        dictionary: dictionary.clone(),
        ..SimConfig::default()
    };
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();

    let ingest = queues(&sdk, &format!("{unique}-ingest")).await;
    let parse = queues(&sdk, &format!("{unique}-parse")).await;
    let recast = queues(&sdk, &format!("{unique}-recast")).await;
    let snapshot_q = queues(&sdk, &format!("{unique}-snapshot")).await;
    let downstream = queues(&sdk, &format!("{unique}-downstream")).await;

    let ingest_stage = ingest_svc::IngestStage::new(
        platform.clone(),
        pipeline.clone(),
        ingest_svc::IngestSettings::new(&sim.base_url),
        sim.credentials(),
    )
    .unwrap();
    let runners = [
        runner(ingest_stage, &ingest, parse.input.clone()),
        runner(
            parse_svc::ParseStage::new(platform.clone(), pipeline.clone(), Default::default()),
            &parse,
            recast.input.clone(),
        ),
        runner(
            recast_svc::RecastStage::new(
                platform.clone(),
                pipeline.clone(),
                dictionary,
                Default::default(),
            ),
            &recast,
            snapshot_q.input.clone(),
        ),
        runner(
            snapshot_svc::SnapshotStage::new(
                platform.clone(),
                pipeline.clone(),
                Default::default(),
            ),
            &snapshot_q,
            downstream.input.clone(),
        ),
    ];
    let all = [&ingest, &parse, &recast, &snapshot_q];

    for night in 0..2 {
        let today = first + chrono::Duration::days(night);
        sim.set_today(today);
        for table in TABLES {
            let request = IngestRequest {
                table: table.parse().unwrap(),
                mode: IngestMode::Incremental,
                requested_by: "test".into(),
                as_of: Some(today),
            };
            // At-least-once delivery: the schedule's message arrives twice.
            for _ in 0..2 {
                ingest
                    .input
                    .send(&messages::encode(&request), &BTreeMap::new())
                    .await
                    .unwrap();
            }
        }
        for _round in 0..30 {
            for r in &runners {
                r.drain().await;
            }
            let mut waiting = 0;
            for q in all {
                let d = q.input.depth().await.unwrap();
                waiting += d.visible + d.in_flight;
            }
            if waiting == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for q in all {
            let dead = q.dead_letter.receive(10, Duration::ZERO).await.unwrap();
            assert!(
                dead.is_empty(),
                "dead letters: {:?}",
                dead.iter().map(|m| &m.attributes).collect::<Vec<_>>()
            );
        }
        for table in TABLES {
            assert_eq!(
                snapshot(&platform, table, today).await,
                expected(&sim, table, today),
                "{table} on {today}"
            );
        }
    }

    // One partition per night in every import layer: duplicates replaced, never added.
    for table in TABLES {
        let name = TableName::new(table).unwrap();
        for layer in [Layer::Raw, Layer::Parsed, Layer::Increment, Layer::Snapshot] {
            let any = platform.layout.partition(&name, layer, first);
            let partitions = published_partitions(platform.catalog.as_ref(), &any)
                .await
                .unwrap();
            assert_eq!(partitions.len(), 2, "{table} {layer}");
        }
    }
    // The snapshot stage announced its partitions downstream.
    let announced = downstream.input.receive(10, Duration::ZERO).await.unwrap();
    assert!(!announced.is_empty());
    sim.stop().await;
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}{}", std::process::id(), nanos % 1_000_000_000)
}
