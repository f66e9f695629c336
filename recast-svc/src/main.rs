//! The recast service: config -> build -> run until SIGTERM (see `common::service`).

/// This program allocates with mimalloc: with glibc's allocator, the encoding and decoding
/// threads each kept an arena of freed buffers and a wide table's snapshot held nearly twice its
/// live memory (measured with heaptrack and `bench`, docs/benchmarks.md). Each binary sets it in
/// its own `main.rs`; the library `common` leaves the choice to the program.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::run("recast-svc", |env, sdk| async move {
        recast_svc::RecastStage::from_env(&env, &sdk).await
    })
    .await
}
