//! Fuzzing the API page parsing with property tests: whatever body the API answers, a page is
//! its records or an error naming the table, the page and why, never a panic.
//!
//! Two levels: [`parse_records`] on arbitrary bytes and JSON (many cases, no I/O), and
//! [`TascomiClient::fetch_page`] against a local HTTP server answering arbitrary bodies,
//! statuses and count headers, for a count request and a page inside the count (fewer cases:
//! each is a real request).
//!
//! The regular run tries 256 cases (64 over HTTP) with a fixed seed; a longer run:
//! `PROPTEST_CASES=20000 cargo test -p ingest-svc --test fuzz_pages` (over HTTP a quarter of
//! that; add `PROPTEST_RNG_SEED=<n>` to explore other inputs).

mod common_fixture;

use std::sync::{Arc, Mutex};

use common::TableName;
use common::config::Secret;
use ingest_svc::client::{FetchError, PageKind, parse_count_header, parse_records};
use ingest_svc::{ClientSettings, Credentials, Query, TascomiClient};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestRunner};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use common_fixture::local_server;

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
    /// `X-Number-Of-Results` and `X-Results-Per-Page`, when sent.
    results: Option<String>,
    per_page: Option<String>,
    body: Vec<u8>,
}

/// A local HTTP server that answers every request with the current [`Answer`].
async fn serve(answer: Arc<Mutex<Answer>>) -> String {
    local_server(move |_head, mut socket| {
        let answer = answer.lock().unwrap().clone();
        // Answer and close.
        async move {
            let mut headers = String::new();
            for (name, value) in [
                ("X-Number-Of-Results", &answer.results),
                ("X-Results-Per-Page", &answer.per_page),
            ] {
                if let Some(value) = value {
                    headers.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            let mut response = format!(
                "HTTP/1.1 {} Fuzz\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
                answer.status,
                answer.body.len()
            )
            .into_bytes();
            response.extend_from_slice(&answer.body);
            let _ = socket.write_all(&response).await;
            let _ = socket.shutdown().await;
        }
    })
    .await
}

/// Count header values: numbers, numbers with thousands separators, and text that is not one.
fn count_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        (0u64..5_000).prop_map(|n| Some(n.to_string())),
        (1_000u64..2_000_000).prop_map(|n| {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            Some(out)
        }),
        "[ -~]{0,8}".prop_map(Some),
    ]
}

/// What a fetch should come to, decided from the answer independently of the client: the
/// records, or a part of the error's text.
fn expected_fetch(kind: PageKind, answer: &Answer) -> Result<Vec<Map<String, Value>>, String> {
    let blank_or_null = |body: &[u8]| {
        body.iter().all(u8::is_ascii_whitespace)
            || serde_json::from_slice::<Value>(body).is_ok_and(|v| v.is_null())
    };
    match (answer.status, kind) {
        (404, _) => Err("http 404".into()),
        (202, PageKind::Count) => Ok(Vec::new()),
        (202, PageKind::Inside) => Err("http 202".into()),
        (_, PageKind::Inside) if blank_or_null(&answer.body) => {
            Err("on a page inside the announced count".into())
        }
        (_, PageKind::Inside) => expected_records(&answer.body).ok_or_else(String::new),
        (_, PageKind::Count) => {
            let records = if blank_or_null(&answer.body) {
                None
            } else {
                Some(expected_records(&answer.body).ok_or_else(String::new)?)
            };
            let total = match &answer.results {
                None => return Err("X-Number-Of-Results is missing".into()),
                Some(text) => parse_count_header(text)
                    .ok_or_else(|| "X-Number-Of-Results is not a number".to_owned())?,
            };
            let per_page = match &answer.per_page {
                None => return Err("X-Results-Per-Page is missing".into()),
                Some(text) => parse_count_header(text)
                    .ok_or_else(|| "X-Results-Per-Page is not a number".to_owned())?,
            };
            if per_page == 0 && total > 0 {
                return Err("X-Results-Per-Page is 0".into());
            }
            match records {
                Some(records) => Ok(records),
                None if total == 0 => Ok(Vec::new()),
                None => Err(format!("X-Number-Of-Results announces {total} records")),
            }
        }
    }
}

/// Over HTTP: a page is the body's records or a failure naming table, page and why; a 202 is
/// "no results" on a count request and a failure inside the count; a count request without
/// readable count headers fails naming the header; another 4xx fails naming the status.
#[test]
fn fetched_pages_are_records_or_errors_naming_the_page() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = Arc::new(Mutex::new(Answer {
        status: 200,
        results: None,
        per_page: None,
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
    let kind = prop::sample::select(vec![PageKind::Count, PageKind::Inside]);
    runner
        .run(
            &(
                status,
                kind,
                1u32..10_000,
                count_value(),
                count_value(),
                body(),
            ),
            |(status, kind, page, results, per_page, body)| {
                let sent = Answer {
                    status,
                    results,
                    per_page,
                    body,
                };
                *answer.lock().unwrap() = sent.clone();
                let page = if kind == PageKind::Count { 1 } else { page };
                let fetched = runtime.block_on(client.fetch_page(&table, Query::All, page, kind));
                match (fetched, expected_fetch(kind, &sent)) {
                    (Ok(got), Ok(records)) => {
                        prop_assert_eq!(got.status, status);
                        prop_assert_eq!(got.records, records);
                        if kind == PageKind::Count && status == 200 {
                            prop_assert!(got.total_results.is_some() && got.per_page.is_some());
                        }
                    }
                    (Err(err @ FetchError::Failed { .. }), Err(part)) => {
                        let text = err.to_string();
                        prop_assert!(
                            text.starts_with(&format!(
                                "page {page} of table appeals failed after 1 attempt(s)"
                            )),
                            "{text}"
                        );
                        prop_assert!(text.contains(&part), "{text} should say {part:?}");
                        prop_assert!(!text.contains("fuzz-p"), "{text}");
                    }
                    (got, expected) => {
                        prop_assert!(
                            false,
                            "{got:?} for {sent:?} ({kind:?}): expected {expected:?}"
                        )
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
