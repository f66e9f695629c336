//! `stage <ingest|parse|recast|snapshot>`: one stage service, exactly as its own `main` runs it
//! (`common::service::run` with the stage's `from_env`), so tests in this package can start the
//! real services as OS processes (`CARGO_BIN_EXE_stage`) and kill them.

/// This program allocates with mimalloc: with glibc's allocator, the encoding and decoding
/// threads each kept an arena of freed buffers and a wide table's snapshot held nearly twice its
/// live memory (measured with heaptrack and `bench`, docs/benchmarks.md). Each binary sets it in
/// its own `main.rs`; the library `common` leaves the choice to the program.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stage = std::env::args().nth(1).unwrap_or_default();
    match stage.as_str() {
        "ingest" => {
            common::service::run("ingest-svc", |env, sdk| async move {
                ingest_svc::IngestStage::from_env(&env, &sdk).await
            })
            .await
        }
        "parse" => {
            common::service::run("parse-svc", |env, sdk| async move {
                parse_svc::ParseStage::from_env(&env, &sdk)
            })
            .await
        }
        "recast" => {
            common::service::run("recast-svc", |env, sdk| async move {
                recast_svc::RecastStage::from_env(&env, &sdk).await
            })
            .await
        }
        "snapshot" => {
            common::service::run("snapshot-svc", |env, sdk| async move {
                snapshot_svc::SnapshotStage::from_env(&env, &sdk)
            })
            .await
        }
        other => anyhow::bail!("usage: stage <ingest|parse|recast|snapshot>, not {other:?}"),
    }
}
