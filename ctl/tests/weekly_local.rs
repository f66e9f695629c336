//! A weekly table on the embedded default: fetched on Sunday, its snapshot carried forward on
//! the other nights, so that every table has a snapshot of every night; each snapshot is
//! announced in the run's summary.

mod support;

use chrono::{Datelike, NaiveDate};
use common::layout::date_value;
use support::{Workspace, snapshot};
use tascomi_sim::{SimApi, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_table_is_fetched_on_sunday_and_carried_forward_on_the_other_nights() {
    let ws = Workspace::new("  appeals: daily\n  wards: weekly\n");
    let config = SimConfig::with_production_dictionary().unwrap();
    let mut sunday = config.history.start + chrono::Duration::days(5);
    while sunday.weekday() != chrono::Weekday::Sun {
        sunday += chrono::Duration::days(1);
    }
    let sim = SimApi::start(config).await.unwrap();
    let run = |day: NaiveDate| ws.run_night(&sim, day);

    // A Saturday before any Sunday: wards has no snapshot to carry, and is not run.
    let saturday = sunday - chrono::Duration::days(1);
    let out = run(saturday);
    assert!(out.contains("1 table(s) run"), "{out}");
    assert!(!out.contains("wards"), "{out}");

    let out = run(sunday);
    assert!(out.contains("2 table(s) run"), "{out}");
    assert!(out.contains("announced wards"), "{out}");
    let fetched = snapshot(&ws.data_dir, "wards", sunday).await;
    assert!(!fetched.is_empty());

    let requests_before = sim.requests().len();
    for monday_on in 1..=2 {
        let day = sunday + chrono::Duration::days(monday_on);
        let out = run(day);
        assert!(
            out.contains(&format!(
                "ok      wards: snapshot {} published",
                date_value(day)
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "announced wards                        snapshot_date={}",
                date_value(day)
            )),
            "{out}"
        );
        assert_eq!(snapshot(&ws.data_dir, "wards", day).await, fetched);
    }
    assert!(
        sim.requests()[requests_before..]
            .iter()
            .all(|r| r.table != "wards"),
        "a carried-forward table is not fetched"
    );
    let (ok, out) = ws.tascomi(&sim, &["status"], &[]);
    assert!(ok, "every table fresh:\n{out}");
}
