//! Logs at TRACE level, through a full run with retries, a 401, failed pages and an
//! authentication failure, hold neither key nor any hash.

mod common_fixture;

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use common::messages::IngestMode;
use common::runner::Handler;
use ingest_svc::auth::{london_minute, x_hash};
use tascomi_sim::PageFault;

use common_fixture::*;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PUBLIC: &str = "PUBLIC-key-never-logged";
const PRIVATE: &str = "PRIVATE-key-never-logged";

#[tokio::test]
async fn trace_logs_hold_neither_key_nor_hash() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let started = Utc::now();

    let mut config = sim_config();
    config.public_key = PUBLIC.into();
    config.private_key = PRIVATE.into();
    config.faults.unauthorized_first = 1;
    config.faults.failing_pages = vec![
        PageFault::times("appeals", 2, 2),
        PageFault::always("appeals", 3),
    ];
    config.faults.malformed_pages = vec![PageFault::always("appeals", 4)];
    let f = fixture(config).await;
    f.sim.set_today(day(5));
    let outcome = f
        .stage
        .ingest(&request("appeals", IngestMode::Full, day(5)))
        .await
        .unwrap();
    assert_eq!(outcome.failed_pages.len(), 2);
    tracing::info!(stage = ?f.stage, outcome = ?outcome, "debug output of the stage and outcome");

    // An authentication failure, logged as the runner logs it.
    let wrong = ingest_svc::Credentials::new(
        common::config::Secret::new(PUBLIC.into()),
        common::config::Secret::new("wrong-PRIVATE-key".into()),
    );
    let pipeline = common::config::PipelineFile::parse(PIPELINE, "test").unwrap();
    let stage = ingest_svc::IngestStage::new(
        f.platform.clone(),
        pipeline,
        settings(&f.sim.base_url),
        wrong,
    )
    .unwrap();
    let failure = stage
        .handle(request("notes", IngestMode::Full, day(5)))
        .await
        .unwrap_err();
    tracing::error!(reason = %failure, debug = ?failure, "message failed permanently");

    let ended = Utc::now();
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "verbose levels were captured"
    );
    assert!(logs.contains("retrying once with a fresh hash"), "{logs}");
    assert!(logs.contains("api request failed, retrying"));
    assert!(logs.contains("authentication failed for table notes"));
    for secret in [PUBLIC, PRIVATE, "wrong-PRIVATE-key"] {
        assert!(!logs.contains(secret), "{secret} leaked");
    }
    let mut minute = started - Duration::minutes(2);
    while minute <= ended + Duration::minutes(2) {
        let t = london_minute(minute);
        for private in [PRIVATE, "wrong-PRIVATE-key"] {
            let hash = x_hash(PUBLIC, private, &t);
            assert!(!logs.contains(&hash), "the hash of {t} leaked");
            assert!(
                !logs.contains(&hash[..24]),
                "part of the hash of {t} leaked"
            );
        }
        minute += Duration::minutes(1);
    }
}
