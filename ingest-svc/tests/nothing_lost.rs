//! "Nothing lost, nothing silent": the ingest against the ways the Tascomi API loses records in
//! production. Each fault ends in the records of a clean run, or in a loud, recorded failure that
//! the next night or a retry-failed run repairs to the clean run's records.
//!
//! - paging drift (a record served twice, another never): repaired the same night by a
//!   re-query; when it persists, a whole-query failure that the next night or a retry repairs;
//! - count headers missing, garbled, or with thousands separators;
//! - a 202, an empty, `null` or HTML body on a page inside the count;
//! - future-dated records, and a `last_updated` in UTC with a `Z`;
//! - a full load with a failed page: the next night fetches that page and the increment, never
//!   a second full load;
//! - `since`: the days fetched again;
//! - the `import_kind` partition parameter.
//!
//! (tests/metrics.rs checks the metrics each import emits.)

mod common_fixture;

use std::collections::BTreeSet;

use chrono::NaiveDate;
use common::messages::IngestMode;
use ingest_svc::drift::MAX_REQUERIES;
use ingest_svc::state::ImportKind;
use serde_json::{Map, Value};
use tascomi_sim::{Faults, History, PageFault};

use common_fixture::*;

fn ids(records: &[Map<String, Value>]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Small pages, so that one day's updates span several pages (for drift in a day query).
fn small_pages() -> tascomi_sim::SimConfig {
    let mut config = sim_config();
    config.per_page = 3;
    config
}

#[tokio::test]
async fn drift_in_a_full_load_is_repaired_the_same_night_by_a_requery() {
    let mut config = sim_config();
    config.faults.drift_queries = 1;
    let (f, outcome) = full_load(config, day(6)).await;
    assert_no_failed_pages(&outcome);
    assert_eq!(
        (outcome.requeries, outcome.records_recovered_by_requery),
        (1, 1)
    );
    // Every id is present, with its version; the duplicate stays as the API served it.
    let rows = f.rows(day(6)).await;
    let expected = f.snapshot(day(6));
    assert_eq!(records_by_id(&rows), expected);
    assert_eq!(
        rows.len(),
        expected.len() + 1,
        "one record served twice in the first pass"
    );
    // Page 1 twice: the first pass and the re-query.
    assert_eq!(f.requests_of(1, None), 2);
    // Recorded in the state and in the partition.
    let state = f.state().await;
    let import = &state.imports[&day(6)];
    assert_eq!(
        (import.requeries, import.records_recovered_by_requery),
        (1, 1)
    );
    assert!(import.is_complete());
    let parameters = f.parameters(day(6)).await;
    assert_eq!(parameters["requeries"], "1");
}

#[tokio::test]
async fn drift_in_a_day_query_is_repaired_the_same_night() {
    let f = fixture(small_pages()).await;
    f.night(IngestMode::Full, day(4)).await;
    // Two drifting passes: the first and the first re-query miss the same record.
    f.sim.set_faults(Faults {
        drift_queries: 2,
        ..Faults::default()
    });
    let outcome = f.night(IngestMode::Incremental, day(5)).await;
    assert!(outcome.failed_pages.is_empty());
    assert_eq!(
        (outcome.requeries, outcome.records_recovered_by_requery),
        (2, 1)
    );
    let rows = f.rows(day(5)).await;
    assert_eq!(records_by_id(&rows), f.updated_on(day(4)));
}

#[tokio::test]
async fn drift_that_persists_is_a_loud_failure_that_the_next_night_repairs() {
    let f = fixture(small_pages()).await;
    f.night(IngestMode::Full, day(4)).await;
    // Every pass of the night drifts: the first and all the re-queries miss the same record.
    f.sim.set_faults(Faults {
        drift_queries: 1 + MAX_REQUERIES,
        ..Faults::default()
    });
    let outcome = f.night(IngestMode::Incremental, day(5)).await;
    assert_eq!(outcome.requeries, MAX_REQUERIES);
    assert_eq!(outcome.failed_pages.len(), 1);
    let failed = &outcome.failed_pages[0];
    assert!(failed.whole_query);
    assert_eq!((failed.day, failed.page_number), (Some(day(4)), 1));
    let announced = f.sim.updated_on("appeals", day(4)).len();
    assert!(
        failed.error.starts_with(&format!(
            "drift: 1 of {announced} records missing after {MAX_REQUERIES} re-queries"
        )),
        "{}",
        failed.error
    );
    assert!(
        failed
            .error
            .contains("table appeals, query last_updated=2026-11-04"),
        "{}",
        failed.error
    );
    // In the partition too, where Athena sees it.
    let rows = f.rows(day(5)).await;
    let failure_rows: Vec<_> = rows.iter().filter(|r| r.record.is_none()).collect();
    assert_eq!(failure_rows.len(), 1);
    assert!(failure_rows[0].error().starts_with("drift:"));
    assert_eq!(
        records_by_id(&rows).len(),
        announced - 1,
        "everything but the missing record is kept"
    );
    let state = f.state().await;
    assert!(state.imports[&day(5)].days_completed.is_empty());

    // The next night (the API clean again) fetches the day again: nothing is lost.
    f.sim.set_faults(Faults::default());
    let next = f.night(IngestMode::Incremental, day(6)).await;
    assert_eq!(next.days, [day(4), day(5)]);
    assert!(next.failed_pages.is_empty());
    assert_eq!(
        f.records_over(&[day(4), day(5), day(6)]).await,
        f.snapshot(day(6))
    );
}

#[tokio::test]
async fn drift_that_persists_in_a_full_load_is_repaired_by_retry_failed_without_doubles() {
    let mut config = sim_config();
    config.faults.drift_queries = 1 + MAX_REQUERIES;
    let (f, outcome) = full_load(config, day(6)).await;
    assert_eq!(outcome.failed_pages.len(), 1);
    assert!(outcome.failed_pages[0].error.starts_with("drift: 1 of "));
    f.sim.set_faults(Faults::default());
    let retry = f.run(IngestMode::RetryFailed, day(6)).await;
    assert!(retry.failed_pages.is_empty());
    f.assert_complete(day(6), "the whole query replaced").await;
}

#[tokio::test]
async fn missing_count_headers_fail_the_query_clearly_and_retry_failed_repairs_it() {
    let mut config = sim_config();
    config.faults.missing_count_headers = vec![PageFault::always("appeals", 1)];
    let (f, outcome) = full_load(config, day(6)).await;
    // Never "one page": the query failed, whole, after the client's retries.
    assert_eq!(outcome.failed_pages.len(), 1);
    let failed = &outcome.failed_pages[0];
    assert!(failed.whole_query);
    assert_eq!((failed.page_number, failed.status_code), (1, Some(200)));
    for part in [
        "table appeals",
        "all records",
        "page 1",
        "the count header X-Number-Of-Results is missing",
    ] {
        assert!(failed.error.contains(part), "{part}: {}", failed.error);
    }
    assert_eq!(
        outcome.records_written, 0,
        "page 1's records are not trusted alone"
    );
    assert_eq!(
        requested(&f.sim),
        vec![(1, None); 4],
        "page 1 only, retried"
    );
    // Not a base: the next night would load in full again.
    let state = f.state().await;
    assert!(!state.imports[&day(6)].is_base());

    f.sim.set_faults(Faults::default());
    f.run(IngestMode::RetryFailed, day(6)).await;
    f.assert_complete(day(6), "repaired").await;
}

#[tokio::test]
async fn a_garbled_count_header_fails_the_day_and_the_next_night_repairs_it() {
    let f = fixture(sim_config()).await;
    f.night(IngestMode::Full, day(4)).await;
    f.sim.set_faults(Faults {
        garbled_count_headers: vec![PageFault {
            day: Some(day(5)),
            ..PageFault::always("appeals", 1)
        }],
        ..Faults::default()
    });
    let outcome = f.night(IngestMode::Incremental, day(7)).await;
    assert_eq!(outcome.failed_pages.len(), 1);
    let failed = &outcome.failed_pages[0];
    assert!(failed.whole_query);
    assert_eq!(failed.day, Some(day(5)));
    assert!(
        failed.error.contains(
            "last_updated=2026-11-05, the count request: the count header X-Number-Of-Results is not a number: \"unknown\""
        ),
        "{}",
        failed.error
    );
    let state = f.state().await;
    assert_eq!(state.imports[&day(7)].days_completed, [day(4), day(6)]);

    f.sim.set_faults(Faults::default());
    let next = f.night(IngestMode::Incremental, day(8)).await;
    assert_eq!(next.days, [day(5), day(7)]);
    assert_eq!(
        f.records_over(&[day(4), day(7), day(8)]).await,
        f.snapshot(day(8))
    );
}

#[tokio::test]
async fn count_headers_with_thousands_separators_are_numbers() {
    let mut config = sim_config();
    config.per_page = 100;
    config.history.initial_records = 1_030;
    config.faults.count_header_with_comma = true;
    let (f, outcome) = full_load(config, day(3)).await;
    assert!(outcome.failed_pages.is_empty());
    let total = f.sim.current_records("appeals").len();
    assert!(total > 1_000);
    let counts = request_counts(&f.sim);
    assert_eq!(counts.len(), total.div_ceil(100), "every page");
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
    assert_eq!(records_by_id(&f.rows(day(3)).await), f.snapshot(day(3)));
}

/// The four ways a page inside the count comes back without its records.
#[derive(Debug, Clone, Copy)]
enum BadPage {
    Accepted,
    Empty,
    Null,
    Html,
}

impl BadPage {
    fn faults(self, fault: PageFault) -> Faults {
        let mut faults = Faults::default();
        match self {
            BadPage::Accepted => faults.accepted_pages = vec![fault],
            BadPage::Empty => faults.empty_pages = vec![fault],
            BadPage::Null => faults.null_pages = vec![fault],
            BadPage::Html => faults.html_pages = vec![fault],
        }
        faults
    }

    /// What the recorded error says.
    fn says(self) -> &'static str {
        match self {
            BadPage::Accepted => "http 202 (\"no results\") on a page inside the announced count",
            BadPage::Empty => "an empty body on a page inside the announced count",
            BadPage::Null => "a null body on a page inside the announced count",
            BadPage::Html => "an HTML page rather than JSON",
        }
    }

    fn status(self) -> u16 {
        match self {
            BadPage::Accepted => 202,
            _ => 200,
        }
    }
}

#[tokio::test]
async fn a_page_inside_the_count_without_its_records_is_retried_recorded_and_repaired() {
    for (bad, repair_by_retry) in [
        (BadPage::Accepted, true),
        (BadPage::Empty, false),
        (BadPage::Null, true),
        (BadPage::Html, false),
    ] {
        // Twice, then the API recovers: the client's retries get the page.
        let mut config = sim_config();
        config.faults = bad.faults(PageFault::times("appeals", 3, 2));
        let (f, outcome) = full_load(config, day(6)).await;
        assert!(outcome.failed_pages.is_empty(), "{bad:?}");
        assert_eq!(f.requests_of(3, None), 3, "{bad:?}");
        let rows = f.rows(day(6)).await;
        let expected = f.snapshot(day(6));
        assert_eq!(records_by_id(&rows), expected, "{bad:?}");

        // Every time: recorded as a failed page, never "no more data".
        let mut config = sim_config();
        config.faults = bad.faults(PageFault::always("appeals", 3));
        let (f, outcome) = full_load(config, day(6)).await;
        assert_eq!(outcome.failed_pages.len(), 1, "{bad:?}");
        let failed = &outcome.failed_pages[0];
        assert_eq!(
            (failed.page_number, failed.status_code, failed.whole_query),
            (3, Some(bad.status()), false),
            "{bad:?}"
        );
        assert!(
            failed.error.contains(bad.says()),
            "{bad:?}: {}",
            failed.error
        );
        assert!(
            failed
                .error
                .contains("page 3 of table appeals failed after 4 attempt(s)"),
            "{}",
            failed.error
        );
        // The pages after it were fetched.
        assert_eq!(f.requests_of(3, None), 4, "{bad:?}");
        assert!(f.requests_of(4, None) > 0);

        f.sim.set_faults(Faults::default());
        if repair_by_retry {
            f.run(IngestMode::RetryFailed, day(6)).await;
            f.assert_complete(day(6), &format!("{bad:?}")).await;
        } else {
            f.sim.set_today(day(7));
            f.sim.clear_requests();
            let next = f.run(IngestMode::Incremental, day(7)).await;
            assert_eq!(next.full_pages, [3], "{bad:?}");
            assert!(next.failed_pages.is_empty(), "{bad:?}");
            assert_eq!(
                f.records_over(&[day(6), day(7)]).await,
                f.snapshot(day(7)),
                "{bad:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_full_load_with_a_failed_page_is_followed_by_that_page_and_the_increment_only() {
    let mut config = sim_config();
    config.faults.failing_pages = vec![PageFault::always("appeals", 2)];
    let f = fixture(config).await;
    let full = f.night(IngestMode::Incremental, day(6)).await;
    assert_eq!(full.mode, IngestMode::Full);
    assert_eq!(full.failed_pages.len(), 1);
    assert_eq!(f.state().await.imports[&day(6)].full_pages_outstanding, [2]);

    // Night 7: page 2 still fails. The run fetches it and the day, nothing else.
    f.sim.set_today(day(7));
    f.sim.clear_requests();
    let night7 = f.run(IngestMode::Incremental, day(7)).await;
    assert_eq!(night7.mode, IngestMode::Incremental);
    assert_eq!(night7.full_pages, [2]);
    assert_eq!(night7.days, [day(6)]);
    let all_records: Vec<u32> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.last_updated.is_none())
        .map(|r| r.page)
        .collect();
    assert_eq!(
        all_records,
        [2, 2, 2, 2],
        "page 2 only, retried: no full load"
    );
    assert!(
        f.sim
            .requests()
            .iter()
            .all(|r| r.last_updated.is_none() || r.last_updated == Some(day(6)))
    );
    assert_eq!(night7.failed_pages.len(), 1);
    let state = f.state().await;
    assert_eq!(state.imports[&day(7)].full_pages_outstanding, [2]);
    assert_eq!(state.imports[&day(7)].days_completed, [day(6)]);

    // Night 8: the API recovered. Page 2 and the one new day, once each.
    f.sim.set_faults(Faults::default());
    f.sim.set_today(day(8));
    f.sim.clear_requests();
    let night8 = f.run(IngestMode::Incremental, day(8)).await;
    assert_eq!(
        (night8.full_pages.clone(), night8.days.clone()),
        (vec![2], vec![day(7)])
    );
    assert!(night8.failed_pages.is_empty());
    let requested = requested(&f.sim);
    assert_eq!(requested[0], (2, None));
    assert!(
        requested[1..].iter().all(|(_, d)| *d == Some(day(7))),
        "{requested:?}"
    );
    assert_eq!(
        f.records_over(&[day(6), day(7), day(8)]).await,
        f.snapshot(day(8))
    );
    // Nothing outstanding any more.
    f.sim.set_today(day(9));
    f.sim.clear_requests();
    let night9 = f.run(IngestMode::Incremental, day(9)).await;
    assert!(night9.full_pages.is_empty());
    assert!(
        f.sim
            .requests()
            .iter()
            .all(|r| r.last_updated == Some(day(8)))
    );
}

#[tokio::test]
async fn future_dated_records_are_kept_and_counted() {
    let mut config = sim_config();
    config.history.future_dated = 3;
    let (f, outcome) = full_load(config, day(6)).await;
    assert_eq!(outcome.records_future_dated, 3);
    assert!(
        outcome.records_skipped_today > 0,
        "today's are still skipped"
    );
    let rows = f.rows(day(6)).await;
    let kept = records_by_id(&rows);
    assert_eq!(kept, f.snapshot(day(6)));
    let future: Vec<_> = kept
        .values()
        .filter(|r| r["last_updated"].as_str().is_some_and(|t| &t[..4] > "2026"))
        .collect();
    assert_eq!(future.len(), 3);
    let state = f.state().await;
    assert_eq!(state.imports[&day(6)].records_future_dated, 3);
    let parameters = f.parameters(day(6)).await;
    assert_eq!(parameters["records_future_dated"], "3");
}

#[tokio::test]
async fn a_z_timestamp_is_compared_as_london_time() {
    // British Summer Time, creations between midnight and the 01:00 run: in UTC, the day before.
    let mut config = sim_config();
    let july = |d: u32| NaiveDate::from_ymd_opt(2026, 7, d).unwrap();
    config.history = History {
        start: july(1),
        initial_records: 60,
        new_per_day: 4,
        updated_per_day: 6,
        updated_twice_per_day: 2,
        zulu_every: 1,
        run_time: chrono::NaiveTime::from_hms_opt(1, 0, 0).unwrap(),
        ..History::default()
    };
    let f = fixture(config).await;
    f.sim.set_today(july(6));
    let todays: Vec<_> = f
        .sim
        .current_records("appeals")
        .into_iter()
        .filter(|r| {
            r["last_updated"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-07-05T23:"))
        })
        .collect();
    assert!(
        !todays.is_empty(),
        "a record of 00:xx London time on 6 July"
    );
    let outcome = f.run(IngestMode::Full, july(6)).await;
    assert_eq!(outcome.records_skipped_today, todays.len() as u64);
    let kept = records_by_id(&f.rows(july(6)).await);
    assert_eq!(kept, f.snapshot(july(6)));
    assert!(ids(&todays).iter().all(|id| !kept.contains_key(id)));
    // The next night's query of 6 July (London) brings them.
    f.night(IngestMode::Incremental, july(7)).await;
    let next = records_by_id(&f.rows(july(7)).await);
    assert!(ids(&todays).iter().all(|id| next.contains_key(id)));
    assert_eq!(
        f.records_over(&[july(6), july(7)]).await,
        f.snapshot(july(7))
    );
}

#[tokio::test]
async fn since_fetches_every_day_again_beyond_the_lookback() {
    let f = fixture_with(sim_config(), |s| s.max_lookback_days = 2).await;
    f.night(IngestMode::Full, day(2)).await;
    for night in 3..=5 {
        f.night(IngestMode::Incremental, day(night)).await;
    }
    f.sim.set_today(day(6));
    f.sim.clear_requests();
    let mut asked = request("appeals", IngestMode::Incremental, day(6));
    asked.since = Some(day(2));
    let outcome = f.ingest(&asked).await;
    assert_eq!(outcome.days, (2..=5).map(day).collect::<Vec<_>>());
    assert_eq!(outcome.days_refetched, (2..=4).map(day).collect::<Vec<_>>());
    assert!(outcome.days_cut.is_empty(), "not capped: asked for");
    let days: BTreeSet<Option<NaiveDate>> =
        f.sim.requests().iter().map(|r| r.last_updated).collect();
    assert_eq!(days, (2..=5).map(|d| Some(day(d))).collect());
    let mut expected = std::collections::BTreeMap::new();
    for d in 2..=5 {
        expected.extend(f.updated_on(day(d)));
    }
    assert_eq!(records_by_id(&f.rows(day(6)).await), expected);
    let state = f.state().await;
    assert_eq!(
        state.imports[&day(6)].days_refetched,
        (2..=4).map(day).collect::<Vec<_>>()
    );

    // Without a full load to build on, `since` cannot help: a full load.
    let f = fixture(sim_config()).await;
    f.sim.set_today(day(6));
    let mut asked = request("appeals", IngestMode::Incremental, day(6));
    asked.since = Some(day(3));
    assert_eq!(f.ingest(&asked).await.mode, IngestMode::Full);
}

/// The `mode` and `import_kind` parameters of the raw partition of `date`.
async fn mode_and_kind(f: &Fixture, date: NaiveDate) -> [String; 2] {
    let parameters = f.parameters(date).await;
    [&parameters["mode"], &parameters["import_kind"]].map(String::clone)
}

#[tokio::test]
async fn raw_partitions_say_which_kind_of_import_they_hold() {
    let mut config = sim_config();
    config.faults.failing_pages = vec![PageFault::times("appeals", 2, 4)];
    let (f, full) = full_load(config, day(4)).await;
    assert_eq!(full.import_kind, ImportKind::Full);
    assert_eq!(mode_and_kind(&f, day(4)).await, ["full", "full"]);
    // A retry-failed rewrite keeps the kind of what it repairs.
    let retry = f.run(IngestMode::RetryFailed, day(4)).await;
    assert_eq!(retry.import_kind, ImportKind::Full);
    assert_eq!(mode_and_kind(&f, day(4)).await, ["retry-failed", "full"]);
    let night = f.night(IngestMode::Incremental, day(5)).await;
    assert_eq!(night.import_kind, ImportKind::Incremental);
    assert_eq!(
        mode_and_kind(&f, day(5)).await,
        ["incremental", "incremental"]
    );
}
