//! The ingest service: config -> build -> run until SIGTERM (see `common::service`).

use ingest_svc::IngestStage;

/// This program allocates with mimalloc: with glibc's allocator, the encoding and decoding
/// threads each kept an arena of freed buffers and a wide table's snapshot held nearly twice its
/// live memory (measured with heaptrack and `bench`, docs/benchmarks.md). Each binary sets it in
/// its own `main.rs`; the library `common` leaves the choice to the program.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::run("ingest-svc", |env, sdk| async move {
        IngestStage::from_env(&env, &sdk).await
    })
    .await
}
