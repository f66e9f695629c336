//! The column-type dictionary read from S3 (moto), as a service reads it at start-up:
//! `TASCOMI_COLUMN_TYPE_DICTIONARY=s3://bucket/key` through `common::service::dictionary_from_env`.

mod support;

use bytes::Bytes;
use common::config::{COLUMN_TYPE_DICTIONARY_VARIABLE, Env, PipelineFile};
use common::storage::Storage;

const DICTIONARY: &str = r#"[{
  "integer": {"appeals": ["id", "appeal_days"]},
  "timestamp": {"appeals": ["last_updated"]},
  "boolean": {"wards": ["active"]}
}]"#;

/// A pipeline file naming no dictionary, as the repository's and the image's.
fn pipeline() -> PipelineFile {
    PipelineFile::parse(
        "tables:\n  appeals: daily\n  wards: weekly\n",
        "pipeline.yaml",
    )
    .unwrap()
}

#[tokio::test]
async fn a_service_reads_its_dictionary_from_an_s3_uri() {
    let Some(config) = support::moto().await else {
        return;
    };
    let (storage, bucket) = support::s3_bucket(&config, "tascomi-conf").await;
    let key = "planning/tascomi/_config/column-type-dictionary-0123abcd.json";
    storage
        .put(&bucket, key, Bytes::from_static(DICTIONARY.as_bytes()))
        .await
        .unwrap();
    let uri = format!("s3://{bucket}/{key}");
    let env = Env::from_pairs([(COLUMN_TYPE_DICTIONARY_VARIABLE, uri.as_str())]);

    let types = common::service::dictionary_from_env(&env, &pipeline(), &config)
        .await
        .unwrap();

    assert_eq!(
        types
            .column_type("appeals", "appeal_days")
            .map(|t| t.name()),
        Some("integer")
    );
    assert_eq!(
        types
            .column_type("appeals", "last_updated")
            .map(|t| t.name()),
        Some("timestamp")
    );
    assert_eq!(
        types.column_type("wards", "active").map(|t| t.name()),
        Some("boolean")
    );
    assert_eq!(types.tables().collect::<Vec<_>>(), ["appeals", "wards"]);
}

#[tokio::test]
async fn a_missing_object_is_an_error_naming_the_uri_and_the_variable() {
    let Some(config) = support::moto().await else {
        return;
    };
    let (_storage, bucket) = support::s3_bucket(&config, "tascomi-conf").await;
    let uri = format!("s3://{bucket}/planning/tascomi/_config/no-such-dictionary.json");
    let env = Env::from_pairs([(COLUMN_TYPE_DICTIONARY_VARIABLE, uri.as_str())]);

    let err = common::service::dictionary_from_env(&env, &pipeline(), &config)
        .await
        .unwrap_err()
        .to_string();

    assert!(err.contains(&uri), "the error names the URI: {err}");
    assert!(
        err.contains(COLUMN_TYPE_DICTIONARY_VARIABLE),
        "the error names the setting: {err}"
    );
    assert!(err.contains("no such object"), "{err}");
}

#[tokio::test]
async fn an_object_that_is_not_a_dictionary_is_an_error_naming_the_uri() {
    let Some(config) = support::moto().await else {
        return;
    };
    let (storage, bucket) = support::s3_bucket(&config, "tascomi-conf").await;
    let key = "config/dictionary.json";
    storage
        .put(&bucket, key, Bytes::from_static(b"{\"integer\": 1}"))
        .await
        .unwrap();
    let uri = format!("s3://{bucket}/{key}");
    let env = Env::from_pairs([(COLUMN_TYPE_DICTIONARY_VARIABLE, uri.as_str())]);

    let err = common::service::dictionary_from_env(&env, &pipeline(), &config)
        .await
        .unwrap_err()
        .to_string();

    assert!(
        err.starts_with(&format!("column-type dictionary {uri}: ")),
        "{err}"
    );
}
