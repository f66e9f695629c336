//! Fuzzing the API page parsing with property tests: whatever body the API answers, a page is
//! its records or an error naming the table, the page and why, never a panic.
//!
//! Two levels: [`parse_records`] on arbitrary bytes and JSON (many cases, no I/O), and
//! [`TascomiClient::fetch_page`] against a local HTTP server answering arbitrary bodies and
//! statuses (fewer cases: each is a real request).
//!
//! The regular run tries 256 cases (64 over HTTP) with a fixed seed; a longer run:
//! `PROPTEST_CASES=20000 cargo test -p ingest-svc --test fuzz_pages` (over HTTP a quarter of
//! that; add `PROPTEST_RNG_SEED=<n>` to explore other inputs).

use std::sync::{Arc, Mutex};

use common::TableName;
use common::config::Secret;
use ingest_svc::client::{FetchError, parse_records};
use ingest_svc::{ClientSettings, Credentials, Query, TascomiClient};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestRunner};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The environment's `PROPTEST_*` settings, with a fixed seed unless `PROPTEST_RNG_SEED` is set,
/// and no regression files written into the repository.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7a5c_0902);
    }
    config.failure_persistence = None;
    config
}

/// Finite floats only (JSON has no others), without rejecting cases.
fn finite_f64() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn record() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(("[a-z_]{1,10}|.{0,6}", arb_json()), 0..6)
        .prop_map(|fields| fields.into_iter().collect())
}

/// Bodies an API might answer: anything, any JSON, a list of records (sometimes with a
/// non-object among them), a list cut short, blank and `null`.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        arb_json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(record().prop_map(Value::Object), 0..6)
            .prop_map(|records| Value::Array(records).to_string().into_bytes()),
        (
            prop::collection::vec(record().prop_map(Value::Object), 1..4),
            arb_json()
        )
            .prop_map(|(mut records, stray)| {
                records.push(stray);
                Value::Array(records).to_string().into_bytes()
            }),
        (
            prop::collection::vec(record().prop_map(Value::Object), 1..4),
            any::<usize>()
        )
            .prop_map(|(records, cut)| {
                let mut bytes = Value::Array(records).to_string().into_bytes();
                bytes.truncate(cut % bytes.len());
                bytes
            }),
        prop::sample::select(vec!["", " \n", "null", "[]", "{}", "[null]", "\u{feff}[]"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// What a body holds, decided independently of `parse_records`: its records when it is blank,
/// `null` or a list of objects, else `None`.
fn expected_records(body: &[u8]) -> Option<Vec<Map<String, Value>>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Vec::new());
    }
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(record) => Some(record),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_body_is_records_or_a_reason(body in body()) {
        match (parse_records(&body), expected_records(&body)) {
            (Ok(records), Some(expected)) => prop_assert_eq!(records, expected),
            (Err(reason), None) => prop_assert!(
                reason.starts_with("malformed JSON")
                    || reason.contains("rather than"),
                "{reason}"
            ),
            (got, expected) => prop_assert!(false, "{got:?} for a body holding {expected:?}"),
        }
    }
}

/// One answer of the local server.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// A local HTTP server that answers every request with the current [`Answer`].
async fn serve(answer: Arc<Mutex<Answer>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.lock().unwrap().clone();
            tokio::spawn(async move {
                // Read the request head (a GET has no body), then answer and close.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let mut response = format!(
                    "HTTP/1.1 {} Fuzz\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    answer.status,
                    answer.body.len()
                )
                .into_bytes();
                response.extend_from_slice(&answer.body);
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{address}/rest/v1/")
}

/// Over HTTP: a 200 is the body's records or a failure naming table and page at once; a 202 is
/// an empty page; another 4xx fails at once naming the status.
#[test]
fn fetched_pages_are_records_or_errors_naming_the_page() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = Arc::new(Mutex::new(Answer {
        status: 200,
        body: Vec::new(),
    }));
    let base_url = runtime.block_on(serve(answer.clone()));
    let mut settings = ClientSettings::new(&base_url);
    settings.max_attempts = 1;
    let client = TascomiClient::new(
        settings,
        Credentials::new(
            Secret::new("fuzz-public".into()),
            Secret::new("fuzz-private".into()),
        ),
    )
    .unwrap();
    let table: TableName = "appeals".parse().unwrap();

    let mut config = config();
    config.cases = (config.cases / 4).max(1);
    let mut runner = TestRunner::new(config);
    let status = prop::sample::select(vec![200u16, 200, 200, 202, 404]);
    runner
        .run(&(status, 1u32..10_000, body()), |(status, page, body)| {
            *answer.lock().unwrap() = Answer {
                status,
                body: body.clone(),
            };
            let fetched = runtime.block_on(client.fetch_page(&table, Query::All, page));
            let expected = match status {
                202 => Some(Vec::new()),
                200 => expected_records(&body),
                _ => None,
            };
            match (fetched, expected) {
                (Ok(page), Some(records)) => {
                    prop_assert_eq!(page.status, status);
                    prop_assert_eq!(page.records, records);
                }
                (Err(err @ FetchError::Failed { .. }), None) => {
                    let text = err.to_string();
                    prop_assert!(
                        text.starts_with(&format!(
                            "page {page} of table appeals failed after 1 attempt(s)"
                        )),
                        "{text}"
                    );
                    if status == 404 {
                        prop_assert!(text.ends_with("http 404"), "{text}");
                    }
                    prop_assert!(!text.contains("fuzz-p"), "{text}");
                }
                (got, expected) => {
                    prop_assert!(false, "{got:?} for status {status} holding {expected:?}")
                }
            }
            Ok(())
        })
        .unwrap();
}
