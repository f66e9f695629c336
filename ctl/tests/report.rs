//! `tascomi report` and `tascomi status` on the embedded default, through the real binary: the
//! demo's report opens in a real headless browser without a script error and shows every table;
//! a table with a problem comes first, the healthy ones after; neither command reads the tables.

mod support;

use std::path::Path;
use std::process::Command;

use chrono::NaiveDate;
use common::layout::{Layer, date_value};
use support::{Workspace, browser, unpublish};
use tascomi_sim::{SimApi, SimConfig};

const DEMO_TABLES: [&str; 5] = [
    "applications",
    "appeals",
    "contacts",
    "enforcements",
    "wards",
];

/// Checks what must hold of any report, whatever the browser: one self-contained page.
fn assert_self_contained(page: &str) {
    let lower = page.to_ascii_lowercase();
    for forbidden in [
        "<script",
        "javascript:",
        " src=",
        "<link",
        "@import",
        "url(",
        "http://",
        "https://",
    ] {
        // The SVG namespace is a name, not a fetch.
        let hits = lower
            .matches(forbidden)
            .count()
            .saturating_sub(if forbidden == "http://" {
                lower
                    .matches("xmlns=\"http://www.w3.org/2000/svg\"")
                    .count()
            } else {
                0
            });
        assert_eq!(hits, 0, "the page contains {forbidden:?}");
    }
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<style>"));
    assert!(page.contains("<svg"));
}

#[test]
fn the_demo_report_renders_in_a_headless_browser_and_shows_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
        .args(["demo", "--nights", "3", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("tascomi runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The demo writes the report of its nights, judged as of its last night: every table fresh.
    let page_path = data_dir.join("tascomi-report.html");
    assert!(
        stdout.contains("5 tables: 5 fresh, 0 stale, 0 failing; 0 dead letter(s)"),
        "{stdout}"
    );
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("Nothing needs attention"), "{page}");
    for table in DEMO_TABLES {
        assert!(
            page.contains(&format!("id=\"t-{table}\"")),
            "{table} missing"
        );
    }
    // The same page again from the command, with the flags the demo printed.
    let pipeline = data_dir.join("pipeline.yaml");
    let again = dir.path().join("again.html");
    let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
        .args(["report", "--local", "--data-dir"])
        .arg(&data_dir)
        .arg("--pipeline")
        .arg(&pipeline)
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        std::fs::read_to_string(&again)
            .unwrap()
            .contains("id=\"t-wards\"")
    );
    // `status` agrees, and exits 0: nothing is stale right after the demo.
    let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
        .args(["status", "--local", "--data-dir"])
        .arg(&data_dir)
        .arg("--pipeline")
        .arg(&pipeline)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{status}");
    assert!(!status.contains("STALE"), "{status}");
    assert!(
        status.lines().count() <= 3,
        "status is a summary:\n{status}"
    );

    let Some(chromium) = browser::chromium() else {
        return;
    };
    let rendered = browser::dump_dom(&chromium, &page_path);
    let errors = browser::script_errors(&rendered.log);
    assert!(errors.is_empty(), "script errors: {errors:#?}");
    assert!(
        rendered.dom.contains("Tascomi pipeline report"),
        "{}",
        rendered.dom
    );
    for table in DEMO_TABLES {
        assert!(
            rendered.dom.contains(&format!("id=\"t-{table}\"")),
            "the browser shows no {table}"
        );
    }
    assert!(!rendered.dom.to_ascii_lowercase().contains("<script"));
    assert!(rendered.dom.matches("<svg").count() >= DEMO_TABLES.len() * 3);
    let png = browser::screenshot(&chromium, &page_path, 1280, 1400);
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    eprintln!(
        "report: {} bytes, rendered by Chromium in {:.2} s (browser start included)",
        page.len(),
        rendered.elapsed.as_secs_f64()
    );
}

async fn sim() -> (tascomi_sim::SimHandle, NaiveDate) {
    let config = SimConfig::with_production_dictionary().unwrap();
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    (sim, first)
}

/// Removes every Parquet file under `dir`: what is left is the catalog, the data-quality
/// reports and the queues, which is all `status` and `report` may read.
fn remove_parquet(dir: &Path) -> usize {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            removed += remove_parquet(&path);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(&path).unwrap();
            removed += 1;
        }
    }
    removed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_come_first_and_status_judges_the_schedule_as_of_a_date() {
    let ws = Workspace::new("  appeals: daily\n  contacts: daily\n");
    let (sim, first) = sim().await;
    let days: Vec<NaiveDate> = (0..3).map(|i| first + chrono::Duration::days(i)).collect();
    for day in &days {
        ws.run_night(&sim, *day);
    }
    let last = days[2];
    // A night killed after ingest for appeals: its last raw import has no later layers.
    for layer in [Layer::Parsed, Layer::Increment, Layer::Snapshot] {
        unpublish(&ws.data_dir, "appeals", layer, last).await;
    }
    assert!(remove_parquet(&ws.data_dir.join("refined-zone")) > 0);
    assert!(remove_parquet(&ws.data_dir.join("raw-zone")) > 0);

    let (ok, out) = ws.tascomi(&sim, &["status"], &[]);
    assert!(!ok, "{out}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "as of {last} (the newest import in the data directory; --as-of DATE to choose)"
            )
            .as_str()
        ),
        "{out}"
    );
    assert_eq!(
        lines.next(),
        Some("2 tables: 1 fresh, 0 stale, 1 failing; 0 dead letter(s)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "HOLE    appeals: the raw import {} has no parsed partition",
            date_value(last)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "repair: tascomi reset --table appeals --stage parse --from {last} --local"
        )),
        "{out}"
    );
    assert!(
        !out.contains("contacts"),
        "a fresh table is not listed:\n{out}"
    );
    // --verbose adds every table and layer.
    let (_, verbose) = ws.tascomi(&sim, &["status", "--verbose"], &[]);
    assert!(
        verbose.contains("contacts") && verbose.contains("queue"),
        "{verbose}"
    );

    // As of two nights later, contacts lacks the snapshots every table has every night.
    let later = last + chrono::Duration::days(2);
    let (ok, out) = ws.tascomi(&sim, &["status", "--as-of", &date_value(later)], &[]);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "STALE   contacts: the latest snapshot is {}, but every table has the snapshot of {}",
            date_value(last),
            date_value(later)
        )),
        "{out}"
    );
    assert!(out.contains("0 fresh, 1 stale, 1 failing"), "{out}");

    // The report: appeals first, among the problems; contacts among the healthy tables.
    let out_file = ws.dir.path().join("report.html");
    let (ok, out) = ws.tascomi(
        &sim,
        &[
            "report",
            "--out",
            out_file.to_str().unwrap(),
            "--nights",
            "7",
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("1 failing"), "{out}");
    let page = std::fs::read_to_string(&out_file).unwrap();
    assert_self_contained(&page);
    let problems = page.find("id=\"problems\"").unwrap();
    let healthy = page.find("id=\"healthy\"").unwrap();
    let appeals = page.find("id=\"t-appeals\"").unwrap();
    let contacts = page.find("id=\"t-contacts\"").unwrap();
    assert!(problems < appeals && appeals < healthy && healthy < contacts);
    assert!(page.contains("Needs attention (1)"), "{page}");
    assert!(page.contains("has no parsed partition"));
    assert!(
        page.contains("3 night(s) shown"),
        "the data holds three nights"
    );
    // Data quality, per night, from the stages' reports.
    assert!(page.contains("row_count_change"), "{page}");
    sim.stop().await;
}
