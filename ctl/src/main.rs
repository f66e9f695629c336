//! `tascomi`: the operator command. See `ctl::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ctl::cli::main().await
}
