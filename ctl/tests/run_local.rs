//! `tascomi run --local` night after night against the simulated API, then the operations on
//! the embedded default, through the real binary.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use chrono::NaiveDate;
use common::layout::{Layer, TableName, date_value};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::published_partitions;
use common::storage::{LocalStorage, Storage, split_s3_uri};
use tascomi_sim::{SimApi, SimConfig};

const PIPELINE: &str = "\
column_type_dictionary: DICTIONARY
tables:
  applications: { schedule: daily, completeness_column: application_reference_number }
  appeals: daily
";

fn tascomi(
    data_dir: &Path,
    pipeline: &Path,
    sim: &tascomi_sim::SimHandle,
    args: &[&str],
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
        .output()
        .expect("tascomi runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// id -> last_updated of the snapshot partition of `date`, read from the published files.
async fn snapshot(data_dir: &Path, table: &str, date: NaiveDate) -> BTreeMap<i64, Option<String>> {
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

fn expected(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_nights_match_what_the_api_holds_and_operations_work() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let pipeline = dir.path().join("pipeline.yaml");
    let dictionary = tascomi_sim::production_dictionary_path();
    std::fs::write(
        &pipeline,
        PIPELINE.replace("DICTIONARY", dictionary.to_str().unwrap()),
    )
    .unwrap();
    let config = SimConfig::with_production_dictionary().unwrap();
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    let days: Vec<NaiveDate> = (0..3).map(|i| first + chrono::Duration::days(i)).collect();

    for day in &days {
        sim.set_today(*day);
        let as_of = day.to_string();
        let (ok, out) = tascomi(
            &data_dir,
            &pipeline,
            &sim,
            &["run", "--api-url", &sim.base_url, "--as-of", &as_of],
        );
        assert!(ok, "night of {day} failed:\n{out}");
        assert!(out.contains("2 table(s) run"), "{out}");
        for table in ["applications", "appeals"] {
            let got = snapshot(&data_dir, table, *day).await;
            let want = expected(&sim, table, *day);
            assert_eq!(got.len(), want.len(), "{table} on {day}: row count");
            assert_eq!(got, want, "{table} on {day}");
        }
    }
    let last = *days.last().unwrap();

    // The folder holds only published data: a glob over the snapshot folder reads exactly the
    // published partitions' rows.
    let glob_rows =
        count_parquet_rows(&data_dir.join("refined-zone/planning/tascomi/snapshot/appeals")).await;
    let published_rows: usize = {
        let mut n = 0;
        for day in &days {
            n += snapshot(&data_dir, "appeals", *day).await.len();
        }
        n
    };
    assert_eq!(glob_rows, published_rows);

    // status
    let (ok, out) = tascomi(&data_dir, &pipeline, &sim, &["status"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("applications") && out.contains(&date_value(last)),
        "{out}"
    );

    // drift: the simulated data matches the dictionary.
    let (ok, out) = tascomi(&data_dir, &pipeline, &sim, &["drift"]);
    assert!(ok, "drift reported on matching data:\n{out}");

    // replay --dry-run prints the messages and changes nothing.
    let from = days[1].to_string();
    let (ok, out) = tascomi(
        &data_dir,
        &pipeline,
        &sim,
        &[
            "replay",
            "--stage",
            "recast",
            "--table",
            "appeals",
            "--from",
            &from,
            "--dry-run",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.matches("\"type\":\"partition_ready\"").count(),
        2,
        "{out}"
    );

    // reset without --yes only prints the plan.
    let before = snapshot(&data_dir, "appeals", last).await;
    let (ok, out) = tascomi(
        &data_dir,
        &pipeline,
        &sim,
        &[
            "reset", "--table", "appeals", "--stage", "recast", "--from", &from,
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert!(
        out.contains("unpublish and remove appeals increment"),
        "{out}"
    );
    assert_eq!(snapshot(&data_dir, "appeals", last).await, before);

    // reset --yes removes and rebuilds: the same snapshot comes back.
    let as_of = last.to_string();
    let (ok, out) = tascomi(
        &data_dir,
        &pipeline,
        &sim,
        &[
            "reset", "--table", "appeals", "--stage", "recast", "--from", &from, "--yes",
            "--as-of", &as_of,
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(snapshot(&data_dir, "appeals", last).await, before);

    // rollback to the first night's snapshot.
    let to = days[0].to_string();
    let (ok, out) = tascomi(
        &data_dir,
        &pipeline,
        &sim,
        &["rollback", "--table", "appeals", "--to", &to, "--yes"],
    );
    assert!(ok, "{out}");
    let platform = Platform::local(&data_dir);
    let any = platform
        .layout
        .partition(&TableName::new("appeals").unwrap(), Layer::Snapshot, last);
    let left = published_partitions(platform.catalog.as_ref(), &any)
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
        vec![days[0]]
    );

    // redrive with nothing dead-lettered is a no-op.
    let (ok, out) = tascomi(&data_dir, &pipeline, &sim, &["redrive", "--stage", "parse"]);
    assert!(ok, "{out}");
    assert!(out.contains("0 message(s) sent back"), "{out}");
    sim.stop().await;
}

/// Rows of every Parquet file below `dir`, read from the footers: what a glob would read.
async fn count_parquet_rows(dir: &Path) -> usize {
    use parquet::file::reader::FileReader;
    let mut rows = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).unwrap();
                let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
                rows += reader.metadata().file_metadata().num_rows() as usize;
            }
        }
    }
    rows
}
