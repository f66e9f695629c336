//! `tascomi demo`, the README's first command, end to end through the binary.

use std::process::Command;

#[test]
fn demo_runs_the_pipeline_and_prints_the_summary() {
    // As the README runs it: a relative data directory, from the working directory.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = "data/demo";
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_tascomi"))
            .current_dir(dir.path())
            .args(["demo", "--nights", "2", "--data-dir", data_dir])
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
    // The commands it suggests work as printed (the pipeline file it wrote finds its dictionary).
    let flags = format!("--local --data-dir {data_dir} --pipeline {data_dir}/pipeline.yaml");
    assert!(
        stdout.contains(&format!("tascomi status {flags}")),
        "{stdout}"
    );
    for command in ["status", "drift"] {
        let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
            .current_dir(dir.path())
            .arg(command)
            .args(flags.split(' '))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tascomi {command} {flags}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
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
