//! `bench peer duckdb`: our stages and DuckDB's on the same raw layer, night by night, in one
//! run; DuckDB's final snapshot must equal ours (ids and `last_updated`). No timing is
//! asserted: the figures are the benchmark's (docs/benchmarks.md).

mod support;

use std::path::Path;
use std::process::Command;

use support::{bench, run};
use tascomi_test_support::python;

/// The side-by-side table's rows of `stage`: (night, rows) of each.
fn side_by_side(out: &str, stage: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() > 5 && cells[1] == "applications" && cells[3] == stage)
                .then(|| (cells[2].to_owned(), cells[4].to_owned()))
        })
        .collect()
}

fn compare_and_check(python: &str, dir: &Path, updates: &str) {
    let raw = dir.join(format!("raw-{updates}"));
    run(bench()
        .args([
            "write-raw",
            "--dataset",
            "applications",
            "--updates",
            updates,
        ])
        .args(["--records", "300", "--nights", "2", "--out"])
        .arg(&raw));
    let data = dir.join(format!("data-{updates}"));
    let json = dir.join(format!("runs-{updates}.json"));
    let out = run(bench()
        .args(["peer", "duckdb", "--python", python, "--from-raw"])
        .arg(&raw)
        .arg("--data-dir")
        .arg(&data)
        .arg("--json")
        .arg(&json));
    // The command fails unless the final snapshots hold the same ids and last_updated.
    assert!(
        out.contains("applications: DuckDB's final snapshot equals ours: 302 rows"),
        "{out}"
    );
    // Both engines publish the same rows at every stage (the table shows one count when so):
    // paging duplicates (on by default) collapsed by both parses.
    let night = |n: &str, rows: &str| (n.to_owned(), rows.to_owned());
    for stage in ["parse", "recast"] {
        assert_eq!(
            side_by_side(&out, stage),
            [night("full load", "300"), night("1", "4"), night("2", "4")],
            "{out}"
        );
    }
    assert_eq!(
        side_by_side(&out, "snapshot"),
        [
            night("full load", "300"),
            night("1", "301"),
            night("2", "302")
        ],
        "{out}"
    );

    let runs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 18, "one object per stage run of each engine");
    for engine in ["ours", "duckdb"] {
        let mine: Vec<_> = runs.iter().filter(|r| r["engine"] == engine).collect();
        let keys: Vec<(String, String)> = mine
            .iter()
            .map(|r| {
                (
                    r["date"].as_str().unwrap().to_owned(),
                    r["stage"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut expected = Vec::new();
        for date in ["2027-01-04", "2027-01-05", "2027-01-06"] {
            for stage in ["parse", "recast", "snapshot"] {
                expected.push((date.to_owned(), stage.to_owned()));
            }
        }
        assert_eq!(keys, expected, "{engine}");
        for r in mine {
            assert_eq!(r["table"], "applications");
            assert_eq!(r["dataset"], "applications");
            assert_eq!(r["update_model"], updates);
            assert_eq!(r["paging_duplicates"], true);
            assert_eq!(r["records"], 300);
            assert!(r["wall_s"].as_f64().is_some(), "{r}");
            assert!(r["peak_rss_mib"].as_f64().is_some_and(|m| m > 0.0), "{r}");
        }
    }

    // The comparison does fail on a different snapshot: DuckDB's own of the night before.
    let peer_dir = data.join("duckdb/applications");
    let verdict = run(Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/peer/duckdb_stages.py"
        ))
        .arg("compare")
        .arg("--peer")
        .arg(peer_dir.join("snapshot-20270105.parquet"))
        .arg("--ours")
        .arg(peer_dir.join("snapshot-20270106.parquet")));
    let verdict: serde_json::Value = serde_json::from_str(verdict.trim()).unwrap();
    assert_eq!(verdict["equal"], false, "{verdict}");
    assert_eq!(
        (verdict["ours_rows"].as_u64(), verdict["peer_rows"].as_u64()),
        (Some(302), Some(301))
    );
}

#[test]
fn duckdb_runs_the_same_stages_on_the_same_raw_and_ends_with_our_snapshot() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for updates in ["even", "realistic"] {
        compare_and_check(&python, dir.path(), updates);
    }
}
