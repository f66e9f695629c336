//! A deployment on moto for end-to-end tests: buckets, a queue and dead-letter queue per stage,
//! and the four stages' own handlers as `Runner`s over SQS, S3 and Glue, with the simulated
//! Tascomi API. `settle` plays the part of the ECS services: it runs every stage until every
//! queue is empty.

pub mod fault_proxy;
pub mod process;
pub mod watcher;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use chrono::NaiveDate;
use common::config::{Env, PipelineFile};
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::published_partitions;
use common::queue::{Queue, SqsQueue};
use common::runner::{Disposition, Handler, Runner, RunnerSettings};
use common::storage::split_s3_uri;
use tascomi_sim::SimHandle;

/// The SDK configuration for moto, or `None` after printing why the test is skipped. Under
/// `scripts/test.sh` (which sets `TASCOMI_REQUIRE_MOTO`) or in CI a missing endpoint fails.
pub async fn moto() -> Option<aws_config::SdkConfig> {
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

/// The variable `scripts/test.sh` sets to the endpoint of the LocalStack it started
/// (`scripts/localstack.sh`: S3, SQS and EventBridge, no Docker).
pub const LOCALSTACK_ENDPOINT_VARIABLE: &str = "TASCOMI_LOCALSTACK_ENDPOINT";

/// LocalStack's endpoint, or `None` after printing why the test is skipped. In CI a missing
/// endpoint fails: there `scripts/test.sh` must have started LocalStack.
pub fn localstack() -> Option<String> {
    let env = Env::from_process();
    match env
        .get(LOCALSTACK_ENDPOINT_VARIABLE)
        .filter(|v| !v.is_empty())
    {
        Some(endpoint) => Some(endpoint.to_owned()),
        None => {
            assert!(
                env.get("CI").is_none(),
                "{LOCALSTACK_ENDPOINT_VARIABLE} is not set in CI: scripts/test.sh starts LocalStack \
                 (scripts/localstack.sh) and fails when it cannot"
            );
            eprintln!(
                "skipped: {LOCALSTACK_ENDPOINT_VARIABLE} is not set (run scripts/test.sh, which \
                 starts LocalStack with scripts/localstack.sh)"
            );
            None
        }
    }
}

/// A stage's queue and its dead-letter queue.
#[derive(Debug)]
pub struct StageQueues {
    pub url: String,
    pub dead_letter_url: String,
    pub input: Arc<dyn Queue>,
    pub dead_letter: Arc<dyn Queue>,
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

/// A deployment with uniquely named resources, so tests run in parallel on one moto.
pub struct MotoDeployment {
    pub unique: String,
    pub platform: Platform,
    /// The environment an operator (`tascomi`) would have for this deployment.
    pub env: Env,
    /// ingest, parse, recast, snapshot, downstream.
    pub queues: Vec<StageQueues>,
    runners: Vec<Arc<dyn Drain>>,
}

impl std::fmt::Debug for MotoDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoDeployment")
            .field("unique", &self.unique)
            .finish()
    }
}

/// The stages in pipeline order (`common::stage::Stage`).
pub const STAGES: [&str; 4] = common::stage::Stage::NAMES;

/// Creates a bucket (path-style, in the configuration's region), as `deploy/compose/init.sh` does.
pub async fn create_bucket(sdk: &aws_config::SdkConfig, bucket: &str) {
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
    create.send().await.expect("bucket created");
}

impl MotoDeployment {
    pub async fn new(
        sdk: &aws_config::SdkConfig,
        sim: &SimHandle,
        pipeline: &PipelineFile,
        dictionary: ColumnTypes,
    ) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let unique = format!("e2e{}x{}", std::process::id(), nanos % 1_000_000_000_000);
        create_bucket(sdk, &format!("{unique}-raw")).await;
        create_bucket(sdk, &format!("{unique}-refined")).await;
        let mut env = Env::from_pairs([
            ("TASCOMI_RAW_BUCKET", format!("{unique}-raw")),
            ("TASCOMI_REFINED_BUCKET", format!("{unique}-refined")),
            ("TASCOMI_DATABASE_PREFIX", unique.clone()),
        ]);
        let platform = Platform::aws(sdk, &env).expect("platform settings");
        let mut queues = Vec::new();
        for name in STAGES.iter().chain(&["downstream"]) {
            let queue = format!("{unique}-{name}");
            let (url, dead_letter_url) =
                SqsQueue::create_queue_with_dlq(sdk, &queue, &format!("{queue}-dlq"), 3, 120)
                    .await
                    .expect("queues created");
            if *name != "downstream" {
                let upper = name.to_uppercase();
                env.set(format!("TASCOMI_{upper}_QUEUE_URL"), url.clone());
                env.set(
                    format!("TASCOMI_{upper}_DEAD_LETTER_QUEUE_URL"),
                    dead_letter_url.clone(),
                );
            }
            queues.push(StageQueues {
                input: Arc::new(SqsQueue::new(sdk, url.clone())),
                dead_letter: Arc::new(SqsQueue::new(sdk, dead_letter_url.clone())),
                url,
                dead_letter_url,
            });
        }
        let mut this = Self {
            unique,
            platform: platform.clone(),
            env,
            queues,
            runners: Vec::new(),
        };
        let ingest = ingest_svc::IngestStage::new(
            platform.clone(),
            pipeline.clone(),
            ingest_svc::IngestSettings::new(&sim.base_url),
            sim.credentials(),
        )
        .expect("ingest stage");
        this.add(0, ingest);
        let parse =
            parse_svc::ParseStage::new(platform.clone(), pipeline.clone(), Default::default());
        this.add(1, parse);
        let recast = recast_svc::RecastStage::new(
            platform.clone(),
            pipeline.clone(),
            dictionary,
            Default::default(),
        );
        this.add(2, recast);
        let snapshot =
            snapshot_svc::SnapshotStage::new(platform, pipeline.clone(), Default::default());
        this.add(3, snapshot);
        this
    }

    fn add<H: Handler>(&mut self, stage: usize, handler: H) {
        let settings = RunnerSettings {
            visibility_timeout: Duration::from_secs(120),
            wait_time: Duration::ZERO,
            retry_base: Duration::from_secs(1),
            ..RunnerSettings::default()
        };
        let runner = Runner::new(
            Arc::new(handler),
            self.queues[stage].input.clone(),
            Some(self.queues[stage + 1].input.clone()),
            Some(self.queues[stage].dead_letter.clone()),
            settings,
        );
        self.runners.push(Arc::new(runner));
    }

    /// Runs every stage until every stage queue is empty (retries included).
    pub async fn settle(&self) {
        for _round in 0..60 {
            for runner in &self.runners {
                runner.drain().await;
            }
            let mut waiting = 0;
            for q in &self.queues[..4] {
                let depth = q.input.depth().await.expect("queue depth");
                waiting += depth.visible + depth.in_flight;
            }
            if waiting == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the pipeline did not settle");
    }

    /// The dead-letter reasons left in every stage's dead-letter queue (taking them out).
    pub async fn dead_letters(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        for q in &self.queues[..4] {
            for m in q
                .dead_letter
                .receive(10, Duration::ZERO)
                .await
                .expect("receive")
            {
                reasons.push(
                    m.attributes
                        .get("failure_reason")
                        .cloned()
                        .unwrap_or_default(),
                );
                q.dead_letter.acknowledge(&m.receipt).await.expect("ack");
            }
        }
        reasons
    }

    /// The published snapshot dates of a table.
    pub async fn snapshot_dates(&self, table: &str) -> Vec<NaiveDate> {
        let table = TableName::new(table).expect("table name");
        let any = self
            .platform
            .layout
            .partition(&table, Layer::Snapshot, NaiveDate::MIN);
        published_partitions(self.platform.catalog.as_ref(), &any)
            .await
            .expect("partitions")
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    }

    /// id -> last_updated of the snapshot of `date`, read through the catalog's location.
    /// Panics when an id appears twice.
    pub async fn snapshot(&self, table: &str, date: NaiveDate) -> BTreeMap<i64, Option<String>> {
        snapshot_rows(&self.platform, table, date).await
    }
}

/// id -> last_updated of a published snapshot partition. Panics when an id appears twice.
pub async fn snapshot_rows(
    platform: &Platform,
    table: &str,
    date: NaiveDate,
) -> BTreeMap<i64, Option<String>> {
    let table = TableName::new(table).expect("table name");
    let partition = platform.layout.partition(&table, Layer::Snapshot, date);
    let partitions = published_partitions(platform.catalog.as_ref(), &partition)
        .await
        .expect("partitions");
    let (_, info) = partitions
        .iter()
        .find(|(d, _)| *d == date)
        .expect("snapshot published");
    let (bucket, prefix) = split_s3_uri(&info.location).expect("s3 location");
    let mut rows = BTreeMap::new();
    for object in platform.storage.list(bucket, prefix).await.expect("list") {
        for batch in read_all(platform.storage.clone(), bucket, &object.key)
            .await
            .expect("read")
        {
            let ids =
                arrow::compute::cast(batch.column_by_name("id").expect("id"), &DataType::Int64)
                    .expect("ids cast");
            let updated = arrow::compute::cast(
                batch.column_by_name("last_updated").expect("last_updated"),
                &DataType::Utf8,
            )
            .expect("last_updated cast");
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

/// What the simulated API says the snapshot of `date` holds: id -> last_updated, as London
/// wall-clock text (a `last_updated` the API sent with `Z` reads as the lake stores it).
pub fn expected_snapshot(
    sim: &SimHandle,
    table: &str,
    date: NaiveDate,
) -> BTreeMap<i64, Option<String>> {
    sim.expected_snapshot(table, date)
        .into_iter()
        .map(|r| {
            (
                r["id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("numeric id"),
                r["last_updated"].as_str().map(|text| {
                    common::layout::parse_london_timestamp(text).map_or_else(
                        || text.to_owned(),
                        |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    )
                }),
            )
        })
        .collect()
}
