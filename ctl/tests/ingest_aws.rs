//! `tascomi ingest` on a deployment (SQS on moto): the request it sends carries `since` and
//! `as_of` as given, in either date format.

use std::process::Command;
use std::time::Duration;

use chrono::NaiveDate;
use common::config::Env;
use common::messages::{self, IngestMode, IngestRequest};
use common::queue::{Queue, SqsQueue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_since_sends_an_incremental_request_with_since_and_as_of() {
    let env = Env::from_process();
    if env.get("AWS_ENDPOINT_URL").is_none() {
        assert!(
            env.get("CI").is_none() && env.get("TASCOMI_REQUIRE_MOTO").is_none(),
            "AWS_ENDPOINT_URL is not set: run scripts/test.sh, which starts moto"
        );
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)");
        return;
    }
    let sdk = common::aws::load_sdk_config().await;
    let name = format!("ctl-ingest-{}", std::process::id());
    let (url, _dlq) = SqsQueue::create_queue_with_dlq(&sdk, &name, &format!("{name}-dlq"), 5, 30)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(&pipeline, "tables:\n  appeals: daily\n").unwrap();

    let tascomi = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
            .args(args)
            .arg("--pipeline")
            .arg(&pipeline)
            .env("TASCOMI_INGEST_QUEUE_URL", &url)
            .env("TASCOMI_RAW_BUCKET", "raw")
            .env("TASCOMI_REFINED_BUCKET", "refined")
            .env("TASCOMI_DATABASE_PREFIX", "test")
            .env_remove("TASCOMI_PIPELINE_FILE")
            .output()
            .expect("tascomi runs");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };

    let (ok, out) = tascomi(&[
        "ingest",
        "--table",
        "appeals",
        "--since",
        "2026-11-01",
        "--as-of",
        "20261110",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("every day since 2026-11-01"), "{out}");

    let queue = SqsQueue::new(&sdk, url.clone());
    let received = queue.receive(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    let request: IngestRequest = messages::decode(&received[0].body, |_| true).unwrap();
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    assert_eq!(request.table.as_str(), "appeals");
    assert_eq!(request.mode, IngestMode::Incremental);
    assert_eq!(request.since, Some(day(1)));
    assert_eq!(request.as_of, Some(day(10)));
    queue.acknowledge(&received[0].receipt).await.unwrap();

    // Refused before anything is sent: since with a full load, since not before as_of.
    for args in [
        &[
            "ingest", "--table", "appeals", "--mode", "full", "--since", "20261101",
        ][..],
        &[
            "ingest", "--table", "appeals", "--since", "20261110", "--as-of", "20261110",
        ][..],
    ] {
        let (ok, out) = tascomi(args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains("since"), "{out}");
    }
    assert!(
        queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
}
