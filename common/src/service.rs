//! Config → build → run until shutdown, the same for every stage's `main`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, DictionarySource, Env, PipelineFile};
use crate::dictionary::ColumnTypes;
use crate::queue::{Queue, SqsQueue};
use crate::runner::{Handler, Runner, RunnerSettings, cancel_on_signal};

/// The queues and runner settings every stage service reads from the environment:
/// `TASCOMI_QUEUE_URL` (its input), `TASCOMI_NEXT_QUEUE_URL` (optional: the next stage's queue),
/// `TASCOMI_DEAD_LETTER_QUEUE_URL` (optional: its dead-letter queue, for permanent failures with
/// their reason; without it SQS's redrive policy moves failing messages after N receives).
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub queue_url: String,
    pub next_queue_url: Option<String>,
    pub dead_letter_queue_url: Option<String>,
    pub runner: RunnerSettings,
}

impl ServiceSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: env.required("TASCOMI_QUEUE_URL")?,
            next_queue_url: env.get("TASCOMI_NEXT_QUEUE_URL").map(str::to_owned),
            dead_letter_queue_url: env.get("TASCOMI_DEAD_LETTER_QUEUE_URL").map(str::to_owned),
            runner: RunnerSettings::from_env(env)?,
        })
    }
}

/// The pipeline file named by `TASCOMI_PIPELINE_FILE` (default `pipeline.yaml`).
pub fn pipeline_from_env(env: &Env) -> Result<PipelineFile, ConfigError> {
    let path = PathBuf::from(env.get("TASCOMI_PIPELINE_FILE").unwrap_or("pipeline.yaml"));
    PipelineFile::load(&path)
}

/// The column-type dictionary, read once at start-up: `TASCOMI_COLUMN_TYPE_DICTIONARY` (a path or
/// `s3://bucket/key`, read with the service's AWS configuration `sdk`) if set, else the pipeline
/// file's `column_type_dictionary`. Neither is an error naming both settings, and so is a file or
/// object that cannot be read or parsed (naming the path or URI).
pub async fn dictionary_from_env(
    env: &Env,
    pipeline: &PipelineFile,
    sdk: &aws_config::SdkConfig,
) -> anyhow::Result<ColumnTypes> {
    DictionarySource::from_env(env, pipeline)?
        .load(Some(sdk))
        .await
}

/// Runs a stage service until SIGTERM/SIGINT: telemetry, AWS clients, queues, the runner.
/// `build` turns the environment and the shared AWS configuration into the stage's handler.
pub async fn run<H, F, Fut>(service: &'static str, build: F) -> anyhow::Result<()>
where
    H: Handler,
    F: FnOnce(Env, aws_config::SdkConfig) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<H>>,
{
    let env = Env::from_process();
    if std::env::args().skip(1).any(|arg| arg == HEALTH_ARGUMENT) {
        return health(&env, service);
    }
    let _telemetry = crate::telemetry::init(&env, service)?;
    let settings = ServiceSettings::from_env(&env)?;
    tracing::info!(
        service,
        queue = %settings.queue_url,
        next_queue = settings.next_queue_url.as_deref().unwrap_or("-"),
        dead_letter_queue = settings.dead_letter_queue_url.as_deref().unwrap_or("-"),
        runner = ?settings.runner,
        "starting"
    );
    let sdk = crate::aws::load_sdk_config().await;
    let handler = Arc::new(build(env, sdk.clone()).await?);
    let queue = |url: &str| -> Arc<dyn Queue> { Arc::new(SqsQueue::new(&sdk, url)) };
    let runner = Arc::new(Runner::new(
        handler,
        queue(&settings.queue_url),
        settings.next_queue_url.as_deref().map(queue),
        settings.dead_letter_queue_url.as_deref().map(queue),
        settings.runner,
    ));
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    runner.run(shutdown).await
}

/// The argument of the container's health probe (Dockerfile `HEALTHCHECK`, ECS `healthCheck`).
pub const HEALTH_ARGUMENT: &str = "--health";

/// The health probe: `Ok` (exit 0) when the service's settings and pipeline file load, as they
/// must for it to start; otherwise the error naming the variable or the file (exit 1). It
/// starts nothing and calls no AWS service. A service that dies exits, and ECS replaces it; a
/// service that cannot start (a setting went wrong in a deployment) is reported unhealthy
/// here, by name, instead of restarting in a loop without saying why.
#[allow(clippy::print_stdout)]
pub fn health(env: &Env, service: &str) -> anyhow::Result<()> {
    ServiceSettings::from_env(env)?;
    let pipeline = pipeline_from_env(env)?;
    // A malformed dictionary URI is named here; reading the object is the start-up's job.
    DictionarySource::resolve(
        env.get(crate::config::COLUMN_TYPE_DICTIONARY_VARIABLE),
        &pipeline,
    )?;
    println!("{service}: healthy ({} tables)", pipeline.tables.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_probe_names_what_is_wrong() {
        let err = health(&Env::default(), "parse-svc")
            .unwrap_err()
            .to_string();
        assert!(err.contains("TASCOMI_QUEUE_URL"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let pipeline = dir.path().join("pipeline.yaml");
        std::fs::write(&pipeline, "tables:\n  appeals: daily\n").unwrap();
        let mut env = Env::from_pairs([("TASCOMI_QUEUE_URL", "https://sqs.example/q")]);
        env.set(
            "TASCOMI_PIPELINE_FILE".to_owned(),
            pipeline.to_string_lossy().into_owned(),
        );
        health(&env, "parse-svc").unwrap();
        env.set("TASCOMI_COLUMN_TYPE_DICTIONARY", "s3://bucket-without-key");
        let err = health(&env, "parse-svc").unwrap_err().to_string();
        assert!(err.contains("TASCOMI_COLUMN_TYPE_DICTIONARY"), "{err}");
        env.set(
            "TASCOMI_COLUMN_TYPE_DICTIONARY",
            "s3://config/dictionary.json",
        );
        health(&env, "parse-svc").unwrap();
        env.set("TASCOMI_CONCURRENCY".to_owned(), "none".to_owned());
        let err = health(&env, "parse-svc").unwrap_err().to_string();
        assert!(err.contains("TASCOMI_CONCURRENCY"), "{err}");
    }
}
