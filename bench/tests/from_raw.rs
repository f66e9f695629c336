//! `bench run --from-raw`: a raw layer written outside the benchmark, in the brief's layout, is
//! imported and run through parse, recast and snapshot night by night; and `bench night` runs
//! every table of the pipeline file.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{bench, run};

/// The `rows` column of the result rows of `stage` whose first column starts with `label`.
fn rows_of(table: &str, label: &str, stage: &str) -> Vec<u64> {
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() > 4 && cells[1].starts_with(label) && cells[2] == stage)
                .then(|| cells[3].parse().expect("a row count"))
        })
        .collect()
}

#[test]
fn the_benchmarks_own_raw_written_as_plain_files_runs_night_by_night() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let out = run(bench()
        .args(["write-raw", "--dataset", "applications"])
        .args([
            "--records",
            "300",
            "--fields",
            "40",
            "--nights",
            "2",
            "--out",
        ])
        .arg(&raw));
    assert!(out.contains("wrote 3 nights of applications"), "{out}");
    // The layout is the brief's, with nothing but the Parquet files.
    let day = raw.join(
        "planning/tascomi/api-responses/applications/import_year=2027/import_month=01/import_day=05/import_date=20270105",
    );
    let names: Vec<String> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["part-00000.parquet"]);

    let data = dir.path().join("data");
    let json = dir.path().join("runs.json");
    let table = run(bench()
        .args(["run", "--from-raw"])
        .arg(&raw)
        .arg("--data-dir")
        .arg(&data)
        .arg("--json")
        .arg(&json));
    // Paging duplicates are on by default: the full load serves its first record twice, and
    // each night the first updated id comes in two versions. Parse keeps one row per id.
    assert_eq!(
        rows_of(&table, "applications 2027-01-0", "import raw"),
        [301, 5, 5]
    );
    assert_eq!(
        rows_of(&table, "applications 2027-01-0", "parse"),
        [300, 4, 4]
    );
    // 300 records, then each night 3 updated and 1 new.
    assert_eq!(
        rows_of(&table, "applications 2027-01-0", "snapshot"),
        [300, 301, 302]
    );
    // `--json`: one object per stage run, with what the raw layer was generated as.
    let runs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 9, "{runs:?}");
    let snapshots: Vec<u64> = runs
        .iter()
        .filter(|r| r["stage"] == "snapshot")
        .map(|r| r["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(snapshots, [300, 301, 302]);
    for run in runs {
        assert_eq!(run["table"], "applications");
        assert_eq!(run["engine"], "ours");
        assert_eq!(run["update_model"], "even");
        assert_eq!(run["paging_duplicates"], true);
        assert!(run["wall_s"].as_f64().is_some() && run["peak_rss_mib"].as_f64().is_some());
    }
}

/// A Python with pyarrow: `TASCOMI_PYTHON`, or the `.venv` that scripts/test.sh creates.
fn python_with_pyarrow() -> Result<PathBuf, String> {
    let python = std::env::var_os("TASCOMI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    match Command::new(&python)
        .args(["-c", "import pyarrow"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(python),
        Ok(o) => Err(format!(
            "{} has no pyarrow: {}",
            python.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("no python at {}: {e}", python.display())),
    }
}

/// What other writers leave: one day with `write_to_dataset` (the partition columns only in the
/// folder names, file names of pyarrow's choosing), 64-bit integers and a millisecond, UTC
/// `import_datetime`; one day as the old Glue jobs (Spark) wrote theirs: the partition columns
/// also in the file, the status as text (`"200"`), `import_timestamp` as Python prints the float
/// of the epoch seconds, `import_datetime` as an INT96 timestamp. ingest-svc writes a 64-bit
/// page number, the status as text and naive microseconds.
const PYARROW_WRITER: &str = r#"
import json, sys, datetime
import pyarrow as pa, pyarrow.parquet as pq
root = sys.argv[1] + "/planning/tascomi/api-responses/appeals"
def day(date, ids, updated, glue):
    records = [json.dumps({"id": str(i), "last_updated": updated, "appeal_status": "open" if i % 2 else None})
               for i in ids]
    n = len(records)
    at = datetime.datetime(int(date[:4]), int(date[4:6]), int(date[6:]), 2, 30, 0, 250000, tzinfo=datetime.timezone.utc)
    if glue:
        status = pa.array(["200"] * n, pa.string())
        imported = pa.array([at.replace(tzinfo=None)] * n, pa.timestamp("us"))
    else:
        status = pa.array([200] * n, pa.int64())
        imported = pa.array([at] * n, pa.timestamp("ms", tz="UTC"))
    return pa.table({
        "page_number": pa.array([1 + i // 20 for i in range(n)], pa.int64()),
        "import_api_url_requested": ["https://example/rest/v1/appeals"] * n,
        "import_api_status_code": status,
        "import_exception_thrown": pa.array([None] * n, pa.string()),
        "appeals": records,
        "import_datetime": imported,
        "import_timestamp": [str(at.timestamp())] * n,
        "import_year": [date[:4]] * n, "import_month": [date[4:6]] * n,
        "import_day": [date[6:]] * n, "import_date": [date] * n,
    })
pq.write_to_dataset(day("20270104", range(1, 51), "2027-01-03 10:00:00", False), root,
                    partition_cols=["import_year", "import_month", "import_day", "import_date"])
path = root + "/import_year=2027/import_month=01/import_day=05/import_date=20270105"
import os; os.makedirs(path)
pq.write_table(day("20270105", range(41, 56), "2027-01-04 11:00:00", True), path + "/data.parquet",
               use_deprecated_int96_timestamps=True)
assert pq.ParquetFile(path + "/data.parquet").schema.column(5).physical_type == "INT96"
"#;

#[test]
fn a_raw_layer_written_by_pyarrow_is_parsed_recast_and_snapshotted() {
    let python = match python_with_pyarrow() {
        Ok(python) => python,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    run(Command::new(python).args(["-c", PYARROW_WRITER]).arg(&raw));
    let data = dir.path().join("data");
    let table = run(bench()
        .args(["run", "--in-process", "--table", "appeals", "--from-raw"])
        .arg(&raw)
        .arg("--data-dir")
        .arg(&data));
    assert_eq!(rows_of(&table, "appeals 2027-01-0", "parse"), [50, 15]);
    assert_eq!(rows_of(&table, "appeals 2027-01-0", "recast"), [50, 15]);
    // Ids 1..=50, then 41..=50 updated and 51..=55 new.
    assert_eq!(rows_of(&table, "appeals 2027-01-0", "snapshot"), [50, 55]);
}

#[test]
fn a_whole_night_runs_every_table_of_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    // Scale 0.0002: documents 1,000 records, applications 20, the others 10.
    let out = run(bench()
        .args(["night", "--records-scale", "0.0002", "--concurrency", "3"])
        .arg("--data-dir")
        .arg(dir.path()));
    let tables = out
        .lines()
        .skip_while(|l| !l.starts_with("## the night, per table"))
        .filter(|l| l.contains("| snapshot |"))
        .count();
    assert_eq!(tables, 48, "{out}");
    // documents: 1,000 records, then 10 updated and 2 new.
    assert_eq!(rows_of(&out, "documents (", "snapshot"), [1002]);
    assert_eq!(rows_of(&out, "applications (", "recast"), [2]);
    assert!(
        out.contains("**parse → recast → snapshot, end to end**"),
        "{out}"
    );
}
