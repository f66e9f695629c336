//! What the tests of `tascomi` on the embedded default share: running the binary, and reading
//! what it published.

#![allow(dead_code)]

pub mod browser;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use chrono::NaiveDate;
use common::layout::{Layer, TableName};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::published_partitions;
use common::storage::{LocalStorage, Storage, split_s3_uri};

/// A data directory and a pipeline file in a temporary directory.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub data_dir: std::path::PathBuf,
    pub pipeline: std::path::PathBuf,
}

impl Workspace {
    /// `tables` is the pipeline file's `tables:` body, e.g. `  appeals: daily\n`; the
    /// production dictionary types the columns.
    pub fn new(tables: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let pipeline = dir.path().join("pipeline.yaml");
        let dictionary = tascomi_sim::production_dictionary_path();
        std::fs::write(
            &pipeline,
            format!(
                "column_type_dictionary: {}\ntables:\n{tables}",
                dictionary.to_str().unwrap()
            ),
        )
        .unwrap();
        Self {
            dir,
            data_dir,
            pipeline,
        }
    }

    /// Runs `tascomi ARGS --local --data-dir DIR --pipeline FILE` with the simulator's keys
    /// and `env`; returns (success, stdout and stderr).
    pub fn tascomi(
        &self,
        sim: &tascomi_sim::SimHandle,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (bool, String) {
        tascomi(&self.data_dir, &self.pipeline, sim, args, env)
    }

    /// [`run_night`] on this workspace's data directory and pipeline file.
    pub fn run_night(&self, sim: &tascomi_sim::SimHandle, day: NaiveDate) -> String {
        run_night(&self.data_dir, &self.pipeline, sim, day)
    }

    /// The lines of the stage's dead-letter file (one message each).
    pub fn dead_letters(&self, stage: &str) -> Vec<serde_json::Value> {
        let path = self
            .data_dir
            .join("_dead_letters")
            .join(format!("{stage}.jsonl"));
        match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => vec![],
        }
    }
}

/// `tascomi run` for the night of `day` against the simulator (set to `day` first) on the
/// lake in `data_dir`; panics, with the output, unless it succeeds. Returns the output.
pub fn run_night(
    data_dir: &Path,
    pipeline: &Path,
    sim: &tascomi_sim::SimHandle,
    day: NaiveDate,
) -> String {
    sim.set_today(day);
    let as_of = day.to_string();
    let (ok, out) = tascomi(
        data_dir,
        pipeline,
        sim,
        &["run", "--api-url", &sim.base_url, "--as-of", &as_of],
        &[],
    );
    assert!(ok, "night of {day} in {}:\n{out}", data_dir.display());
    out
}

pub fn tascomi(
    data_dir: &Path,
    pipeline: &Path,
    sim: &tascomi_sim::SimHandle,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
        .args(args)
        .args(["--local", "--data-dir"])
        .arg(data_dir)
        .arg("--pipeline")
        .arg(pipeline)
        .env("TASCOMI_PUBLIC_KEY", &sim.public_key)
        .env("TASCOMI_PRIVATE_KEY", &sim.private_key)
        .env_remove("TASCOMI_COLUMN_TYPE_DICTIONARY")
        .env_remove("TASCOMI_PIPELINE_FILE")
        .env_remove("TASCOMI_API_BASE_URL")
        .envs(env.iter().copied())
        .output()
        .expect("tascomi runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The dates of the published partitions of a layer of a table.
pub async fn published_dates(data_dir: &Path, table: &str, layer: Layer) -> Vec<NaiveDate> {
    let platform = Platform::local(data_dir);
    let table = TableName::new(table).unwrap();
    let any = platform.layout.partition(&table, layer, NaiveDate::MIN);
    published_partitions(platform.catalog.as_ref(), &any)
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect()
}

/// Unpublishes a partition from the catalog (its files stay): what a night killed between two
/// stages, or a hand-made deletion, leaves.
pub async fn unpublish(data_dir: &Path, table: &str, layer: Layer, date: NaiveDate) {
    let platform = Platform::local(data_dir);
    let table = TableName::new(table).unwrap();
    let partition = platform.layout.partition(&table, layer, date);
    let published = published_partitions(platform.catalog.as_ref(), &partition)
        .await
        .unwrap();
    let (_, info) = published
        .iter()
        .find(|(d, _)| *d == date)
        .expect("partition published");
    platform
        .catalog
        .drop_partition(&partition.database, &partition.catalog_table, &info.values)
        .await
        .unwrap();
}

/// id -> last_updated of the snapshot partition of `date`, read from the published files.
pub async fn snapshot(
    data_dir: &Path,
    table: &str,
    date: NaiveDate,
) -> BTreeMap<i64, Option<String>> {
    let platform = Platform::local(data_dir);
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
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(data_dir));
    let mut rows = BTreeMap::new();
    for object in storage.list(bucket, prefix).await.unwrap() {
        for batch in read_all(storage.clone(), bucket, &object.key)
            .await
            .unwrap()
        {
            let ids = arrow::compute::cast(
                batch.column_by_name("id").unwrap(),
                &arrow::datatypes::DataType::Int64,
            )
            .unwrap();
            let updated = arrow::compute::cast(
                batch.column_by_name("last_updated").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let ids = ids.as_primitive::<arrow::datatypes::Int64Type>();
            let updated = updated.as_string::<i32>();
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

/// What the simulated API holds for `table` as of `date`, as [`snapshot`] reads it.
pub fn expected(
    sim: &tascomi_sim::SimHandle,
    table: &str,
    date: NaiveDate,
) -> BTreeMap<i64, Option<String>> {
    sim.expected_snapshot(table, date)
        .into_iter()
        .map(|record| {
            let id = record["id"].as_str().unwrap().parse().unwrap();
            let updated = record["last_updated"].as_str().map(str::to_owned);
            (id, updated)
        })
        .collect()
}
