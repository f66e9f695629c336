//! The recast service: config -> build -> run until SIGTERM (see `common::service`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::run("recast-svc", |env, sdk| async move {
        recast_svc::RecastStage::from_env(&env, &sdk)
    })
    .await
}
