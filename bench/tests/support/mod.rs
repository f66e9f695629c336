//! What the benchmark's tests share: running the `bench` binary.

use std::process::Command;

pub fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bench"))
}

/// Runs `command`, failing the test with its stderr when it fails; returns its stdout.
pub fn run(command: &mut Command) -> String {
    let output = command.output().expect("starting the command");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}
