//! The parse service: config -> build -> run until SIGTERM (see `common::service`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::run("parse-svc", |env, sdk| async move {
        parse_svc::ParseStage::from_env(&env, &sdk)
    })
    .await
}
