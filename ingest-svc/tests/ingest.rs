//! The ingest stage against the simulated Tascomi API on a local platform.

mod common_fixture;

use std::time::Duration;

use common::failure::Outcome;
use common::layout::Layer;
use common::messages::IngestMode;
use common::runner::{Failure, Handler};
use ingest_svc::state::{self, TableState};
use tascomi_sim::{Faults, History, PageFault};

use common_fixture::*;
use tascomi_test_support::python;

#[tokio::test]
async fn a_full_load_fetches_every_page_once_and_keeps_each_record_but_todays() {
    let f = fixture(sim_config()).await;
    let outcome = f.night(IngestMode::Incremental, day(6)).await;

    // No earlier import: an incremental request runs a full load.
    assert_eq!(outcome.mode, IngestMode::Full);
    assert!(outcome.failed_pages.is_empty());
    assert!(
        outcome.records_skipped_today > 0,
        "the simulator creates records before the run"
    );
    let rows = f.rows(day(6)).await;
    let expected = f.snapshot(day(6));
    assert_eq!(records_by_id(&rows), expected);
    assert_eq!(rows.len(), expected.len(), "one row per record");
    assert!(
        rows.iter()
            .all(|r| r.status.as_deref() == Some("200") && r.exception.is_none())
    );
    assert!(
        rows.iter()
            .all(|r| !r.record.as_ref().unwrap().contains("gis_map_image_base64"))
    );
    // Field order is the API's.
    let first = rows[0].json();
    let keys: Vec<&String> = first.keys().take(2).collect();
    assert_eq!(keys, ["id", "last_updated"]);

    // Page 1 is the count request and is fetched once; every page once.
    let counts = request_counts(&f.sim);
    let pages = f.sim.current_records("appeals").len().div_ceil(25);
    assert_eq!(counts.len(), pages);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");

    // The message for parse-svc.
    let ready = outcome.ready;
    assert_eq!(ready.layer, Layer::Raw);
    assert_eq!(ready.as_of, Some(day(6)));
    assert_eq!(ready.partition["import_date"], "20261106");
    assert!(ready.location.starts_with("s3://raw-zone/planning/tascomi/api-responses/appeals/import_year=2026/import_month=11/import_day=06/import_date=20261106/"));
    let table = f
        .platform
        .catalog
        .table("local-tascomi-raw-zone", "api_response_appeals")
        .await
        .unwrap()
        .unwrap();
    let columns: Vec<_> = table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.hive_type.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("page_number", "bigint"),
            ("import_api_url_requested", "string"),
            ("import_api_status_code", "string"),
            ("import_exception_thrown", "string"),
            ("appeals", "string"),
            ("import_datetime", "timestamp"),
            ("import_timestamp", "string"),
        ]
    );
    assert_eq!(
        table.partition_keys,
        ["import_year", "import_month", "import_day", "import_date"]
    );
}

#[tokio::test]
async fn three_nightly_increments_fetch_yesterday_and_add_up_to_the_table() {
    let f = fixture(sim_config()).await;
    f.night(IngestMode::Incremental, day(5)).await;
    let mut all = records_by_id(&f.rows(day(5)).await);
    for night in 6..=8 {
        f.sim.set_today(day(night));
        f.sim.clear_requests();
        let outcome = f.run(IngestMode::Incremental, day(night)).await;
        assert_eq!(outcome.mode, IngestMode::Incremental);
        assert_eq!(outcome.days, [day(night - 1)]);
        assert!(
            f.sim
                .requests()
                .iter()
                .all(|r| r.last_updated == Some(day(night - 1)))
        );
        let rows = f.rows(day(night)).await;
        let increment = records_by_id(&rows);
        assert_eq!(increment, f.updated_on(day(night - 1)));
        assert!(!increment.is_empty());
        all.extend(increment);
        // The raw partitions so far, newest version per id, are the table as of tonight.
        assert_eq!(all, f.snapshot(day(night)), "night {night}");
    }
    let table_state = f.state().await;
    assert_eq!(table_state.imports.len(), 4);
    assert_eq!(table_state.last_successful_import(day(9)), Some(day(8)));
}

#[tokio::test]
async fn a_quiet_day_publishes_an_empty_partition_and_moves_the_watermark() {
    let mut config = sim_config();
    config.history = History {
        start: day(1),
        initial_records: 30,
        new_per_day: 0,
        updated_per_day: 0,
        ..History::default()
    };
    let f = fixture(config).await;
    f.night(IngestMode::Full, day(3)).await;
    for night in 4..=6 {
        f.sim.set_today(day(night));
        f.sim.clear_requests();
        let outcome = f.run(IngestMode::Incremental, day(night)).await;
        // One query for yesterday only, answered 202: no records, and the day is done.
        assert_eq!(
            outcome.days,
            [day(night - 1)],
            "a quiet table does not look back further"
        );
        let requests = f.sim.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].status, 202);
        assert_eq!(outcome.records_written, 0);
        assert!(outcome.failed_pages.is_empty());
        assert!(f.rows(day(night)).await.is_empty());
        assert_eq!(
            outcome.ready.partition["import_date"],
            format!("202611{night:02}")
        );
    }
}

#[tokio::test]
async fn a_page_that_keeps_failing_is_recorded_then_fetched_by_retry_failed() {
    let mut config = sim_config();
    config.faults.failing_pages = vec![PageFault::always("appeals", 2)];
    let (f, outcome) = full_load(config, day(6)).await;
    assert_eq!(outcome.failed_pages.len(), 1);
    let failed = &outcome.failed_pages[0];
    assert_eq!((failed.page_number, failed.status_code), (2, Some(500)));
    assert_eq!(f.requests_of(2, None), 4, "max_attempts");

    let rows = f.rows(day(6)).await;
    let failed_rows: Vec<_> = rows.iter().filter(|r| r.record.is_none()).collect();
    assert_eq!(failed_rows.len(), 1);
    assert_eq!(failed_rows[0].page, 2);
    assert_eq!(failed_rows[0].status.as_deref(), Some("500"));
    assert!(failed_rows[0].url.ends_with("/appeals?page=2"));
    assert!(failed_rows[0].error().contains("http 500"));
    let expected = f.snapshot(day(6));
    assert_eq!(records_by_id(&rows).len(), expected.len() - 25);

    // The full load is the base all the same (its count request succeeded): the next night
    // would fetch page 2 beside its day, never the whole table again.
    let table_state = f.state().await;
    assert_eq!(table_state.latest().unwrap().full_pages_outstanding, [2]);
    assert_eq!(
        table_state.plan_incremental(day(7), 60, None),
        state::Plan::Incremental {
            days: vec![day(6)],
            cut: vec![],
            base: day(6),
            full_pages: vec![2],
            refetched: vec![],
        }
    );

    // The API recovers; retry-failed fetches exactly page 2, a day later.
    f.sim.set_faults(Faults::default());
    f.sim.clear_requests();
    let retry = f.run(IngestMode::RetryFailed, day(6)).await;
    let requests = f.sim.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!((requests[0].page, requests[0].last_updated), (2, None));
    assert!(retry.failed_pages.is_empty());
    assert_eq!(retry.partition.date, day(6));
    let rows = f.rows(day(6)).await;
    assert_eq!(records_by_id(&rows), expected);
    assert_eq!(
        rows.len(),
        expected.len(),
        "the failed row is replaced, nothing doubled"
    );

    // The state is repaired: increments go on from the full load.
    let table_state = f.state().await;
    assert!(table_state.latest().unwrap().failed_pages.is_empty());
    assert!(matches!(
        table_state.plan_incremental(day(7), 60, None),
        state::Plan::Incremental { full_pages, .. } if full_pages.is_empty()
    ));

    // Retrying again fetches nothing and announces the same partition.
    f.sim.clear_requests();
    let again = f.run(IngestMode::RetryFailed, day(7)).await;
    assert!(f.sim.requests().is_empty());
    assert_eq!(again.ready.location, retry.ready.location);
    assert_eq!(f.rows(day(6)).await, rows);
}

#[tokio::test]
async fn retry_failed_for_a_table_never_imported_is_discarded_with_its_reason() {
    let f = fixture(sim_config()).await;
    let message = request("notes", IngestMode::RetryFailed, day(6));
    let outcome = f.stage.ingest(&message).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::UpToDate(reason) if reason == "table notes has no recorded import"),
        "{outcome:?}"
    );
    let failure = f.stage.handle(message).await.unwrap_err();
    assert!(
        matches!(&failure, Failure::Discard(reason) if reason == "table notes has no recorded import"),
        "{failure:?}"
    );
    assert!(f.sim.requests().is_empty());
    assert!(raw_rows(&f.platform, "notes", day(6)).await.is_empty());
}

#[tokio::test]
async fn a_failed_count_request_is_retried_with_all_the_pages_of_its_day() {
    let mut config = sim_config();
    let f = fixture(config.clone()).await;
    f.night(IngestMode::Full, day(4)).await;
    config.faults.failing_pages = vec![PageFault {
        day: Some(day(5)),
        ..PageFault::always("appeals", 1)
    }];
    f.sim.set_faults(config.faults);
    let outcome = f.night(IngestMode::Incremental, day(7)).await;
    assert_eq!(outcome.days, [day(4), day(5), day(6)]);
    assert_eq!(outcome.failed_pages.len(), 1);
    assert!(outcome.failed_pages[0].whole_query);

    f.sim.set_faults(Faults::default());
    f.sim.clear_requests();
    f.run(IngestMode::RetryFailed, day(7)).await;
    assert!(
        f.sim
            .requests()
            .iter()
            .all(|r| r.last_updated == Some(day(5)))
    );
    let rows = f.rows(day(7)).await;
    let mut expected = f.updated_on(day(4));
    expected.extend(f.updated_on(day(5)));
    expected.extend(f.updated_on(day(6)));
    assert_eq!(records_by_id(&rows), expected);
    assert!(rows.iter().all(|r| r.record.is_some()));
}

#[tokio::test]
async fn a_401_is_recovered_by_a_fresh_hash_and_wrong_keys_fail_loudly() {
    let mut config = sim_config();
    config.faults.unauthorized_first = 1;
    let (f, outcome) = full_load(config, day(3)).await;
    assert!(outcome.failed_pages.is_empty());
    let first_two: Vec<_> = f
        .sim
        .requests()
        .iter()
        .take(2)
        .map(|r| (r.page, r.status))
        .collect();
    assert_eq!(first_two, [(1, 401), (1, 200)]);

    // Wrong keys: two 401s, an authentication error, nothing published, the message dead-lettered.
    let wrong = ingest_svc::Credentials::new(
        common::config::Secret::new(f.sim.public_key.clone()),
        common::config::Secret::new("not-the-private-key".into()),
    );
    let err = f
        .stage_with_keys(wrong)
        .handle(request("notes", IngestMode::Full, day(3)))
        .await
        .unwrap_err();
    let Failure::Permanent(reason) = err else {
        panic!("expected a permanent failure, got {err:?}")
    };
    let reason = format!("{reason:#}");
    assert!(
        reason.contains("authentication failed for table notes"),
        "{reason}"
    );
    assert!(!reason.contains("not-the-private-key"));
    assert!(raw_rows(&f.platform, "notes", day(3)).await.is_empty());
    let leftovers = f
        .platform
        .storage
        .list("raw-zone", "planning/tascomi/api-responses/notes/")
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn throttling_and_server_errors_are_survived() {
    let mut config = sim_config();
    config.faults.throttle_first = 2;
    config.faults.retry_after_secs = 1;
    config.faults.server_error_share = 0.15;
    config.seed = 42;
    let f = fixture_with(config, |s| s.client.max_attempts = 8).await;
    f.sim.set_today(day(6));
    let started = std::time::Instant::now();
    let outcome = f.run(IngestMode::Full, day(6)).await;
    assert_no_failed_pages(&outcome);
    let statuses: Vec<u16> = f.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..2], [429, 429]);
    assert!(statuses.contains(&500));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After is honoured"
    );
    let rows = f.rows(day(6)).await;
    assert_eq!(records_by_id(&rows), f.snapshot(day(6)));
}

#[tokio::test]
async fn one_concurrency_limit_is_shared_by_every_table() {
    let mut config = sim_config();
    config.faults.slow_share = 1.0;
    config.faults.slow_delay = Duration::from_millis(30);
    config.per_page = 10;
    let f = fixture_with(config, |s| s.client.max_concurrent_requests = 3).await;
    f.sim.set_today(day(4));
    let tables = ["appeals", "contacts", "applications"];
    let runs = tables.map(|t| {
        let stage = f.stage.clone();
        tokio::spawn(async move { ingested(&stage, &request(t, IngestMode::Full, day(4))).await })
    });
    for run in runs {
        assert!(run.await.unwrap().failed_pages.is_empty());
    }
    assert_eq!(f.sim.max_in_flight(), 3);
}

#[tokio::test]
async fn a_malformed_page_and_a_null_page_are_retried_recorded_and_repaired() {
    let mut config = sim_config();
    config.faults.malformed_pages = vec![PageFault::always("appeals", 2)];
    config.faults.null_pages = vec![PageFault::always("appeals", 3)];
    let (f, outcome) = full_load(config, day(6)).await;
    // A null page inside the count is no "no records": both pages are failures, after retries.
    let failed: Vec<u32> = outcome.failed_pages.iter().map(|p| p.page_number).collect();
    assert_eq!(failed, [2, 3]);
    assert_eq!(f.requests_of(2, None), 4, "max_attempts");
    assert_eq!(f.requests_of(3, None), 4, "max_attempts");
    let rows = f.rows(day(6)).await;
    let bad: Vec<_> = rows.iter().filter(|r| r.record.is_none()).collect();
    assert_eq!(bad.len(), 2);
    assert_eq!((bad[0].page, bad[0].status.as_deref()), (2, Some("200")));
    assert!(bad[0].error().contains("malformed JSON"), "{:?}", bad[0]);
    assert_eq!((bad[1].page, bad[1].status.as_deref()), (3, Some("200")));
    assert!(
        bad[1]
            .error()
            .contains("a null body on a page inside the announced count of all records"),
        "{:?}",
        bad[1]
    );
    assert!(rows.iter().any(|r| r.page == 4));

    // The API recovers: retry-failed fetches both pages, and the partition is the clean one.
    f.sim.set_faults(Faults::default());
    let retry = f.run(IngestMode::RetryFailed, day(6)).await;
    assert!(retry.failed_pages.is_empty());
    f.assert_complete(day(6), "repaired").await;
}

#[tokio::test]
async fn the_same_request_handled_twice_publishes_one_partition_with_the_same_rows() {
    let f = fixture(sim_config()).await;
    f.night(IngestMode::Full, day(4)).await;
    f.sim.set_today(day(6));
    let message = request("appeals", IngestMode::Incremental, day(6));
    let first = f.stage.handle(message.clone()).await.unwrap();
    let first_rows = f.rows(day(6)).await;
    let second = f.stage.handle(message).await.unwrap();
    let second_rows = f.rows(day(6)).await;
    assert_eq!(first.len(), 1);
    assert_ne!(first[0].run_id, second[0].run_id);
    assert!(!first_rows.is_empty());
    assert_eq!(first_rows, second_rows);
    let partitions = f.raw_partitions().await;
    assert_eq!(partitions.len(), 2, "day 4 and day 6, once each");
    // Only the second run's files are left in the partition.
    let prefix = f
        .platform
        .layout
        .partition(&table("appeals"), Layer::Raw, day(6))
        .key_prefix();
    let files = f.platform.storage.list("raw-zone", &prefix).await.unwrap();
    assert!(
        files.iter().all(|o| o.key.contains(&second[0].run_id)),
        "{files:?}"
    );
    // Both plans were the same: two days, from the state before day 6.
    let table_state = f.state().await;
    assert_eq!(
        table_state.imports[&day(6)].days_requested,
        [day(4), day(5)]
    );
    assert_eq!(
        TableState::key(&table("appeals")),
        "planning/tascomi/_state/ingest/appeals.json"
    );
}

#[tokio::test]
async fn the_lookback_cap_cuts_old_days_and_says_so() {
    let f = fixture_with(sim_config(), |s| s.max_lookback_days = 3).await;
    f.night(IngestMode::Full, day(2)).await;
    let outcome = f.night(IngestMode::Incremental, day(10)).await;
    assert_eq!(outcome.days, [day(7), day(8), day(9)]);
    assert_eq!(outcome.days_cut, (2..=6).map(day).collect::<Vec<_>>());
    // Given up once, not again the next night.
    let next = f.night(IngestMode::Incremental, day(11)).await;
    assert_eq!((next.days, next.days_cut), (vec![day(10)], vec![]));
}

#[tokio::test]
async fn the_wide_applications_resource_is_kept_whole() {
    let mut config = sim_config();
    config.history.initial_records = 30;
    let f = fixture(config).await;
    f.sim.set_today(day(2));
    f.ingest(&request("applications", IngestMode::Full, day(2)))
        .await;
    let rows = raw_rows(&f.platform, "applications", day(2)).await;
    assert_eq!(
        records_by_id(&rows),
        expected_by_id(f.sim.expected_snapshot("applications", day(2)))
    );
    // 752 fields from the API, less the image.
    assert_eq!(rows[0].json().len(), tascomi_sim::APPLICATIONS_WIDTH - 1);
}

#[tokio::test]
async fn the_raw_parquet_is_read_by_pyarrow_with_the_briefs_columns() {
    let Some(python) = python() else { return };
    let (f, outcome) = full_load(sim_config(), day(6)).await;
    let (_, prefix) = common::storage::split_s3_uri(&outcome.ready.location).unwrap();
    let folder = f.dir.path().join("raw-zone").join(prefix);
    let script = r#"
import glob, json, sys
import pyarrow.parquet as pq
files = sorted(glob.glob(sys.argv[1] + "/*.parquet"))
table = pq.read_table(files[0])
for f in files[1:]:
    import pyarrow as pa
    table = pa.concat_tables([table, pq.read_table(f)])
rows = table.to_pylist()
print(json.dumps({
    "columns": [[f.name, str(f.type)] for f in table.schema],
    "rows": len(rows),
    "first": json.loads(rows[0]["appeals"]),
    "status": rows[0]["import_api_status_code"],
    "timestamp": rows[0]["import_timestamp"],
    "timestamp_round_trip": str(float(rows[0]["import_timestamp"])),
}))
"#;
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        read["columns"],
        serde_json::json!([
            ["page_number", "int64"],
            ["import_api_url_requested", "string"],
            ["import_api_status_code", "string"],
            ["import_exception_thrown", "string"],
            ["appeals", "string"],
            ["import_datetime", "timestamp[us]"],
            ["import_timestamp", "string"],
        ])
    );
    assert_eq!(read["rows"], outcome.records_written);
    // The status as text, as the old jobs wrote it and the analysts filter it (`= '200'`).
    assert_eq!(read["status"], "200");
    assert!(read["first"]["id"].is_string());
    // The epoch seconds as Python prints a float: Python reads them back, the same text.
    assert_eq!(read["timestamp"], read["timestamp_round_trip"]);
    let seconds: f64 = read["timestamp"].as_str().unwrap().parse().unwrap();
    assert!((seconds - chrono::Utc::now().timestamp() as f64).abs() < 600.0);
}

#[tokio::test]
async fn the_runner_sends_partition_ready_for_parse_svc() {
    use common::queue::{MemoryQueue, Queue};
    use std::sync::Arc;
    let f = fixture(sim_config()).await;
    f.sim.set_today(day(3));
    let input = Arc::new(MemoryQueue::new("ingest", Duration::from_secs(30)));
    let next = Arc::new(MemoryQueue::new("parse", Duration::from_secs(30)));
    let body = common::messages::encode(&request("appeals", IngestMode::Full, day(3)));
    let runner = common::runner::Runner::new(
        f.stage.clone(),
        input.clone(),
        Some(next.clone() as Arc<dyn Queue>),
        None,
        common::runner::RunnerSettings::default(),
    );
    // Delivered twice (at least once delivery), one after the other.
    for _ in 0..2 {
        input.send(&body, &Default::default()).await.unwrap();
        let dispositions = runner.drain(Duration::from_millis(50)).await;
        assert_eq!(
            dispositions,
            [common::runner::Disposition::Done { sent: 1 }]
        );
    }
    let sent = next.bodies();
    assert_eq!(sent.len(), 2);
    let ready: common::messages::PartitionReady =
        common::messages::decode(&sent[0], |_| true).unwrap();
    assert_eq!(ready.layer, Layer::Raw);
    let partitions = f.raw_partitions().await;
    assert_eq!(partitions.len(), 1);
    // A table the pipeline does not list is refused.
    assert!(!f.stage.is_known_table(&table("wards")));
}
