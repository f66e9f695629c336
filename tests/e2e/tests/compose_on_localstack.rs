//! The compose flow for real, without Docker: the four services as OS processes (the `stage`
//! binary: the services' own `common::service::run`), configured only by the environment
//! `docker-compose.yml` gives its containers, with S3, SQS and EventBridge on LocalStack and Glue
//! on moto, fed by the simulated Tascomi API, one table over two nights. The snapshot must equal
//! what the API holds.
//!
//! As compose does, every process gets `AWS_ENDPOINT_URL` = LocalStack and
//! `AWS_ENDPOINT_URL_GLUE` = moto, and nothing else of the test's environment: only the AWS
//! SDK's service-specific endpoint variable sends Glue to moto (LocalStack's free edition answers
//! Glue with HTTP 501). The compose file's values are taken literally; only what names a
//! container (`localstack:4566`, `moto:5000`, `tascomi-sim:8080`, files under `/etc/tascomi`) and
//! the `tascomi-local` prefix (unique per run, since moto is shared with the other tests) are
//! replaced. `compose_values_are_those_of_docker_compose_yml` fails when the file changes
//! without this test.
//!
//! Each night's request is delivered twice (`TASCOMI_COMPOSE_DELIVERIES`, default 2), as
//! at-least-once delivery may: with the services running side by side, a second parse run can
//! replace the parsed partition while recast is reading the first run's files. Before a file
//! gone from a published partition was made a transient failure (common::source), recast and
//! snapshot dead-lettered their message ("... part-00000.parquet does not exist"), a race the
//! sequential `pipeline_on_moto` cannot meet; now the retry reads the new run.
//!
//! Needs `TASCOMI_LOCALSTACK_ENDPOINT` (set by `scripts/test.sh`, which starts LocalStack with
//! `scripts/localstack.sh`) and moto's `AWS_ENDPOINT_URL`; skipped without them, except in CI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::catalog::GlueCatalog;
use common::config::Env;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::messages::{self, IngestMode, IngestRequest};
use common::platform::Platform;
use common::publish::published_partitions;
use common::queue::{Queue, SqsQueue};
use e2e::{STAGES, create_bucket, expected_snapshot, localstack, moto, snapshot_rows};
use tascomi_sim::{SimApi, SimConfig, SimHandle};
use tokio::process::{Child, Command};

const TABLE: &str = "appeals";
const NIGHTS: i64 = 2;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(240);

/// `x-aws-environment` of docker-compose.yml.
const AWS_ENVIRONMENT: [(&str, &str); 5] = [
    ("AWS_REGION", "eu-west-2"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_ENDPOINT_URL", "http://localstack:4566"),
    ("AWS_ENDPOINT_URL_GLUE", "http://moto:5000"),
];

/// `x-pipeline-environment` of docker-compose.yml (besides the AWS variables).
const PIPELINE_ENVIRONMENT: [(&str, &str); 10] = [
    ("TASCOMI_RAW_BUCKET", "tascomi-local-raw-zone"),
    ("TASCOMI_REFINED_BUCKET", "tascomi-local-refined-zone"),
    ("TASCOMI_DATABASE_PREFIX", "tascomi-local"),
    ("TASCOMI_PIPELINE_FILE", "/etc/tascomi/pipeline.yaml"),
    ("TASCOMI_LOG_FORMAT", "json"),
    ("TASCOMI_CONCURRENCY", "2"),
    ("TASCOMI_VISIBILITY_TIMEOUT_SECS", "300"),
    ("TASCOMI_MAX_RECEIVES", "5"),
    ("TASCOMI_WAIT_TIME_SECS", "20"),
    ("TASCOMI_SHUTDOWN_GRACE_SECS", "8"),
];

/// Each service's own `environment` in docker-compose.yml.
fn service_environment(stage: &str) -> Vec<(&'static str, &'static str)> {
    match stage {
        "ingest" => vec![
            (
                "TASCOMI_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-ingest",
            ),
            (
                "TASCOMI_NEXT_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-parse",
            ),
            (
                "TASCOMI_DEAD_LETTER_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-ingest-dlq",
            ),
            ("TASCOMI_API_BASE_URL", "http://tascomi-sim:8080/rest/v1/"),
            ("TASCOMI_PUBLIC_KEY", "local-public-key"),
            ("TASCOMI_PRIVATE_KEY", "local-private-key"),
            ("TASCOMI_API_MAX_CONCURRENT_REQUESTS", "4"),
        ],
        "parse" => vec![
            (
                "TASCOMI_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-parse",
            ),
            (
                "TASCOMI_NEXT_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-recast",
            ),
            (
                "TASCOMI_DEAD_LETTER_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-parse-dlq",
            ),
        ],
        "recast" => vec![
            (
                "TASCOMI_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-recast",
            ),
            (
                "TASCOMI_NEXT_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-snapshot",
            ),
            (
                "TASCOMI_DEAD_LETTER_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-recast-dlq",
            ),
            (
                "TASCOMI_COLUMN_TYPE_DICTIONARY",
                "/etc/tascomi/column-type-dictionary.json",
            ),
        ],
        "snapshot" => vec![
            (
                "TASCOMI_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-snapshot",
            ),
            (
                "TASCOMI_DEAD_LETTER_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-snapshot-dlq",
            ),
        ],
        other => panic!("no stage {other}"),
    }
}

/// The compose service of a stage.
fn service_name(stage: &str) -> String {
    format!("{stage}-svc")
}

/// What stands for a container or a mounted file in compose, and what the test has instead.
struct Substitutions(Vec<(String, String)>);

impl Substitutions {
    fn apply(&self, value: &str) -> String {
        self.0
            .iter()
            .fold(value.to_owned(), |v, (from, to)| v.replace(from, to))
    }
}

/// A service's whole environment, as compose gives it to the container, substituted.
fn compose_environment(stage: &str, substitutions: &Substitutions) -> Vec<(String, String)> {
    AWS_ENVIRONMENT
        .iter()
        .chain(PIPELINE_ENVIRONMENT.iter())
        .copied()
        .chain(service_environment(stage))
        .map(|(name, value)| (name.to_owned(), substitutions.apply(value)))
        .collect()
}

/// The endpoint's host and port (`http://127.0.0.1:4566` -> `127.0.0.1:4566`).
fn host_of(endpoint: &str) -> &str {
    endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
}

#[test]
fn compose_values_are_those_of_docker_compose_yml() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("docker-compose.yml");
    // `KEY: value` lines, by the service (or `x-` block) they stand in.
    let mut blocks: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut block = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        if line.trim_start().starts_with('#') {
            continue;
        }
        if indent == 0 && key.starts_with("x-") || indent == 2 && value.trim().is_empty() {
            block = key.to_owned();
        } else if indent == 0 {
            block.clear();
        }
        if key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !key.is_empty()
        {
            let value = value.trim().trim_matches('"').to_owned();
            blocks
                .entry(block.clone())
                .or_default()
                .insert(key.to_owned(), value);
        }
    }
    let same = |block: &str, expected: &[(&str, &str)]| {
        let found = blocks.get(block).cloned().unwrap_or_default();
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(
            found, expected,
            "docker-compose.yml's {block} changed: change this test with it"
        );
    };
    same("x-aws-environment", &AWS_ENVIRONMENT);
    same("x-pipeline-environment", &PIPELINE_ENVIRONMENT);
    for stage in STAGES {
        same(&service_name(stage), &service_environment(stage));
    }
}

/// The four services, as processes, on LocalStack (S3, SQS) and moto (Glue).
struct ComposeRun {
    _dir: tempfile::TempDir,
    log_dir: PathBuf,
    /// One environment per stage, in `STAGES` order.
    environments: Vec<Vec<(String, String)>>,
    /// ingest, parse, recast, snapshot.
    queues: Vec<SqsQueue>,
    dead_letters: Vec<SqsQueue>,
    /// Storage on LocalStack, catalog on moto: what the services see.
    platform: Platform,
}

impl ComposeRun {
    /// What `init` does (deploy/compose/init.sh): the buckets and the queues with their
    /// dead-letter queues on LocalStack (maxReceiveCount 5, visibility 300 s, as compose sets
    /// them). The Glue databases the services create themselves (`TASCOMI_MANAGE_DATABASES` at
    /// its default, as in compose).
    async fn new(
        localstack: &str,
        moto_endpoint: &str,
        localstack_sdk: &aws_config::SdkConfig,
        moto_sdk: &aws_config::SdkConfig,
        sim: &SimHandle,
    ) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let name = format!(
            "compose{}x{}",
            std::process::id(),
            nanos % 1_000_000_000_000
        );
        let dir = tempfile::tempdir().expect("temporary folder");
        let pipeline_file = dir.path().join("pipeline.yaml");
        std::fs::write(&pipeline_file, format!("tables:\n  {TABLE}: daily\n")).expect("pipeline");
        let dictionary_file = tascomi_sim::production_dictionary_path();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let substitutions = Substitutions(vec![
            ("http://localstack:4566".into(), localstack.to_owned()),
            ("http://moto:5000".into(), moto_endpoint.to_owned()),
            (
                "http://tascomi-sim:8080/rest/v1/".into(),
                sim.base_url.clone(),
            ),
            ("/etc/tascomi/pipeline.yaml".into(), path(&pipeline_file)),
            (
                "/etc/tascomi/column-type-dictionary.json".into(),
                path(&dictionary_file),
            ),
            ("tascomi-local".into(), name.clone()),
        ]);
        let environments: Vec<_> = STAGES
            .iter()
            .map(|stage| compose_environment(stage, &substitutions))
            .collect();
        let var = |name: &str| {
            environments[0]
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .expect("a compose variable")
        };

        let raw_bucket = var("TASCOMI_RAW_BUCKET");
        let refined_bucket = var("TASCOMI_REFINED_BUCKET");
        create_bucket(localstack_sdk, &raw_bucket).await;
        create_bucket(localstack_sdk, &refined_bucket).await;
        let mut queues = Vec::new();
        let mut dead_letters = Vec::new();
        for (stage, environment) in STAGES.iter().zip(&environments) {
            let queue = format!("{name}-{stage}");
            SqsQueue::create_queue_with_dlq(
                localstack_sdk,
                &queue,
                &format!("{queue}-dlq"),
                5,
                300,
            )
            .await
            .expect("queues created on LocalStack");
            // From here on, the URLs compose hard-codes (`/000000000000/<name>`), not the ones
            // LocalStack answered (`/queue/eu-west-2/000000000000/<name>` with
            // SQS_ENDPOINT_STRATEGY=path): LocalStack takes both, and so must the services.
            let compose_url = |key: &str| {
                environment
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .expect("a queue variable")
            };
            let (url, dead_letter_url) = (
                compose_url("TASCOMI_QUEUE_URL"),
                compose_url("TASCOMI_DEAD_LETTER_QUEUE_URL"),
            );
            assert!(url.ends_with(&format!("/000000000000/{queue}")), "{url}");
            queues.push(SqsQueue::new(localstack_sdk, url));
            dead_letters.push(SqsQueue::new(localstack_sdk, dead_letter_url));
        }

        let operator_env = Env::from_pairs([
            ("TASCOMI_RAW_BUCKET", raw_bucket),
            ("TASCOMI_REFINED_BUCKET", refined_bucket),
            ("TASCOMI_DATABASE_PREFIX", var("TASCOMI_DATABASE_PREFIX")),
        ]);
        let mut platform = Platform::aws(localstack_sdk, &operator_env).expect("platform");
        platform.catalog = std::sync::Arc::new(GlueCatalog::new(moto_sdk));
        let log_dir = dir.path().join("logs");
        std::fs::create_dir_all(&log_dir).expect("log folder");
        Self {
            _dir: dir,
            log_dir,
            environments,
            queues,
            dead_letters,
            platform,
        }
    }

    fn log_path(&self, stage: usize) -> PathBuf {
        self.log_dir
            .join(format!("{}.log", service_name(STAGES[stage])))
    }

    /// Starts a stage's service with compose's environment and nothing else.
    fn spawn(&self, stage: usize) -> Child {
        let log = std::fs::File::create(self.log_path(stage)).expect("log file");
        let log_err = log.try_clone().expect("log file");
        Command::new(env!("CARGO_BIN_EXE_stage"))
            .arg(STAGES[stage])
            .env_clear()
            .envs(self.environments[stage].iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .expect("stage process started")
    }

    /// The last lines of every service's log.
    fn logs(&self) -> String {
        (0..STAGES.len())
            .map(|stage| {
                let text = std::fs::read_to_string(self.log_path(stage)).unwrap_or_default();
                let lines: Vec<_> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                format!("--- {}\n{tail}\n", service_name(STAGES[stage]))
            })
            .collect()
    }

    async fn waiting(&self) -> u64 {
        let mut waiting = 0;
        for queue in &self.queues {
            let depth = queue.depth().await.expect("queue depth");
            waiting += depth.visible + depth.in_flight;
        }
        waiting
    }

    /// Waits until `date`'s snapshot is published and every queue has stayed empty for a
    /// second, while the services run.
    async fn settle(&self, children: &mut [Child], date: NaiveDate) {
        let started = Instant::now();
        let table = TableName::new(TABLE).expect("table name");
        let any = self
            .platform
            .layout
            .partition(&table, Layer::Snapshot, date);
        loop {
            for (stage, child) in children.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{} exited with {status}:\n{}",
                        service_name(STAGES[stage]),
                        self.logs()
                    );
                }
            }
            for (stage, queue) in self.dead_letters.iter().enumerate() {
                let depth = queue.depth().await.expect("dead-letter queue depth");
                assert!(
                    depth.visible + depth.in_flight == 0,
                    "{} dead-lettered a message:\n{}",
                    service_name(STAGES[stage]),
                    self.logs()
                );
            }
            let published = published_partitions(self.platform.catalog.as_ref(), &any)
                .await
                .expect("partitions")
                .iter()
                .any(|(d, _)| *d == date);
            if published && self.waiting().await == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if self.waiting().await == 0 {
                    return;
                }
            }
            assert!(
                started.elapsed() < SETTLE_TIMEOUT,
                "the services did not publish {date}'s snapshot within {SETTLE_TIMEOUT:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The reasons of the messages in every stage's dead-letter queue (taking them out).
    async fn dead_letters(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        for queue in &self.dead_letters {
            for m in queue.receive(10, Duration::ZERO).await.expect("receive") {
                reasons.push(
                    m.attributes
                        .get("failure_reason")
                        .cloned()
                        .unwrap_or_else(|| format!("(no reason) {}", m.body)),
                );
                queue.acknowledge(&m.receipt).await.expect("ack");
            }
        }
        reasons
    }
}

/// `docker compose stop`: SIGTERM, then the compose file's `stop_grace_period` (10 s) before a
/// kill. Each service must have exited by itself, successfully.
async fn stop(children: Vec<Child>, run: &ComposeRun) {
    for (stage, mut child) in children.into_iter().enumerate() {
        let pid = child.id().expect("a running process");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} still running 10 s after SIGTERM:\n{}",
                    service_name(STAGES[stage]),
                    run.logs()
                )
            })
            .expect("wait");
        assert!(
            status.success(),
            "{} stopped with {status}:\n{}",
            service_name(STAGES[stage]),
            run.logs()
        );
    }
}

/// LocalStack's own account of its services (`/_localstack/health`).
async fn localstack_services(endpoint: &str) -> serde_json::Value {
    let health: serde_json::Value = reqwest::get(format!("{endpoint}/_localstack/health"))
        .await
        .expect("LocalStack answers")
        .json()
        .await
        .expect("health is JSON");
    health["services"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_wired_as_compose_wires_them_publish_what_the_api_holds() {
    let Some(localstack) = localstack() else {
        return;
    };
    let Some(moto_sdk) = moto().await else { return };
    let localstack = localstack.trim_end_matches('/').to_owned();
    let moto_endpoint = Env::from_process()
        .get("AWS_ENDPOINT_URL")
        .expect("moto's endpoint")
        .trim_end_matches('/')
        .to_owned();
    assert_ne!(host_of(&localstack), host_of(&moto_endpoint));
    // The test's own clients: S3 and SQS on LocalStack (an endpoint given in code wins over the
    // environment's), Glue on moto.
    let localstack_sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&localstack)
        .load()
        .await;

    let dictionary = ColumnTypes::load(&tascomi_sim::production_dictionary_path()).unwrap();
    let config = SimConfig {
        public_key: "local-public-key".into(),
        private_key: "local-private-key".into(),
        dictionary,
        ..SimConfig::default()
    };
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    let run = ComposeRun::new(
        &localstack,
        &moto_endpoint,
        &localstack_sdk,
        &moto_sdk,
        &sim,
    )
    .await;

    let deliveries: usize = Env::from_process()
        .get("TASCOMI_COMPOSE_DELIVERIES")
        .map_or(2, |n| {
            n.parse().expect("TASCOMI_COMPOSE_DELIVERIES is a number")
        });
    let started = Instant::now();
    let mut children: Vec<Child> = (0..STAGES.len()).map(|stage| run.spawn(stage)).collect();
    for night in 0..NIGHTS {
        let today = first + chrono::Duration::days(night);
        sim.set_today(today);
        // `night` (deploy/compose/night.sh) sends one ingest request per table.
        let request = IngestRequest {
            table: TABLE.parse().unwrap(),
            mode: IngestMode::Incremental,
            requested_by: "schedule".into(),
            as_of: Some(today),
            since: None,
        };
        for _ in 0..deliveries {
            run.queues[0]
                .send(&messages::encode(&request), &BTreeMap::new())
                .await
                .unwrap();
        }
        run.settle(&mut children, today).await;
        assert_eq!(run.dead_letters().await, Vec::<String>::new(), "{today}");
        let published = snapshot_rows(&run.platform, TABLE, today).await;
        assert!(!published.is_empty(), "{today}: an empty snapshot");
        assert_eq!(
            published,
            expected_snapshot(&sim, TABLE, today),
            "{TABLE} on {today}"
        );
        eprintln!(
            "night {today}: {} rows published, {:.1} s since the services started",
            published.len(),
            started.elapsed().as_secs_f64()
        );
    }
    stop(children, &run).await;

    // One partition per night in every layer: the duplicate deliveries replaced, never added.
    let table = TableName::new(TABLE).unwrap();
    for layer in Layer::ALL {
        let any = run.platform.layout.partition(&table, layer, first);
        let partitions = published_partitions(run.platform.catalog.as_ref(), &any)
            .await
            .unwrap();
        assert_eq!(partitions.len(), NIGHTS as usize, "{layer}");
    }

    // Where everything went: the objects are on LocalStack, none of the buckets on moto, and
    // LocalStack served S3, SQS and EventBridge (no dead letters above: every announcement was
    // accepted by its default bus).
    let objects = run
        .platform
        .storage
        .list(&run.platform.layout.raw_bucket, "")
        .await
        .expect("raw bucket listed on LocalStack");
    assert!(!objects.is_empty());
    let moto_s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto_sdk)
            .force_path_style(true)
            .build(),
    );
    for bucket in [
        &run.platform.layout.raw_bucket,
        &run.platform.layout.refined_bucket,
    ] {
        assert!(
            moto_s3.head_bucket().bucket(bucket).send().await.is_err(),
            "{bucket} is on moto"
        );
    }
    let services = localstack_services(&localstack).await;
    for service in ["s3", "sqs", "events"] {
        assert_eq!(services[service], "running", "{services}");
    }
    sim.stop().await;
}
