//! "Nothing lost, nothing silent" for the operator command on the embedded default, through the
//! real binary: a run that did not reach a table's snapshot exits non-zero and says why per
//! table; a redriven message that fails again is back in the dead-letter queue; `status` flags
//! holes; `ingest --since` re-fetches the days since a date.

mod support;

use chrono::NaiveDate;
use common::layout::{Layer, TableName, date_value};
use support::{Workspace, expected, published_dates, snapshot, unpublish};
use tascomi_sim::{Faults, PageFault, SimApi, SimConfig};

/// One attempt per page, so that an unreachable API fails in milliseconds.
const FAST: &[(&str, &str)] = &[
    ("TASCOMI_API_MAX_ATTEMPTS", "1"),
    ("TASCOMI_API_BACKOFF_BASE_MS", "1"),
];

async fn sim() -> (tascomi_sim::SimHandle, NaiveDate) {
    let config = SimConfig::with_production_dictionary().unwrap();
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    sim.set_today(first);
    (sim, first)
}

/// A loopback address nothing listens on.
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/rest/v1/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_a_table_exits_non_zero_and_says_why_per_table() {
    let ws = Workspace::new("  appeals: daily\n  contacts: daily\n");
    let (sim, day) = sim().await;
    let as_of = day.to_string();

    // An unreachable API: every table fails, each named with the connection error.
    let url = unreachable_url();
    let (ok, out) = ws.tascomi(&sim, &["run", "--api-url", &url, "--as-of", &as_of], FAST);
    assert!(!ok, "an unreachable API reported success:\n{out}");
    for table in ["appeals", "contacts"] {
        assert!(out.contains(&format!("FAILED  {table}: ")), "{out}");
    }
    assert!(
        out.contains("Connection refused") || out.contains("connect"),
        "{out}"
    );
    assert!(out.contains("2 table(s) run for"), "{out}");
    assert!(out.contains("2 failed"), "{out}");
    assert!(
        !out.contains("TASCOMI_PRIVATE") && !out.contains(&sim.private_key),
        "{out}"
    );

    // A mistyped URL: the API answers 404 for everything.
    let typo = format!("{}typo/", sim.base_url);
    let (ok, out) = ws.tascomi(&sim, &["run", "--api-url", &typo, "--as-of", &as_of], FAST);
    assert!(!ok, "a mistyped URL reported success:\n{out}");
    assert!(out.contains("FAILED  appeals: "), "{out}");
    assert!(out.contains("404"), "{out}");

    // A table the API does not know, next to one it does: one ok, one failed with the 404.
    let (ok, out) = ws.tascomi(
        &sim,
        &[
            "run",
            "--api-url",
            &sim.base_url,
            "--as-of",
            &as_of,
            "--tables",
            "appeals,no_such_table",
        ],
        FAST,
    );
    assert!(!ok, "an unknown table reported success:\n{out}");
    assert!(
        out.contains(&format!("ok      appeals: snapshot {}", date_value(day))),
        "{out}"
    );
    assert!(out.contains("FAILED  no_such_table: "), "{out}");
    assert!(out.contains("404"), "{out}");
    assert!(out.contains("1 failed"), "{out}");
    assert_eq!(
        snapshot(&ws.data_dir, "appeals", day).await,
        expected(&sim, "appeals", day)
    );

    // A page that keeps failing: the snapshot is published without its records, and the run
    // says so, with the repair.
    let next = day.succ_opt().unwrap();
    sim.set_today(next);
    sim.set_faults(Faults {
        failing_pages: vec![PageFault::always("contacts", 1)],
        ..Faults::default()
    });
    let (ok, out) = ws.tascomi(
        &sim,
        &[
            "run",
            "--api-url",
            &sim.base_url,
            "--as-of",
            &date_value(next),
            "--tables",
            "contacts",
        ],
        FAST,
    );
    assert!(!ok, "a failed page reported success:\n{out}");
    assert!(out.contains("FAILED  contacts: 1 page(s) failed"), "{out}");
    assert!(out.contains("--mode retry-failed"), "{out}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_message_that_fails_again_is_back_in_the_dead_letter_queue() {
    let ws = Workspace::new("  appeals: daily\n");
    let (sim, day) = sim().await;
    let as_of = day.to_string();
    let wrong_key = [("TASCOMI_PRIVATE_KEY", "not-the-key")];

    // Wrong keys: ingest dead-letters the request with the reason.
    let (ok, out) = ws.tascomi(
        &sim,
        &["run", "--api-url", &sim.base_url, "--as-of", &as_of],
        &wrong_key,
    );
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED  appeals: ingest failed: "), "{out}");
    assert!(out.contains("authentication failed"), "{out}");
    assert!(!out.contains("not-the-key"), "the key leaked:\n{out}");
    assert_eq!(ws.dead_letters("ingest").len(), 1);

    // Redriving ingest without an API runs nothing and keeps the message.
    let (ok, out) = ws.tascomi(&sim, &["redrive", "--stage", "ingest"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("--api-url"), "{out}");
    assert_eq!(ws.dead_letters("ingest").len(), 1);

    // Still the wrong keys: it fails again, is back in the dead-letter queue with its reason,
    // and the command says so.
    let (ok, out) = ws.tascomi(
        &sim,
        &["redrive", "--stage", "ingest", "--api-url", &sim.base_url],
        &wrong_key,
    );
    assert!(!ok, "a redrive that failed again reported success:\n{out}");
    assert!(out.contains("1 failed again"), "{out}");
    assert!(out.contains("FAILED  appeals: ingest failed: "), "{out}");
    let letters = ws.dead_letters("ingest");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]["attributes"]["failure_reason"]
            .as_str()
            .unwrap()
            .contains("authentication failed"),
        "{letters:?}"
    );

    // After the fix (the right keys), the redrive handles it: the snapshot of the message's
    // date is published and the dead-letter queue is empty.
    let (ok, out) = ws.tascomi(
        &sim,
        &["redrive", "--stage", "ingest", "--api-url", &sim.base_url],
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("0 failed again"), "{out}");
    assert!(ws.dead_letters("ingest").is_empty());
    assert_eq!(
        snapshot(&ws.data_dir, "appeals", day).await,
        expected(&sim, "appeals", day)
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_flags_holes_and_ingest_since_refetches_the_days_since() {
    let ws = Workspace::new("  appeals: daily\n");
    let (sim, first) = sim().await;
    let days: Vec<NaiveDate> = (0..3).map(|i| first + chrono::Duration::days(i)).collect();
    for day in &days {
        ws.run_night(&sim, *day);
    }
    let (ok, out) = ws.tascomi(&sim, &["status"], &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("HOLE") && !out.contains("BEHIND"), "{out}");

    // A night killed after ingest: the raw import of the last day has no later layers.
    let last = days[2];
    for layer in [Layer::Parsed, Layer::Increment, Layer::Snapshot] {
        unpublish(&ws.data_dir, "appeals", layer, last).await;
    }
    let (ok, out) = ws.tascomi(&sim, &["status"], &[]);
    assert!(!ok, "status hid a hole:\n{out}");
    assert!(
        out.contains(&format!(
            "HOLE    appeals: the raw import {} has no parsed partition",
            date_value(last)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "BEHIND  appeals: the latest snapshot ({}) is older than the latest raw import {}",
            date_value(days[1]),
            date_value(last)
        )),
        "{out}"
    );
    // The repair status names rebuilds it, under its own date.
    let (ok, out) = ws.tascomi(
        &sim,
        &[
            "reset",
            "--table",
            "appeals",
            "--stage",
            "parse",
            "--from",
            &last.to_string(),
            "--yes",
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert_eq!(
        published_dates(&ws.data_dir, "appeals", Layer::Snapshot).await,
        days
    );
    assert_eq!(
        snapshot(&ws.data_dir, "appeals", last).await,
        expected(&sim, "appeals", last)
    );
    let (ok, out) = ws.tascomi(&sim, &["status"], &[]);
    assert!(ok, "{out}");

    // ingest --since (dates as YYYY-MM-DD and YYYYMMDD): the next day's import fetches every
    // day since the first night again, and the snapshot still matches the API.
    let next = last.succ_opt().unwrap();
    sim.set_today(next);
    let (ok, out) = ws.tascomi(
        &sim,
        &[
            "ingest",
            "--table",
            "appeals",
            "--since",
            &days[0].to_string(),
            "--as-of",
            &date_value(next),
            "--api-url",
            &sim.base_url,
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("ok      appeals: snapshot {}", date_value(next))),
        "{out}"
    );
    let platform = common::platform::Platform::local(&ws.data_dir);
    let state = ingest_svc::state::load(
        &platform.storage,
        &platform.layout.raw_bucket,
        &TableName::new("appeals").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        state.imports[&next].days_requested,
        (0..3)
            .map(|i| days[0] + chrono::Duration::days(i))
            .collect::<Vec<_>>(),
        "ingest --since {} on {next} did not fetch every day since",
        days[0]
    );
    assert_eq!(
        snapshot(&ws.data_dir, "appeals", next).await,
        expected(&sim, "appeals", next)
    );

    // --since is for an incremental ingest, and before the run's date.
    let (ok, out) = ws.tascomi(
        &sim,
        &[
            "ingest",
            "--table",
            "appeals",
            "--mode",
            "full",
            "--since",
            "20200101",
            "--api-url",
            &sim.base_url,
        ],
        &[],
    );
    assert!(!ok && out.contains("since"), "{out}");
    let (ok, out) = ws.tascomi(
        &sim,
        &["ingest", "--table", "appeals", "--since", "2026-13-01"],
        &[],
    );
    assert!(!ok && out.contains("YYYYMMDD"), "{out}");
    sim.stop().await;
}
