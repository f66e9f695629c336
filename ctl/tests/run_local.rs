//! `tascomi run --local` night after night against the simulated API, then the operations on
//! the embedded default, through the real binary.

mod support;

use std::path::Path;

use chrono::NaiveDate;
use common::layout::{Layer, date_value};
use support::{expected, published_dates, snapshot};
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
    support::tascomi(data_dir, pipeline, sim, args, &[])
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

    // status: a summary, as of the last night run; every table and layer with --verbose.
    let (ok, out) = tascomi(&data_dir, &pipeline, &sim, &["status"]);
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!("as of {last} ")) && out.contains("2 tables: 2 fresh"),
        "{out}"
    );
    let (ok, out) = tascomi(&data_dir, &pipeline, &sim, &["status", "--verbose"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("applications") && out.contains(&date_value(last)),
        "{out}"
    );

    // drift: the simulated data matches the dictionary.
    let (ok, out) = tascomi(&data_dir, &pipeline, &sim, &["drift"]);
    assert!(ok, "drift reported on matching data:\n{out}");

    // replay --dry-run prints the messages, each as of its partition's own date, and the
    // snapshots it would write, and changes nothing.
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
    for day in &days[1..] {
        assert!(out.contains(&format!("\"as_of\":\"{day}\"")), "{out}");
    }
    assert!(
        out.contains(&format!(
            "writes the snapshot of appeals dated {}, {}",
            date_value(days[1]),
            date_value(days[2])
        )),
        "{out}"
    );

    // reset without --yes only prints the plan, with the snapshot dates it will write.
    let snapshots_before: Vec<_> = {
        let mut v = Vec::new();
        for day in &days {
            v.push(snapshot(&data_dir, "appeals", *day).await);
        }
        v
    };
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
    assert!(
        out.contains(&format!(
            "writes the snapshot of appeals dated {}, {}",
            date_value(days[1]),
            date_value(days[2])
        )),
        "{out}"
    );
    assert_eq!(
        snapshot(&data_dir, "appeals", last).await,
        snapshots_before[2]
    );

    // reset --yes from a past date removes and rebuilds each snapshot under its own date (not
    // one dated today): the same snapshots come back.
    let (ok, out) = tascomi(
        &data_dir,
        &pipeline,
        &sim,
        &[
            "reset", "--table", "appeals", "--stage", "recast", "--from", &from, "--yes",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("2 snapshot(s) rebuilt, 0 failed"), "{out}");
    assert_eq!(
        published_dates(&data_dir, "appeals", Layer::Snapshot).await,
        days
    );
    for (day, before) in days.iter().zip(&snapshots_before) {
        assert_eq!(&snapshot(&data_dir, "appeals", *day).await, before, "{day}");
    }

    // replay (not dry) of the snapshot stage: the same dates again, nothing dated today.
    let (ok, out) = tascomi(
        &data_dir,
        &pipeline,
        &sim,
        &[
            "replay", "--stage", "snapshot", "--table", "appeals", "--from", &from,
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        published_dates(&data_dir, "appeals", Layer::Snapshot).await,
        days
    );

    // rollback to the first night's snapshot (the date written as YYYYMMDD).
    let to = date_value(days[0]);
    let (ok, out) = tascomi(
        &data_dir,
        &pipeline,
        &sim,
        &["rollback", "--table", "appeals", "--to", &to, "--yes"],
    );
    assert!(ok, "{out}");
    assert_eq!(
        published_dates(&data_dir, "appeals", Layer::Snapshot).await,
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
