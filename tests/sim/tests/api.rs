//! The simulator's own tests: it must behave like the vendor's API, or the ingest tests prove
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use ingest_svc::auth::{london_minute, x_hash};
use serde_json::Value;
use tascomi_sim::{Faults, History, PageFault, SimApi, SimConfig, SimHandle};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn config() -> SimConfig {
    let mut config = SimConfig::with_production_dictionary().unwrap();
    config.per_page = 20;
    config.history = History {
        start: day(1),
        initial_records: 50,
        new_per_day: 3,
        updated_per_day: 4,
        updated_twice_per_day: 1,
        ..History::default()
    };
    config
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Answer {
    fn records(&self) -> Vec<serde_json::Map<String, Value>> {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn get_with(sim: &SimHandle, path: &str, public: &str, hash: &str) -> Answer {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url))
        .header("X-Public", public)
        .header("X-Hash", hash)
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: response.text().await.unwrap(),
    }
}

async fn get(sim: &SimHandle, path: &str) -> Answer {
    let hash = x_hash(
        &sim.public_key,
        &sim.private_key,
        &london_minute(Utc::now()),
    );
    get_with(sim, path, &sim.public_key, &hash).await
}

#[tokio::test]
async fn checks_the_hash_of_this_minute_and_its_neighbours_only() {
    let sim = SimApi::start(config()).await.unwrap();
    let now = Utc::now();
    for offset in [-1, 0, 1] {
        let t = london_minute(now + chrono::Duration::minutes(offset));
        let hash = x_hash(&sim.public_key, &sim.private_key, &t);
        assert_eq!(
            get_with(&sim, "appeals?page=1", &sim.public_key, &hash)
                .await
                .status,
            200,
            "{offset}"
        );
    }
    let stale = x_hash(
        &sim.public_key,
        &sim.private_key,
        &london_minute(now - chrono::Duration::minutes(5)),
    );
    assert_eq!(
        get_with(&sim, "appeals?page=1", &sim.public_key, &stale)
            .await
            .status,
        401
    );
    let good = x_hash(&sim.public_key, &sim.private_key, &london_minute(now));
    assert_eq!(
        get_with(&sim, "appeals?page=1", "someone-else", &good)
            .await
            .status,
        401
    );
    let wrong_key = x_hash(&sim.public_key, "guess", &london_minute(now));
    assert_eq!(
        get_with(&sim, "appeals?page=1", &sim.public_key, &wrong_key)
            .await
            .status,
        401
    );
    let no_headers = reqwest::get(format!("{}appeals?page=1", sim.base_url))
        .await
        .unwrap();
    assert_eq!(no_headers.status().as_u16(), 401);
}

#[tokio::test]
async fn pages_with_the_two_headers_and_filters_by_day() {
    let sim = SimApi::start(config()).await.unwrap();
    sim.set_today(day(5));
    let all = sim.current_records("appeals");
    let first = get(&sim, "appeals?page=1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["x-number-of-results"], all.len().to_string());
    assert_eq!(first.headers["x-results-per-page"], "20");
    let pages = all.len().div_ceil(20);
    let mut fetched = Vec::new();
    for page in 1..=pages {
        fetched.extend(get(&sim, &format!("appeals?page={page}")).await.records());
    }
    assert_eq!(fetched, all);
    for record in &fetched {
        assert!(record.values().all(|v| v.is_string() || v.is_null()));
    }
    // The day filter matches last_updated's date, including records updated twice that day.
    let updated = get(&sim, "appeals?page=1&last_updated=2026-11-03")
        .await
        .records();
    assert!(!updated.is_empty());
    assert!(updated.iter().all(|r| {
        r["last_updated"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-03 ")
    }));
    assert_eq!(updated, sim.updated_on("appeals", day(3)));
    // Nothing matches: 202 and no body.
    let none = get(&sim, "appeals?page=1&last_updated=2026-10-01").await;
    assert_eq!((none.status, none.body.as_str()), (202, ""));
    assert_eq!(get(&sim, "no_such_table?page=1").await.status, 404);
}

#[tokio::test]
async fn today_is_what_the_clock_says_and_the_snapshot_follows_the_history() {
    let sim = SimApi::start(config()).await.unwrap();
    sim.set_today(day(6));
    let current = sim.current_records("appeals");
    // Records created earlier "today" are served.
    assert!(current.iter().any(|r| {
        r["last_updated"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-11-06"))
    }));
    assert!(current.iter().any(|r| r["last_updated"].is_null()));
    // As of today, the snapshot is every current record but today's.
    let expected: Vec<_> = current
        .into_iter()
        .filter(|r| {
            !r["last_updated"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11-06"))
        })
        .collect();
    assert_eq!(sim.expected_snapshot("appeals", day(6)), expected);
    let over_http: Vec<serde_json::Map<String, Value>> = reqwest::get(format!(
        "http://{}/_sim/expected/appeals?as_of=2026-11-06",
        sim.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(over_http, expected);
    // Earlier, fewer records existed.
    sim.set_today(day(2));
    assert!(sim.current_records("appeals").len() < expected.len());
}

#[tokio::test]
async fn injects_the_configured_faults() {
    let sim = SimApi::start(config()).await.unwrap();
    sim.set_today(day(5));
    sim.set_faults(Faults {
        failing_pages: vec![PageFault::times("appeals", 2, 2)],
        malformed_pages: vec![PageFault::always("appeals", 3)],
        null_pages: vec![PageFault::always("appeals", 1)],
        unauthorized_first: 1,
        ..Faults::default()
    });
    assert_eq!(get(&sim, "appeals?page=1").await.status, 401);
    let null = get(&sim, "appeals?page=1").await;
    assert_eq!((null.status, null.body.as_str()), (200, "null"));
    assert_eq!(get(&sim, "appeals?page=2").await.status, 500);
    assert_eq!(get(&sim, "appeals?page=2").await.status, 500);
    assert_eq!(get(&sim, "appeals?page=2").await.status, 200, "only twice");
    let malformed = get(&sim, "appeals?page=3").await;
    assert_eq!(malformed.status, 200);
    assert!(serde_json::from_str::<Value>(&malformed.body).is_err());

    sim.set_faults(Faults {
        throttle_first: 1,
        retry_after_secs: 7,
        ..Faults::default()
    });
    let throttled = get(&sim, "appeals?page=1").await;
    assert_eq!(
        (throttled.status, throttled.headers["retry-after"].as_str()),
        (429, "7")
    );

    sim.set_faults(Faults {
        server_error_share: 0.5,
        ..Faults::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(get(&sim, "appeals?page=1").await.status);
    }
    let errors = statuses.iter().filter(|s| **s == 500).count();
    assert!((8..=32).contains(&errors), "{errors} of 40");

    sim.set_faults(Faults {
        slow_share: 1.0,
        slow_delay: Duration::from_millis(200),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(get(&sim, "appeals?page=1").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let log = sim.requests();
    assert_eq!(log[0].status, 401);
    assert!(log[0].authenticated, "a valid hash, refused by the fault");
}

#[tokio::test]
async fn applications_are_752_fields_wide_with_an_image_now_and_then() {
    let mut config = config();
    config.history.initial_records = 40;
    let sim = SimApi::start(config).await.unwrap();
    sim.set_today(day(2));
    let records = get(&sim, "applications?page=1").await.records();
    assert_eq!(records[0].len(), tascomi_sim::APPLICATIONS_WIDTH);
    assert!(
        records
            .iter()
            .any(|r| r[tascomi_sim::IMAGE_FIELD].is_string())
    );
    assert!(
        records
            .iter()
            .any(|r| r[tascomi_sim::IMAGE_FIELD].is_null())
    );
    assert!(
        records
            .iter()
            .all(|r| r["application_reference_number"].is_string())
    );
}

#[tokio::test]
async fn injects_the_body_and_header_faults_of_the_paging() {
    let sim = SimApi::start(config()).await.unwrap();
    sim.set_today(day(5));
    sim.set_faults(Faults {
        accepted_pages: vec![PageFault::times("appeals", 2, 1)],
        empty_pages: vec![PageFault::times("appeals", 3, 1)],
        html_pages: vec![PageFault::times("appeals", 1, 1)],
        missing_count_headers: vec![PageFault::times("appeals", 1, 1)],
        garbled_count_headers: vec![PageFault::times("appeals", 1, 1)],
        ..Faults::default()
    });
    let html = get(&sim, "appeals?page=1").await;
    assert_eq!(html.status, 200);
    assert!(html.headers["content-type"].starts_with("text/html"));
    assert!(html.body.starts_with("<!DOCTYPE html>"));
    assert!(!html.headers.contains_key("x-number-of-results"));
    let missing = get(&sim, "appeals?page=1").await;
    assert_eq!(missing.status, 200);
    assert!(!missing.headers.contains_key("x-number-of-results"));
    assert!(!missing.headers.contains_key("x-results-per-page"));
    assert_eq!(missing.records().len(), 20, "the records are sent");
    let garbled = get(&sim, "appeals?page=1").await;
    assert_eq!(garbled.headers["x-number-of-results"], "unknown");
    assert_eq!(garbled.headers["x-results-per-page"], "20");
    let accepted = get(&sim, "appeals?page=2").await;
    assert_eq!((accepted.status, accepted.body.as_str()), (202, ""));
    let empty = get(&sim, "appeals?page=3").await;
    assert_eq!((empty.status, empty.body.as_str()), (200, ""));
    assert!(empty.headers.contains_key("x-number-of-results"));
    // Each only once.
    for page in 1..=3 {
        let clean = get(&sim, &format!("appeals?page={page}")).await;
        assert_eq!(clean.status, 200);
        assert!(!clean.records().is_empty());
    }

    // Thousands separators in both count headers.
    let mut config = config();
    config.history.initial_records = 1_100;
    config.per_page = 1_000;
    config.faults.count_header_with_comma = true;
    let sim = SimApi::start(config).await.unwrap();
    sim.set_today(day(2));
    let total = sim.current_records("appeals").len();
    assert!(total > 1_000);
    let first = get(&sim, "appeals?page=1").await;
    assert_eq!(
        first.headers["x-number-of-results"],
        format!("1,{:03}", total - 1_000)
    );
    assert_eq!(first.headers["x-results-per-page"], "1,000");
}

#[tokio::test]
async fn drift_serves_one_record_twice_and_another_never_then_passes_are_clean() {
    let sim = SimApi::start(config()).await.unwrap();
    sim.set_today(day(5));
    let all: Vec<String> = sim
        .current_records("appeals")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let pages = all.len().div_ceil(20);
    sim.set_faults(Faults {
        drift_queries: 2,
        ..Faults::default()
    });
    let first = pass(&sim, pages, all.len()).await;
    let second = pass(&sim, pages, all.len()).await;
    let third = pass(&sim, pages, all.len()).await;
    for drifted in [&first, &second] {
        assert_eq!(drifted.len(), all.len(), "as many rows as announced");
        let distinct: std::collections::BTreeSet<&String> = drifted.iter().collect();
        assert_eq!(distinct.len(), all.len() - 1, "one record served twice");
        let missing: Vec<&String> = all.iter().filter(|id| !distinct.contains(id)).collect();
        assert_eq!(missing.len(), 1, "one record never served");
        // The last record of page 1 is served again at the top of page 2.
        assert_eq!(drifted[19], drifted[20]);
    }
    assert_eq!(
        first, second,
        "the same record is missed by every drifting pass"
    );
    assert_eq!(third, all, "the third pass is clean");
}

/// The ids of every page of `appeals`, in order, checking that every page announces `count`.
async fn pass(sim: &SimHandle, pages: usize, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 1..=pages {
        let answer = get(sim, &format!("appeals?page={page}")).await;
        assert_eq!(
            answer.headers["x-number-of-results"],
            count.to_string(),
            "the count does not change"
        );
        ids.extend(
            answer
                .records()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
    }
    ids
}
