//! Shared set-up of the ingest integration tests: a simulated API, a local platform in a
//! temporary directory, the stage, the requests and nights it handles, and readers of what it
//! published. Most tests ingest `appeals`, the fixture's table ([`TABLE`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, Int64Array, StringArray};
use chrono::NaiveDate;
use common::config::PipelineFile;
use common::layout::{Layer, TableName};
use common::messages::{IngestMode, IngestRequest};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::source::published_files;
use ingest_svc::{Credentials, IngestError, IngestOutcome, IngestSettings, IngestStage};
use serde_json::{Map, Value};
use tascomi_sim::{History, SimApi, SimConfig, SimHandle};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

pub const PIPELINE: &str = "tables:\n  appeals: daily\n  applications: daily\n  notes: daily\n";
/// The table most tests ingest.
pub const TABLE: &str = "appeals";

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

pub fn table(name: &str) -> TableName {
    name.parse().unwrap()
}

/// A small history: 120 appeals before 1 November, 4 new and 6 updated a day from then on.
pub fn sim_config() -> SimConfig {
    let mut config = SimConfig::with_production_dictionary().unwrap();
    config.per_page = 25;
    config.history = History {
        start: day(1),
        initial_records: 120,
        new_per_day: 4,
        updated_per_day: 6,
        updated_twice_per_day: 2,
        ..History::default()
    };
    config
}

/// Fast retries so fault tests take milliseconds.
pub fn settings(base_url: &str) -> IngestSettings {
    let mut settings = IngestSettings::new(base_url);
    settings.client.backoff_base = Duration::from_millis(5);
    settings.client.backoff_max = Duration::from_millis(40);
    settings.client.max_attempts = 4;
    settings
}

/// A simulated API and the stage that ingests from it into a platform.
pub struct Fixture {
    /// The local platform's folder (unused on another platform).
    pub dir: tempfile::TempDir,
    pub sim: SimHandle,
    pub platform: Platform,
    pub stage: Arc<IngestStage>,
}

/// The simulated API of `config`, a local platform and the stage with the fast [`settings`].
pub async fn fixture(config: SimConfig) -> Fixture {
    fixture_with(config, |_| {}).await
}

/// [`fixture`], the stage's settings changed by `tweak`.
pub async fn fixture_with(config: SimConfig, tweak: impl FnOnce(&mut IngestSettings)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    fixture_in(dir, platform, config, tweak).await
}

/// [`fixture`] on another platform (S3 and Glue on moto).
pub async fn fixture_on(platform: Platform, config: SimConfig) -> Fixture {
    fixture_in(tempfile::tempdir().unwrap(), platform, config, |_| {}).await
}

async fn fixture_in(
    dir: tempfile::TempDir,
    platform: Platform,
    config: SimConfig,
    tweak: impl FnOnce(&mut IngestSettings),
) -> Fixture {
    let sim = SimApi::start(config).await.unwrap();
    let mut settings = settings(&sim.base_url);
    tweak(&mut settings);
    let stage = IngestStage::new(platform.clone(), pipeline(), settings, sim.credentials());
    Fixture {
        dir,
        sim,
        platform,
        stage: Arc::new(stage.unwrap()),
    }
}

/// The test pipeline file: [`PIPELINE`].
pub fn pipeline() -> PipelineFile {
    PipelineFile::parse(PIPELINE, "test pipeline").unwrap()
}

/// A fixture whose first night has run: the simulator's clock set to `today`, then a full load
/// of [`TABLE`] as of `today`.
pub async fn full_load(config: SimConfig, today: NaiveDate) -> (Fixture, IngestOutcome) {
    let f = fixture(config).await;
    let outcome = f.night(IngestMode::Full, today).await;
    (f, outcome)
}

impl Fixture {
    /// Another stage on the same platform and API, with other keys (wrong ones, say).
    pub fn stage_with_keys(&self, credentials: Credentials) -> Arc<IngestStage> {
        let settings = settings(&self.sim.base_url);
        let stage = IngestStage::new(self.platform.clone(), pipeline(), settings, credentials);
        Arc::new(stage.unwrap())
    }

    /// Handles `request`, which must publish a partition.
    pub async fn ingest(&self, request: &IngestRequest) -> IngestOutcome {
        ingested(&self.stage, request).await
    }

    /// Handles a request for [`TABLE`] in `mode` as of `as_of`, which must publish a partition.
    /// The simulator's clock is left as it is.
    pub async fn run(&self, mode: IngestMode, as_of: NaiveDate) -> IngestOutcome {
        self.ingest(&request(TABLE, mode, as_of)).await
    }

    /// The night of `today`: the simulator's clock set to it, then [`Fixture::run`].
    pub async fn night(&self, mode: IngestMode, today: NaiveDate) -> IngestOutcome {
        self.sim.set_today(today);
        self.run(mode, today).await
    }

    /// The error of a request for [`TABLE`] that must fail.
    pub async fn run_err(&self, mode: IngestMode, as_of: NaiveDate) -> IngestError {
        self.stage
            .ingest(&request(TABLE, mode, as_of))
            .await
            .unwrap_err()
    }

    /// Every row of [`TABLE`]'s raw partition of `date`, sorted.
    pub async fn rows(&self, date: NaiveDate) -> Vec<RawRow> {
        raw_rows(&self.platform, TABLE, date).await
    }

    /// What a snapshot of [`TABLE`] as of `date` holds, as ingest keeps it, by id.
    pub fn snapshot(&self, date: NaiveDate) -> BTreeMap<String, Map<String, Value>> {
        expected_by_id(self.sim.expected_snapshot(TABLE, date))
    }

    /// The records of [`TABLE`] the API serves as updated on `day`, as ingest keeps them, by id.
    pub fn updated_on(&self, day: NaiveDate) -> BTreeMap<String, Map<String, Value>> {
        expected_by_id(self.sim.updated_on(TABLE, day))
    }

    /// [`TABLE`]'s ingest state.
    pub async fn state(&self) -> ingest_svc::state::TableState {
        table_state(&self.platform, TABLE).await
    }

    /// The partitions of [`TABLE`]'s raw table in the local catalog.
    pub async fn raw_partitions(&self) -> Vec<common::catalog::PartitionInfo> {
        self.platform
            .catalog
            .list_partitions("local-tascomi-raw-zone", "api_response_appeals")
            .await
            .unwrap()
    }

    /// The catalog parameters of [`TABLE`]'s raw partition of `date`.
    pub async fn parameters(&self, date: NaiveDate) -> BTreeMap<String, String> {
        partition_parameters(&self.platform, TABLE, date).await
    }

    /// The records of [`TABLE`]'s raw partitions of `dates`, a later one's version replacing an
    /// earlier one's, by id.
    pub async fn records_over(&self, dates: &[NaiveDate]) -> BTreeMap<String, Map<String, Value>> {
        records_over(&self.platform, TABLE, dates).await
    }

    /// Asserts that [`TABLE`]'s partition of `date` holds exactly what a snapshot as of `date`
    /// holds: every record, each once, and no failed-page row. `context` names the case.
    pub async fn assert_complete(&self, date: NaiveDate, context: &str) {
        let rows = self.rows(date).await;
        let expected = self.snapshot(date);
        assert_eq!(records_by_id(&rows), expected, "{context}");
        assert_eq!(rows.len(), expected.len(), "{context}");
    }

    /// How often the simulator answered [`TABLE`]'s `page` of `day` (`None`: all records).
    pub fn requests_of(&self, page: u32, day: Option<NaiveDate>) -> usize {
        request_counts(&self.sim)
            .get(&(TABLE.to_owned(), page, day))
            .copied()
            .unwrap_or(0)
    }
}

/// Asserts that a run recorded no failed page, naming those it did.
pub fn assert_no_failed_pages(outcome: &IngestOutcome) {
    assert!(
        outcome.failed_pages.is_empty(),
        "{:?}",
        outcome.failed_pages
    );
}

/// Handles `request` on `stage`, which must publish a partition.
pub async fn ingested(stage: &IngestStage, request: &IngestRequest) -> IngestOutcome {
    match stage.ingest(request).await.unwrap() {
        common::failure::Outcome::Done(outcome) => outcome,
        common::failure::Outcome::UpToDate(reason) => panic!("nothing published: {reason}"),
    }
}

pub fn request(name: &str, mode: IngestMode, as_of: NaiveDate) -> IngestRequest {
    IngestRequest {
        table: table(name),
        mode,
        requested_by: "test".into(),
        as_of: Some(as_of),
        since: None,
    }
}

/// One raw row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RawRow {
    pub page: i64,
    pub url: String,
    /// The status as the raw layer holds it: text (`"200"`), null without a response.
    pub status: Option<String>,
    pub exception: Option<String>,
    pub record: Option<String>,
}

impl RawRow {
    pub fn json(&self) -> Map<String, Value> {
        serde_json::from_str(self.record.as_deref().unwrap()).unwrap()
    }

    /// The error of a failed-page row.
    pub fn error(&self) -> &str {
        self.exception
            .as_deref()
            .expect("a failed-page row has an error")
    }
}

/// Every row of a published raw partition (empty when the partition does not exist), sorted.
pub async fn raw_rows(platform: &Platform, name: &str, date: NaiveDate) -> Vec<RawRow> {
    let partition = platform.layout.partition(&table(name), Layer::Raw, date);
    let Some(published) = published_files(platform, &partition).await.unwrap() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for object in &published.files {
        for batch in read_all(platform.storage.clone(), &published.bucket, &object.key)
            .await
            .unwrap()
        {
            let col = |name: &str| batch.column_by_name(name).unwrap().clone();
            let pages = col("page_number");
            let pages = pages.as_any().downcast_ref::<Int64Array>().unwrap();
            let urls = col("import_api_url_requested");
            let urls = urls.as_any().downcast_ref::<StringArray>().unwrap();
            let statuses = col("import_api_status_code");
            let statuses = statuses.as_any().downcast_ref::<StringArray>().unwrap();
            let errors = col("import_exception_thrown");
            let errors = errors.as_any().downcast_ref::<StringArray>().unwrap();
            let records = col(name);
            let records = records.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..batch.num_rows() {
                let opt = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_owned());
                rows.push(RawRow {
                    page: pages.value(i),
                    url: urls.value(i).to_owned(),
                    status: opt(statuses),
                    exception: opt(errors),
                    record: opt(records),
                });
            }
        }
    }
    rows.sort();
    rows
}

/// The records of the rows, by id.
pub fn records_by_id(rows: &[RawRow]) -> BTreeMap<String, Map<String, Value>> {
    rows.iter()
        .filter(|r| r.record.is_some())
        .map(|r| {
            let json = r.json();
            (json["id"].as_str().unwrap().to_owned(), json)
        })
        .collect()
}

/// The simulator's records as ingest keeps them (without the image), by id.
pub fn expected_by_id(records: Vec<Map<String, Value>>) -> BTreeMap<String, Map<String, Value>> {
    records
        .into_iter()
        .map(|mut r| {
            r.shift_remove(tascomi_sim::IMAGE_FIELD);
            (r["id"].as_str().unwrap().to_owned(), r)
        })
        .collect()
}

/// How often the simulator answered each (table, page, day).
pub fn request_counts(sim: &SimHandle) -> BTreeMap<(String, u32, Option<NaiveDate>), usize> {
    let mut counts = BTreeMap::new();
    for r in sim.requests() {
        *counts.entry((r.table, r.page, r.last_updated)).or_default() += 1;
    }
    counts
}

/// The catalog parameters of a published raw partition (`mode`, `import_kind`, `run_id`, ...).
pub async fn partition_parameters(
    platform: &Platform,
    name: &str,
    date: NaiveDate,
) -> BTreeMap<String, String> {
    let partition = platform.layout.partition(&table(name), Layer::Raw, date);
    platform
        .catalog
        .list_partitions(&partition.database, &partition.catalog_table)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.values == partition.values())
        .map(|p| p.parameters)
        .unwrap_or_default()
}

/// The records of several raw partitions by id, a later partition's version replacing an
/// earlier one's (what a snapshot built night after night holds).
pub async fn records_over(
    platform: &Platform,
    name: &str,
    dates: &[NaiveDate],
) -> BTreeMap<String, Map<String, Value>> {
    let mut all = BTreeMap::new();
    for date in dates {
        all.extend(records_by_id(&raw_rows(platform, name, *date).await));
    }
    all
}

/// A table's ingest state.
pub async fn table_state(platform: &Platform, name: &str) -> ingest_svc::state::TableState {
    ingest_svc::state::load(&platform.storage, "raw-zone", &table(name))
        .await
        .unwrap()
}

/// `(page, day)` of every request the simulator answered, in order.
pub fn requested(sim: &SimHandle) -> Vec<(u32, Option<NaiveDate>)> {
    sim.requests()
        .iter()
        .map(|r| (r.page, r.last_updated))
        .collect()
}

/// What the process-wide `tracing` subscriber of a test binary writes, kept for the test to read.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// A buffer that a new process-wide subscriber writes into, up to `level` (without colours).
    /// Panics when the test binary already has a subscriber.
    pub fn install(level: tracing::Level) -> Self {
        let buffer = Self::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only subscriber of this test binary");
        buffer
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A local HTTP server on a free port, for answers the simulator does not give: for each
/// connection it reads the request head (a GET has no body), then `answer` writes the response
/// on the socket. Returns the base URL to give the client (`http://<address>/rest/v1/`).
pub async fn local_server<F, Fut>(answer: F) -> String
where
    F: Fn(String, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(String::from_utf8_lossy(&head).into_owned(), socket).await;
            });
        }
    });
    format!("http://{address}/rest/v1/")
}
