//! The rule of one row per id, through the stage: a record served twice is stored once, the
//! later of two versions is kept, and both are counted.

use super::*;

/// An appeal as the API sends it, with this `last_updated` (`None`: null) and reference.
fn appeal_version(id: u32, last_updated: Option<&str>, reference: &str) -> String {
    serde_json::json!({
        "id": id.to_string(),
        "last_updated": last_updated,
        "reference": reference,
        "ward": null,
    })
    .to_string()
}

fn check<'r>(report: &'r QualityReport, name: &str) -> &'r common::quality::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.check == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:?}"))
}

fn pages_of(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column_by_name("page_number")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[tokio::test]
async fn a_record_served_on_two_pages_is_stored_once_and_counted() {
    let f = fixture();
    // Offset paging over a live table: the same JSON text on pages 1 and 2.
    let pages = [
        RawPage::ok(1, vec![appeal(1), appeal(2)]),
        RawPage::ok(2, vec![appeal(2), appeal(3)]),
    ];
    let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
        .await
        .unwrap();
    let outcome = f.stage.parse(&message).await.unwrap();
    assert!(outcome.report.passed(), "{:?}", outcome.report);
    assert_eq!(outcome.published.rows, 3);
    assert_eq!(outcome.report.rows, 3);

    let batch = parsed_rows(&f, "appeals").await.unwrap();
    assert_eq!(
        column(&batch, "id").iter().collect::<Vec<_>>(),
        [Some("1"), Some("2"), Some("3")]
    );
    assert_eq!(pages_of(&batch), [1, 2, 2], "the later page's copy is kept");

    let collapsed = check(&outcome.report, "duplicate_records_collapsed");
    assert!(collapsed.passed);
    assert_eq!(collapsed.value, 1.0);
    assert_eq!(collapsed.examples, ["2"]);
    let superseded = check(&outcome.report, "superseded_versions_dropped");
    assert!(superseded.passed);
    assert_eq!(superseded.value, 0.0);
    assert!(check(&outcome.report, "unique_id").passed);

    // Recorded with the other checks.
    let lines = reports(&f, "appeals").await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    let recorded = lines
        .iter()
        .find(|l| l["check"]["check"] == "duplicate_records_collapsed")
        .unwrap();
    assert_eq!(recorded["check"]["value"], 1.0);
    assert_eq!(recorded["check"]["examples"], serde_json::json!(["2"]));
    assert_eq!(recorded["passed"], true);
}

#[tokio::test]
async fn two_versions_of_an_id_keep_the_later_last_updated_then_the_later_page() {
    let f = fixture();
    // Stored out of page order, as a retried page would be.
    let pages = [
        RawPage::ok(
            3,
            vec![appeal_version(
                6,
                Some("2026-11-20 08:00:00"),
                "6 on page 3",
            )],
        ),
        RawPage::ok(
            1,
            vec![
                appeal_version(5, Some("2026-11-20 12:00:00"), "5 new"),
                appeal_version(6, Some("2026-11-20 08:00:00"), "6 on page 1"),
                appeal_version(7, Some("2026-11-19 17:00:00"), "7 dated"),
                appeal(8),
            ],
        ),
        RawPage::ok(
            2,
            vec![
                appeal_version(5, Some("2026-11-20 09:00:00"), "5 old"),
                appeal_version(7, None, "7 undated"),
            ],
        ),
    ];
    let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
        .await
        .unwrap();
    let outcome = f.stage.parse(&message).await.unwrap();
    assert!(outcome.report.passed(), "{:?}", outcome.report);

    let batch = parsed_rows(&f, "appeals").await.unwrap();
    let kept: Vec<_> = column(&batch, "id")
        .iter()
        .zip(column(&batch, "reference").iter())
        .map(|(id, reference)| (id.unwrap(), reference.unwrap()))
        .collect();
    assert_eq!(
        kept,
        [
            ("6", "6 on page 3"),
            ("5", "5 new"),
            ("7", "7 dated"),
            ("8", "A/8")
        ]
    );
    assert_eq!(pages_of(&batch), [3, 1, 1, 1]);

    let superseded = check(&outcome.report, "superseded_versions_dropped");
    assert_eq!(superseded.value, 3.0);
    assert_eq!(superseded.examples, ["6", "5", "7"]);
    assert!(superseded.passed);
    assert_eq!(
        check(&outcome.report, "duplicate_records_collapsed").value,
        0.0
    );
}

#[tokio::test]
async fn the_duplicate_rule_does_not_depend_on_the_batch_size() {
    let pages = [
        RawPage::ok(
            1,
            vec![appeal(1), appeal(2), appeal_version(3, None, "old")],
        ),
        RawPage::ok(2, vec![appeal(2), appeal(3), appeal(4)]),
        RawPage::ok(3, vec![appeal(1), appeal_version(4, None, "older")]),
    ];
    let mut results = Vec::new();
    for f in [fixture_with(ParseSettings::with_batch_rows(1)), fixture()] {
        let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        let outcome = f.stage.parse(&message).await.unwrap();
        let counts = (
            check(&outcome.report, "duplicate_records_collapsed").value,
            check(&outcome.report, "superseded_versions_dropped").value,
        );
        results.push((parsed_rows(&f, "appeals").await.unwrap(), counts));
    }
    assert_eq!(results[0], results[1]);
    let (batch, counts) = &results[0];
    assert_eq!(counts, &(2.0, 2.0));
    assert_eq!(
        column(batch, "id").iter().collect::<Vec<_>>(),
        [Some("2"), Some("3"), Some("4"), Some("1")]
    );
    assert_eq!(pages_of(batch), [2, 2, 2, 3]);
}
