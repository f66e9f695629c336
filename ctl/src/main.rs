//! `tascomi`: the operator command. See `ctl::cli`.

/// This program allocates with mimalloc, as the services do: the embedded default runs the
/// stages in process, and with glibc's allocator the encoding and decoding threads each kept an
/// arena of freed buffers (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ctl::cli::main().await
}
