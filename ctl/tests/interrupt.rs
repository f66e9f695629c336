//! Long work as an operator lives with it: without a terminal, progress is printed as lines
//! while the run goes; Ctrl-C stops at the next safe point, says what finished and what the
//! next run repeats, and the `tascomi redrive` commands it names finish the work.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::NaiveDate;
use common::layout::{Layer, date_value};
use support::{Workspace, published_dates};
use tascomi_sim::{Faults, SimApi, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_at_a_safe_point_and_redrive_repeats_what_was_left() {
    let ws = Workspace::new("  appeals: daily\n  contacts: daily\n");
    // Small pages, each answered slowly, and contacts four times the size of appeals: Ctrl-C
    // comes when appeals is imported, while contacts is still being fetched.
    let mut config = SimConfig {
        per_page: 10,
        faults: Faults {
            slow_share: 1.0,
            slow_delay: Duration::from_millis(50),
            ..Faults::default()
        },
        ..SimConfig::with_production_dictionary().unwrap()
    };
    config.table_history.insert(
        "contacts".into(),
        tascomi_sim::History {
            initial_records: 1000,
            ..config.history.clone()
        },
    );
    let day: NaiveDate = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    sim.set_today(day);

    let mut child = Command::new(env!("CARGO_BIN_EXE_tascomi"))
        .args([
            "run",
            "--api-url",
            &sim.base_url,
            "--as-of",
            &day.to_string(),
        ])
        .args(["--local", "--data-dir"])
        .arg(&ws.data_dir)
        .arg("--pipeline")
        .arg(&ws.pipeline)
        .env("TASCOMI_PUBLIC_KEY", &sim.public_key)
        .env("TASCOMI_PRIVATE_KEY", &sim.private_key)
        .env_remove("TASCOMI_COLUMN_TYPE_DICTIONARY")
        .env_remove("TASCOMI_PIPELINE_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Progress arrives as lines while the run goes (no terminal here).
    let stderr = child.stderr.take().unwrap();
    let (first_line, progress) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.starts_with("progress: ") && lines.is_empty() {
                let _ = first_line.send(());
            }
            lines.push(line);
        }
        lines
    });
    progress
        .recv_timeout(Duration::from_secs(120))
        .expect("a progress line while the run goes");
    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap().join("\n");
    assert_eq!(status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("stopping at the next safe point"),
        "{stderr}"
    );
    assert!(
        stdout.contains("interrupted (Ctrl-C) at a safe point:"),
        "{stdout}"
    );
    // Each table not finished is named, with the command that repeats what was left.
    let unfinished: Vec<&str> = ["appeals", "contacts"]
        .into_iter()
        .filter(|t| stdout.contains(&format!("FAILED  {t}: ")))
        .collect();
    assert!(!unfinished.is_empty(), "{stdout}");
    assert!(stdout.contains("tascomi redrive --stage"), "{stdout}");
    assert!(
        stdout.contains("interrupted before parse finished")
            || stdout.contains("interrupted before recast finished")
            || stdout.contains("interrupted before snapshot finished"),
        "{stdout}"
    );

    // The redrives it names finish the work: every stage whose dead-letter queue holds
    // something, in pipeline order.
    for stage in ["ingest", "parse", "recast", "snapshot"] {
        if ws.dead_letters(stage).is_empty() {
            continue;
        }
        let (ok, out) = ws.tascomi(
            &sim,
            &["redrive", "--stage", stage, "--api-url", &sim.base_url],
            &[],
        );
        assert!(ok, "redrive {stage}: {out}");
    }
    for table in ["appeals", "contacts"] {
        assert_eq!(
            published_dates(&ws.data_dir, table, Layer::Snapshot).await,
            vec![day],
            "{table}"
        );
    }
    let (ok, out) = ws.tascomi(&sim, &["status"], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("2 tables: 2 fresh"), "{out}");
    assert!(!out.contains(&date_value(day - chrono::Duration::days(1))));
    sim.stop().await;
}
