//! Field names from the API are data: one that is not a plain identifier fails the partition
//! with an error naming table, partition and field, and nothing of the parsed layer is written,
//! catalogued or announced.

use chrono::NaiveDate;
use common::config::PipelineFile;
use common::layout::{Layer, TableName};
use common::platform::Platform;
use common::runner::{Failure, Handler};
use parse_svc::{ParseError, ParseSettings, ParseStage};
use tascomi_test_support::{RawPage, publish_raw, read_published};

const HOSTILE: [&str; 8] = [
    "../x",
    "a;drop table",
    "A\"b",
    "x y",
    "a/b=c",
    "x\u{0}",
    "name`",
    "col' OR '1'='1",
];

#[tokio::test]
async fn hostile_field_names_are_refused_and_nothing_is_published() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let table: TableName = "appeals".parse().unwrap();
    for field in HOSTILE {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let pipeline = PipelineFile::parse("tables:\n  appeals: daily\n", "pipeline.yaml").unwrap();
        let stage = ParseStage::new(platform.clone(), pipeline, ParseSettings::default());
        let record = serde_json::json!({ "id": "1", field: "x", "last_updated": "2026-11-20" });
        let pages = [RawPage::ok(
            1,
            vec![r#"{"id":"2"}"#.into(), record.to_string()],
        )];
        let message = publish_raw(&platform, &table, date, &pages).await.unwrap();

        let err = stage.parse(&message).await.unwrap_err();
        assert!(matches!(err, ParseError::BadField { .. }), "{err:?}");
        let text = err.to_string();
        let named = format!("appeals raw import_date=20261121: column {field:?}");
        assert!(text.starts_with(&named), "{text}");
        assert!(text.contains("not a plain identifier"), "{text}");

        // Through the handler: permanent (to the dead-letter queue), no message onwards.
        let failure = stage.handle(message).await.unwrap_err();
        assert!(matches!(failure, Failure::Permanent(_)), "{failure:?}");
        assert!(failure.to_string().contains(&named), "{failure}");

        // Nothing in the catalog, and no object but the raw partition's in either bucket.
        let parsed = platform.layout.partition(&table, Layer::Parsed, date);
        assert!(
            read_published(&platform, &parsed).await.unwrap().is_none(),
            "{field:?}: a parsed partition was published"
        );
        for bucket in [&platform.layout.raw_bucket, &platform.layout.refined_bucket] {
            for object in platform.storage.list(bucket, "").await.unwrap() {
                assert!(
                    object
                        .key
                        .starts_with("planning/tascomi/api-responses/appeals/"),
                    "{field:?}: parsing wrote {bucket}/{}",
                    object.key
                );
            }
        }
    }
}
