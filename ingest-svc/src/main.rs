use ingest_svc::IngestStage;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::run("ingest-svc", |env, sdk| async move {
        IngestStage::from_env(&env, &sdk).await
    })
    .await
}
