//! The command line as a new user meets it: help with examples, dates in both formats with the
//! format named on a mistake, and a mistyped data directory refused rather than created.

use std::process::Command;

fn tascomi(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
        .args(args)
        .env_remove("TASCOMI_PIPELINE_FILE")
        .env_remove("TASCOMI_COLUMN_TYPE_DICTIONARY")
        .output()
        .expect("tascomi runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn commands_that_read_a_data_directory_refuse_one_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(&pipeline, "tables:\n  appeals: daily\n").unwrap();
    let missing = dir.path().join("mistyped");
    let missing = missing.to_str().unwrap();
    let pipeline = pipeline.to_str().unwrap();
    for command in [
        vec!["status"],
        vec!["drift"],
        vec!["report"],
        vec!["replay", "--stage", "parse", "--all", "--from", "20261101"],
        vec!["rollback", "--table", "appeals", "--to", "2026-11-01"],
        vec![
            "reset",
            "--table",
            "appeals",
            "--stage",
            "parse",
            "--from",
            "2026-11-01",
        ],
        vec!["redrive", "--stage", "parse"],
    ] {
        let mut args = command.clone();
        args.extend(["--local", "--data-dir", missing, "--pipeline", pipeline]);
        let (ok, out) = tascomi(&args);
        assert!(!ok, "{command:?} accepted a missing data directory:\n{out}");
        assert!(out.contains("does not exist"), "{command:?}: {out}");
        assert!(
            !std::path::Path::new(missing).exists(),
            "{command:?} created {missing}"
        );
    }
}

#[test]
fn every_help_has_an_example_and_dates_name_their_format() {
    let (ok, out) = tascomi(&["--help"]);
    assert!(ok && out.contains("Examples:"), "{out}");
    for command in [
        "demo", "run", "ingest", "replay", "reset", "rollback", "redrive", "status", "report",
        "drift",
    ] {
        let (ok, out) = tascomi(&[command, "--help"]);
        assert!(ok, "{command} --help: {out}");
        assert!(
            out.contains("Example") && out.contains(&format!("tascomi {command}")),
            "{command} --help has no example:\n{out}"
        );
    }
    let (ok, out) = tascomi(&[
        "replay",
        "--stage",
        "parse",
        "--all",
        "--from",
        "2026/11/10",
    ]);
    assert!(!ok && out.contains("YYYY-MM-DD or YYYYMMDD"), "{out}");
}
