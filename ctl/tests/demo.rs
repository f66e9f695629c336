//! `tascomi demo`, the README's first command, end to end through the binary.

use std::process::Command;

#[test]
fn demo_runs_the_pipeline_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_tascomi"))
            .args(["demo", "--nights", "2", "--data-dir"])
            .arg(&data_dir)
            .output()
            .expect("tascomi runs")
    };
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("applications   snapshot            2"),
        "{stdout}"
    );
    assert!(stdout.contains("duckdb -c"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    // A second demo wipes its own folder and starts again.
    assert!(run().status.success());
    // It refuses to wipe a folder it did not make.
    let foreign = dir.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
        .args(["demo", "--data-dir"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("was not made by the demo"));
}
