//! ingest-svc is the only stage that holds the API keys. Wherever they could pass, neither key
//! nor any `X-Hash` shows: logs at TRACE level (ours and those of reqwest, hyper and the AWS
//! SDK, which log through `log` or `tracing`), the text and `Debug` of every error, a panic in
//! the handler path, and the `Debug` of every value that holds a secret.
//!
//! Every test logs into one process-wide capture at TRACE level, and every check looks at all
//! of it, so a leak from any test fails the checks of the others too.

mod common_fixture;

use std::sync::{Mutex, OnceLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use common::config::{Env, PipelineFile, Secret};
use common::messages::IngestMode;
use common::runner::Handler;
use ingest_svc::auth::{london_minute, x_hash};
use ingest_svc::client::FetchError;
use ingest_svc::keys::{KeySource, PRIVATE_KEY_VAR, PUBLIC_KEY_VAR, parse_secret};
use ingest_svc::{
    ClientSettings, Credentials, IngestSettings, IngestStage, PageKind, Query, TascomiClient,
};
use tascomi_sim::PageFault;
use tokio::io::AsyncWriteExt;

use common_fixture::*;

const PUBLIC: &str = "PUBLIC-key-never-logged";
const PRIVATE: &str = "PRIVATE-key-never-logged";
const WRONG_PRIVATE: &str = "wrong-PRIVATE-key";

struct Capture {
    buffer: LogBuffer,
    started: DateTime<Utc>,
    /// Every `X-Hash` a test server received: the real values, checked for verbatim.
    hashes: Mutex<Vec<String>>,
}

/// The process-wide TRACE capture: a global subscriber, which also receives the `log` records
/// of libraries (reqwest logs through `log`) via the `tracing-log` bridge it installs.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| Capture {
        buffer: LogBuffer::install(tracing::Level::TRACE),
        started: Utc::now(),
        hashes: Mutex::new(Vec::new()),
    })
}

fn logs() -> String {
    capture().buffer.text()
}

/// Fails when `text` holds a key, a hash a server received, or the hash of either key pair for
/// any London minute since the capture started (give or take two).
fn assert_no_secret(what: &str, text: &str) {
    for secret in [PUBLIC, PRIVATE, WRONG_PRIVATE] {
        assert!(!text.contains(secret), "{what}: {secret} leaked");
    }
    for hash in capture().hashes.lock().unwrap().iter() {
        assert!(!text.contains(hash), "{what}: a received X-Hash leaked");
        assert!(
            !text.contains(&hash[..24]),
            "{what}: part of an X-Hash leaked"
        );
    }
    let mut minute = capture().started - Duration::minutes(2);
    while minute <= Utc::now() + Duration::minutes(2) {
        let t = london_minute(minute);
        for private in [PRIVATE, WRONG_PRIVATE] {
            let hash = x_hash(PUBLIC, private, &t);
            assert!(
                !text.contains(&hash[..24]),
                "{what}: the hash of {t} leaked"
            );
        }
        minute += Duration::minutes(1);
    }
}

fn credentials(private: &str) -> Credentials {
    Credentials::new(Secret::new(PUBLIC.into()), Secret::new(private.into()))
}

#[tokio::test]
async fn trace_logs_hold_neither_key_nor_hash() {
    let _ = capture();
    let mut config = sim_config();
    config.public_key = PUBLIC.into();
    config.private_key = PRIVATE.into();
    config.faults.unauthorized_first = 1;
    config.faults.failing_pages = vec![
        PageFault::times("appeals", 2, 2),
        PageFault::always("appeals", 3),
    ];
    config.faults.malformed_pages = vec![PageFault::always("appeals", 4)];
    let (f, outcome) = full_load(config, day(5)).await;
    assert_eq!(outcome.failed_pages.len(), 2);
    tracing::info!(stage = ?f.stage, outcome = ?outcome, "debug output of the stage and outcome");

    // An authentication failure, logged as the runner logs it.
    let failure = f
        .stage_with_keys(credentials(WRONG_PRIVATE))
        .handle(request("notes", IngestMode::Full, day(5)))
        .await
        .unwrap_err();
    tracing::error!(reason = %failure, debug = ?failure, "message failed permanently");

    let logs = logs();
    assert!(logs.contains("TRACE"), "TRACE level was captured");
    assert!(logs.contains("retrying once with a fresh hash"), "{logs}");
    assert!(logs.contains("api request failed, retrying"));
    assert!(logs.contains("authentication failed for table notes"));
    // The HTTP client's own records reach the capture too (reqwest logs through `log`).
    assert!(
        logs.contains("reqwest") || logs.contains("hyper"),
        "the HTTP stack's logs were captured"
    );
    assert_no_secret("TRACE logs", &logs);
}

/// A local server that records the `X-Hash` of each request, then answers as `behaviour` says.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// 401 every time.
    Unauthorized,
    /// A 200 whose body stops short of its `Content-Length`.
    CutBody,
    /// Reads the request and never answers.
    Hang,
    /// 403 with a body that quotes the request's headers back, as some proxies do.
    EchoHeaders,
}

async fn server(behaviour: Behaviour) -> String {
    local_server(move |head, mut socket| async move {
        let hash = head
            .lines()
            .find_map(|l| l.strip_prefix("x-hash: "))
            .expect("every request carries an X-Hash");
        capture()
            .hashes
            .lock()
            .unwrap()
            .push(hash.trim().to_owned());
        let response = match behaviour {
            Behaviour::Unauthorized => {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_owned()
            }
            Behaviour::CutBody => {
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{\"id\":".to_owned()
            }
            Behaviour::Hang => {
                tokio::time::sleep(StdDuration::from_secs(30)).await;
                return;
            }
            Behaviour::EchoHeaders => format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n{head}",
                head.len()
            ),
        };
        let _ = socket.write_all(response.as_bytes()).await;
        if matches!(behaviour, Behaviour::CutBody) {
            // Close with the body short.
            let _ = socket.shutdown().await;
        }
    })
    .await
}

/// Requests that fail every way a request can: the error's text, its `Debug` and its log line
/// hold no secret, though the server did receive them.
#[tokio::test]
async fn failing_requests_errors_hold_no_secret() {
    let _ = capture();
    // A port nobody listens on: bind, note it, close.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/rest/v1/", listener.local_addr().unwrap())
    };
    let table = table("appeals");
    let mut cases = vec![("connection refused", closed)];
    for behaviour in [
        Behaviour::Unauthorized,
        Behaviour::CutBody,
        Behaviour::Hang,
        Behaviour::EchoHeaders,
    ] {
        cases.push((
            match behaviour {
                Behaviour::Unauthorized => "401 twice",
                Behaviour::CutBody => "body cut short",
                Behaviour::Hang => "timeout",
                Behaviour::EchoHeaders => "headers echoed in the body",
            },
            server(behaviour).await,
        ));
    }
    for (what, base_url) in cases {
        let mut settings = ClientSettings::new(&base_url);
        settings.max_attempts = 2;
        settings.backoff_base = StdDuration::from_millis(1);
        settings.backoff_max = StdDuration::from_millis(5);
        settings.request_timeout = StdDuration::from_millis(300);
        let client = TascomiClient::new(settings, credentials(PRIVATE)).unwrap();
        let err = client
            .fetch_page(&table, Query::All, 7, PageKind::Inside)
            .await
            .expect_err(what);
        match (what, &err) {
            ("401 twice", FetchError::Authentication { .. }) => {}
            (_, FetchError::Failed { page: 7, .. }) => {}
            _ => panic!("{what}: {err:?}"),
        }
        let wrapped = anyhow::Error::new(err.clone()).context("ingest failed");
        let text = format!("{err} | {err:?} | {wrapped:#} | {wrapped:?}");
        tracing::error!(error = %err, debug = ?err, "{what}");
        assert_no_secret(what, &text);
    }
    assert!(
        capture().hashes.lock().unwrap().len() >= 5,
        "the servers saw the hashes they must not be shown"
    );
    assert_no_secret("logs", &logs());
}

/// A panic in the handler path (here: unwrapping the handler's error, whose message formats the
/// error with `Debug`) carries no secret in its message.
#[tokio::test]
async fn a_panic_in_the_handler_path_holds_no_secret() {
    let _ = capture();
    let mut config = sim_config();
    config.public_key = PUBLIC.into();
    config.private_key = PRIVATE.into();
    let f = fixture(config).await;
    f.sim.set_today(day(5));
    let stage = f.stage_with_keys(credentials(WRONG_PRIVATE));
    let panicked = tokio::spawn(async move {
        let next = stage
            .handle(request("appeals", IngestMode::Full, day(5)))
            .await
            .unwrap();
        panic!("{stage:?} unexpectedly succeeded: {next:?}");
    })
    .await
    .unwrap_err();
    let payload = panicked.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(
        message.contains("called `Result::unwrap()` on an `Err` value")
            && message.contains("authentication failed for table appeals"),
        "{message}"
    );
    assert_no_secret("panic message", &message);
}

/// `Debug` (and `Display`, where there is one) of everything that holds a key or a hash, and
/// of everything built from an environment that holds the keys.
#[tokio::test]
async fn debug_of_every_secret_holder_redacts() {
    let _ = capture();
    let env = Env::from_pairs([
        (PUBLIC_KEY_VAR, PUBLIC),
        (PRIVATE_KEY_VAR, PRIVATE),
        ("TASCOMI_API_BASE_URL", "https://council.example/rest/v1/"),
    ]);
    let source = KeySource::from_env(&env).unwrap();
    let keys = credentials(PRIVATE);
    let headers = keys.headers_at(Utc::now());
    let secret = Secret::new(PRIVATE.into());
    let pipeline = PipelineFile::parse(PIPELINE, "test").unwrap();
    let settings = IngestSettings::from_env(&env, &pipeline).unwrap();
    let client = TascomiClient::new(settings.client.clone(), keys.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stage = IngestStage::new(
        common::platform::Platform::local(dir.path()),
        pipeline,
        settings.clone(),
        keys.clone(),
    )
    .unwrap();
    let malformed = parse_secret(
        "tascomi/api",
        &format!(r#"{{"public_key": "{PUBLIC}", "private_key": 7, "x": "{PRIVATE}"}}"#),
    )
    .unwrap_err();
    capture()
        .hashes
        .lock()
        .unwrap()
        .push(headers.hash.expose().to_owned());

    let shown = [
        format!("{env:?}"),
        format!("{source:?} {}", source.describe()),
        format!("{keys:?}"),
        format!("{headers:?}"),
        format!("{secret:?} {secret}"),
        format!("{settings:?}"),
        format!("{client:?}"),
        format!("{stage:?}"),
        format!("{malformed} {malformed:?}"),
    ];
    for text in &shown {
        tracing::trace!(shown = %text, "debug output");
        assert_no_secret("Debug output", text);
    }
    assert!(shown[0].contains(PRIVATE_KEY_VAR), "the names are shown");
    assert!(shown[2].contains("redacted"));
    assert_no_secret("logs", &logs());
}

/// The keys as the service loads them in production, from Secrets Manager (moto), at TRACE
/// level with the AWS SDK's own logs: the secret's value shows nowhere. Runs when
/// `AWS_ENDPOINT_URL` points at a moto server; skipped with a reason otherwise, except in CI.
#[tokio::test]
async fn keys_loaded_from_secrets_manager_are_not_logged() {
    use tracing::instrument::WithSubscriber;
    let _ = capture();
    let env = Env::from_process();
    if env.get("AWS_ENDPOINT_URL").is_none() {
        assert!(
            env.get("CI").is_none(),
            "AWS_ENDPOINT_URL must point at a moto server in CI"
        );
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh)");
        return;
    }
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if env.get("AWS_REGION").is_none() && env.get("AWS_DEFAULT_REGION").is_none() {
        loader = loader.region(aws_config::Region::new("eu-west-2"));
    }
    if env.get("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ));
    }
    let sdk = loader.load().await;
    let secret_id = format!("tascomi/api-{}", common::publish::new_run_id());
    let value = format!(r#"{{"public_key": "{PUBLIC}", "private_key": "{PRIVATE}"}}"#);
    // The test's own write of the secret is not the service's to keep quiet: not captured.
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&secret_id)
        .secret_string(value)
        .send()
        .with_subscriber(tracing::subscriber::NoSubscriber::default())
        .await
        .unwrap();

    let source =
        KeySource::from_env(&Env::from_pairs([("TASCOMI_API_SECRET_ID", &secret_id)])).unwrap();
    tracing::info!(keys = %source.describe(), "loading the API keys");
    let keys = source.load(&sdk).await.unwrap();
    assert_eq!(keys.public_key().expose(), PUBLIC, "the secret was read");
    tracing::debug!(?keys, "keys loaded");
    let missing = KeySource::SecretsManager {
        secret_id: format!("{secret_id}-missing"),
    }
    .load(&sdk)
    .await
    .unwrap_err();
    tracing::error!(error = %missing, debug = ?missing, "no such secret");

    let logs = logs();
    assert!(
        logs.contains("secretsmanager") || logs.contains("aws_smithy"),
        "the SDK's logs were captured"
    );
    assert_no_secret("TRACE logs with Secrets Manager", &logs);
}
