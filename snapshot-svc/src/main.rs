//! The snapshot service: config -> build -> run until SIGTERM (see `common::service`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::run("snapshot-svc", |env, sdk| async move {
        snapshot_svc::SnapshotStage::from_env(&env, &sdk)
    })
    .await
}
