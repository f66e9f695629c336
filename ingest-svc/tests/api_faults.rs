//! The ingest stage against the simulated API's faults: bursts of 500s, 429s with
//! `Retry-After`, slow and hanging responses, and a 401 from the real hash check when the
//! minute has passed. Each night must complete after retries, or record exactly the pages that
//! failed so that a retry-failed run fetches those pages, and only those, and completes it.
//! (ingest.rs covers a page that keeps failing, a share of 500s, the first requests throttled,
//! malformed and `null` pages, and wrong keys.)

mod common_fixture;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::messages::IngestMode;
use ingest_svc::IngestOutcome;
use tascomi_sim::{Faults, PageFault};

use common_fixture::*;

/// `(page, day)` of each failed page of a run.
fn failed(outcome: &IngestOutcome) -> BTreeSet<(u32, Option<NaiveDate>)> {
    outcome
        .failed_pages
        .iter()
        .map(|p| (p.page_number, p.day))
        .collect()
}

/// Checks that `outcome`'s night is complete, or that a retry-failed run with the API healthy
/// again fetches exactly the pages it recorded as failed and completes it. Returns how many
/// pages the retry fetched.
async fn completes_now_or_by_retry_failed(f: &Fixture, outcome: &IngestOutcome) -> usize {
    let failed = failed(outcome);
    let mut retried = 0;
    if !failed.is_empty() {
        f.sim.set_faults(Faults::default());
        f.sim.clear_requests();
        let retry = f.run(IngestMode::RetryFailed, day(6)).await;
        let fetched: BTreeSet<(u32, Option<NaiveDate>)> = f
            .sim
            .requests()
            .iter()
            .map(|r| (r.page, r.last_updated))
            .collect();
        assert_eq!(
            fetched, failed,
            "retry-failed fetches exactly the failed pages"
        );
        assert_eq!(f.sim.requests().len(), failed.len(), "each once");
        assert!(retry.failed_pages.is_empty());
        retried = failed.len();
    }
    f.assert_complete(day(6), "no failed row left, none doubled")
        .await;
    retried
}

fn statuses(f: &Fixture) -> Vec<u16> {
    f.sim.requests().iter().map(|r| r.status).collect()
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn a_short_burst_of_500s_is_retried_and_the_night_completes() {
    let mut config = sim_config();
    // Three 500s in a row, spread over the pages in flight: fewer than the 4 attempts a page has.
    config.faults.server_error_burst = 2..5;
    let (f, outcome) = full_load(config, day(6)).await;
    assert_no_failed_pages(&outcome);
    let statuses = statuses(&f);
    assert_eq!(count(&statuses, 500), 3, "{statuses:?}");
    assert_eq!(completes_now_or_by_retry_failed(&f, &outcome).await, 0);
    eprintln!(
        "api faults: short burst: 3 x 500 in {} requests, completed",
        statuses.len()
    );
}

#[tokio::test]
async fn a_long_burst_of_500s_records_the_pages_it_broke_and_retry_failed_completes() {
    let mut config = sim_config();
    // Sixteen 500s in a row after the count request: more than the five other pages' 3 retries
    // each, so at least one page runs out of its 4 attempts inside it.
    config.faults.server_error_burst = 1..17;
    let (f, outcome) = full_load(config, day(6)).await;
    let statuses = statuses(&f);
    assert_eq!(count(&statuses, 500), 16, "{statuses:?}");
    assert!(!outcome.failed_pages.is_empty(), "16 errors break a page");
    // Exactly the pages the API never answered with a page of records are recorded.
    let answered: BTreeSet<(u32, Option<NaiveDate>)> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| (r.page, r.last_updated))
        .collect();
    let requested: BTreeSet<(u32, Option<NaiveDate>)> = f
        .sim
        .requests()
        .iter()
        .map(|r| (r.page, r.last_updated))
        .collect();
    assert_eq!(
        failed(&outcome),
        requested.difference(&answered).copied().collect()
    );
    for page in &outcome.failed_pages {
        assert_eq!(page.status_code, Some(500), "{page:?}");
        assert!(page.url.ends_with(&format!("?page={}", page.page_number)));
    }
    let retried = completes_now_or_by_retry_failed(&f, &outcome).await;
    eprintln!(
        "api faults: long burst: 16 x 500 in {} requests, {retried} pages failed and were \
         completed by retry-failed",
        statuses.len()
    );
}

#[tokio::test]
async fn throttling_with_retry_after_is_waited_out() {
    let mut config = sim_config();
    // Smaller pages, so more requests: 40 % of them answered 429 with Retry-After: 1.
    config.per_page = 10;
    config.faults.throttle_share = 0.4;
    config.faults.retry_after_secs = 1;
    config.seed = 7;
    let f = fixture_with(config, |s| s.client.max_attempts = 8).await;
    f.sim.set_today(day(6));
    let started = Instant::now();
    let outcome = f.run(IngestMode::Full, day(6)).await;
    let elapsed = started.elapsed();
    assert_no_failed_pages(&outcome);
    let statuses = statuses(&f);
    let throttled = count(&statuses, 429);
    assert!(throttled > 0, "{statuses:?}");
    // A page told to wait 1 s waits 1 s (the fixture's own backoff is milliseconds).
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(completes_now_or_by_retry_failed(&f, &outcome).await, 0);
    eprintln!(
        "api faults: {throttled} x 429 (Retry-After: 1) in {} requests, completed in {elapsed:.1?}",
        statuses.len()
    );
}

#[tokio::test]
async fn slow_responses_are_waited_for() {
    let mut config = sim_config();
    config.faults.slow_share = 0.5;
    config.faults.slow_delay = Duration::from_millis(200);
    let f = fixture_with(config, |s| {
        s.client.request_timeout = Duration::from_secs(2)
    })
    .await;
    let outcome = f.night(IngestMode::Full, day(6)).await;
    assert_no_failed_pages(&outcome);
    // Slow is not failed: every page once.
    let counts = request_counts(&f.sim);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert_eq!(completes_now_or_by_retry_failed(&f, &outcome).await, 0);
}

#[tokio::test]
async fn hanging_requests_time_out_and_are_retried() {
    let mut config = sim_config();
    config.faults.hanging_pages = vec![
        PageFault::times("appeals", 1, 1),
        PageFault::times("appeals", 3, 2),
    ];
    let f = fixture_with(config, |s| {
        s.client.request_timeout = Duration::from_millis(300);
    })
    .await;
    f.sim.set_today(day(6));
    let started = Instant::now();
    let outcome = f.run(IngestMode::Full, day(6)).await;
    assert_no_failed_pages(&outcome);
    let hung: Vec<u32> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 0)
        .map(|r| r.page)
        .collect();
    assert_eq!(hung, [1, 3, 3]);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "two timeouts in a row"
    );
    assert_eq!(completes_now_or_by_retry_failed(&f, &outcome).await, 0);
}

#[tokio::test]
async fn a_page_that_always_hangs_is_recorded_and_retry_failed_completes_it() {
    let mut config = sim_config();
    config.faults.hanging_pages = vec![PageFault::always("appeals", 4)];
    let f = fixture_with(config, |s| {
        s.client.request_timeout = Duration::from_millis(300);
    })
    .await;
    let outcome = f.night(IngestMode::Full, day(6)).await;
    assert_eq!(failed(&outcome), BTreeSet::from([(4, None)]));
    let page = &outcome.failed_pages[0];
    assert_eq!(page.status_code, None, "no answer");
    assert!(page.error.contains("timed out"), "{page:?}");
    assert_eq!(f.requests_of(4, None), 4);
    assert_eq!(completes_now_or_by_retry_failed(&f, &outcome).await, 1);
}

#[tokio::test]
async fn a_401_at_a_minute_boundary_is_signed_again_and_twice_fails_the_run_whole() {
    // One request checked after its minute has passed: the real hash check answers 401, the
    // client signs again, the night completes.
    let mut config = sim_config();
    config.faults.late_minute_requests = 3..4;
    let (f, outcome) = full_load(config, day(6)).await;
    assert_no_failed_pages(&outcome);
    let requests = f.sim.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 401).collect();
    assert_eq!(refused.len(), 1, "{requests:?}");
    assert!(
        !refused[0].authenticated,
        "refused by the hash check itself"
    );
    assert_eq!(completes_now_or_by_retry_failed(&f, &outcome).await, 0);

    // The fresh hash refused too: the keys or the clock are wrong, no page would succeed. The
    // run fails whole (nothing published, no failed pages to retry), and runs again in full
    // once the clocks agree.
    let mut config = sim_config();
    config.faults.late_minute_requests = 0..2;
    let f = fixture(config).await;
    f.sim.set_today(day(6));
    let err = f.run_err(IngestMode::Full, day(6)).await;
    assert!(err.to_string().contains("authentication"), "{err}");
    assert_eq!(statuses(&f), [401, 401]);
    assert!(f.rows(day(6)).await.is_empty());
    let again = f.run(IngestMode::Full, day(6)).await;
    assert!(again.failed_pages.is_empty());
    assert_eq!(completes_now_or_by_retry_failed(&f, &again).await, 0);
}
