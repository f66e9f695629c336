//! Shared set-up of the ingest integration tests: a simulated API, a local platform in a
//! temporary directory, the stage, and readers of what it published.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Int32Array, StringArray};
use chrono::NaiveDate;
use common::config::PipelineFile;
use common::layout::{Layer, TableName};
use common::messages::{IngestMode, IngestRequest};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::storage::split_s3_uri;
use ingest_svc::{IngestSettings, IngestStage};
use serde_json::{Map, Value};
use tascomi_sim::{History, SimApi, SimConfig, SimHandle};

pub const PIPELINE: &str = "tables:\n  appeals: daily\n  applications: daily\n  notes: daily\n";

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

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sim: SimHandle,
    pub platform: Platform,
    pub stage: Arc<IngestStage>,
}

pub async fn fixture(config: SimConfig) -> Fixture {
    fixture_with(config, |_| {}).await
}

pub async fn fixture_with(config: SimConfig, tweak: impl FnOnce(&mut IngestSettings)) -> Fixture {
    let sim = SimApi::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    let mut settings = settings(&sim.base_url);
    tweak(&mut settings);
    let stage = stage_on(platform.clone(), &sim, settings);
    Fixture {
        dir,
        sim,
        platform,
        stage,
    }
}

pub fn stage_on(platform: Platform, sim: &SimHandle, settings: IngestSettings) -> Arc<IngestStage> {
    let pipeline = PipelineFile::parse(PIPELINE, "test pipeline").unwrap();
    Arc::new(IngestStage::new(platform, pipeline, settings, sim.credentials()).unwrap())
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
    pub page: i32,
    pub url: String,
    pub status: Option<i32>,
    pub exception: Option<String>,
    pub record: Option<String>,
}

impl RawRow {
    pub fn json(&self) -> Map<String, Value> {
        serde_json::from_str(self.record.as_deref().unwrap()).unwrap()
    }
}

/// Every row of a published raw partition (empty when the partition does not exist), sorted.
pub async fn raw_rows(platform: &Platform, name: &str, date: NaiveDate) -> Vec<RawRow> {
    let partition = platform.layout.partition(&table(name), Layer::Raw, date);
    let partitions = platform
        .catalog
        .list_partitions(&partition.database, &partition.catalog_table)
        .await
        .unwrap();
    let Some(info) = partitions.iter().find(|p| p.values == partition.values()) else {
        return Vec::new();
    };
    let (bucket, prefix) = split_s3_uri(&info.location).unwrap();
    let mut rows = Vec::new();
    for object in platform.storage.list(bucket, prefix).await.unwrap() {
        for batch in read_all(platform.storage.clone(), bucket, &object.key)
            .await
            .unwrap()
        {
            let col = |name: &str| batch.column_by_name(name).unwrap().clone();
            let pages = col("page_number");
            let pages = pages.as_any().downcast_ref::<Int32Array>().unwrap();
            let urls = col("import_api_url_requested");
            let urls = urls.as_any().downcast_ref::<StringArray>().unwrap();
            let statuses = col("import_api_status_code");
            let statuses = statuses.as_any().downcast_ref::<Int32Array>().unwrap();
            let errors = col("import_exception_thrown");
            let errors = errors.as_any().downcast_ref::<StringArray>().unwrap();
            let records = col(name);
            let records = records.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..batch.num_rows() {
                let opt = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_owned());
                rows.push(RawRow {
                    page: pages.value(i),
                    url: urls.value(i).to_owned(),
                    status: (!statuses.is_null(i)).then(|| statuses.value(i)),
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

/// The interpreter that has pyarrow: `TASCOMI_PYTHON`; `None` (with the reason printed) when
/// unset outside CI.
pub fn python() -> Option<String> {
    let env = common::config::Env::from_process();
    match env.get("TASCOMI_PYTHON") {
        Some(python) => Some(python.to_owned()),
        None if env.get("CI").is_some() => {
            panic!("TASCOMI_PYTHON must be set in CI (scripts/test.sh sets it)")
        }
        None => {
            eprintln!("skipped: TASCOMI_PYTHON is not set (run scripts/test.sh)");
            None
        }
    }
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
