//! The metrics each import emits (`common::metrics::emit`), read from the `metrics` log event.
//!
//! One test in its own binary, with the process-wide subscriber: a subscriber scoped to one
//! task can miss events whose callsites other tests running at the same time registered first.

mod common_fixture;

use common::messages::IngestMode;

use common_fixture::*;

#[tokio::test]
async fn each_import_emits_its_counts_as_metrics() {
    let logs = LogBuffer::install(tracing::Level::INFO);
    let metrics_lines = || -> Vec<String> {
        logs.text()
            .lines()
            .filter(|l| l.contains("metrics=") && l.contains("FailedPages="))
            .map(str::to_owned)
            .collect()
    };

    let mut config = sim_config();
    config.faults.drift_queries = 1;
    config.history.future_dated = 2;
    let f = fixture_with(config, |s| s.max_lookback_days = 1).await;
    let full = f.night(IngestMode::Full, day(6)).await;
    let lines = metrics_lines();
    assert_eq!(lines.len(), 1, "one report per import: {lines:?}");
    let expected = format!(
        "FailedPages=0 Requeries=1 RecordsRecoveredByRequery=1 DaysCut=0 FutureDatedRecords=2 RecordsWritten={}",
        full.records_written
    );
    assert!(lines[0].contains(&expected), "{}", lines[0]);
    assert!(lines[0].contains("appeals"), "{}", lines[0]);

    // Two nights later with a lookback of one day: day 6 is cut.
    let night = f.night(IngestMode::Incremental, day(8)).await;
    assert_eq!(night.days_cut, [day(6)]);
    let lines = metrics_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let expected = format!(
        "FailedPages=0 Requeries=0 RecordsRecoveredByRequery=0 DaysCut=1 FutureDatedRecords=0 RecordsWritten={}",
        night.records_written
    );
    assert!(lines[1].contains(&expected), "{}", lines[1]);

    // A failed page is counted; so is a retry-failed run, even one with nothing to retry.
    f.sim.set_today(day(9));
    f.sim.set_faults(tascomi_sim::Faults {
        failing_pages: vec![tascomi_sim::PageFault {
            day: Some(day(8)),
            ..tascomi_sim::PageFault::always("appeals", 1)
        }],
        ..tascomi_sim::Faults::default()
    });
    let failing = f.run(IngestMode::Incremental, day(9)).await;
    assert_eq!(failing.failed_pages.len(), 1);
    let lines = metrics_lines();
    assert!(lines[2].contains("FailedPages=1 "), "{}", lines[2]);
    f.sim.set_faults(tascomi_sim::Faults::default());
    f.run(IngestMode::RetryFailed, day(9)).await;
    f.run(IngestMode::RetryFailed, day(9)).await;
    let lines = metrics_lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[4].contains("FailedPages=0 Requeries=0 RecordsRecoveredByRequery=0 DaysCut=0 FutureDatedRecords=0 RecordsWritten=0"), "{}", lines[4]);
}
