//! `S3Storage` against the moto server: the storage contract on a fresh bucket.

mod support;

use bytes::Bytes;
use common::storage::{S3Storage, Storage, StorageError};

async fn storage_with_bucket() -> Option<(S3Storage, String)> {
    let config = support::moto().await?;
    Some(support::s3_bucket(&config, "tascomi-test").await)
}

#[tokio::test]
async fn s3_storage_keeps_the_storage_contract() {
    let Some((storage, bucket)) = storage_with_bucket().await else {
        return;
    };
    // The contract includes a 12 MiB object (two parts at the default 8 MiB) and a copy.
    tascomi_test_support::contract::storage::check(&storage, &bucket).await;
}

#[tokio::test]
async fn multipart_upload_round_trips_with_small_parts() {
    let Some((storage, bucket)) = storage_with_bucket().await else {
        return;
    };
    let storage = storage.with_part_size(5 * 1024 * 1024);
    let body: Bytes = (0..16 * 1024 * 1024 + 17)
        .map(|i| (i % 251) as u8)
        .collect();
    storage
        .put(&bucket, "big/three-parts.bin", body.clone())
        .await
        .unwrap();
    assert_eq!(
        storage.get(&bucket, "big/three-parts.bin").await.unwrap(),
        body
    );
    let tail = storage
        .get_range(&bucket, "big/three-parts.bin", 16 * 1024 * 1024..u64::MAX)
        .await
        .unwrap();
    assert_eq!(tail, body.slice(16 * 1024 * 1024..));
}

#[tokio::test]
async fn missing_objects_are_not_found_and_name_bucket_and_key() {
    let Some((storage, bucket)) = storage_with_bucket().await else {
        return;
    };
    for result in [
        storage.get(&bucket, "no/such.parquet").await.map(|_| ()),
        storage.size(&bucket, "no/such.parquet").await.map(|_| ()),
        storage
            .get_range(&bucket, "no/such.parquet", 0..4)
            .await
            .map(|_| ()),
        storage
            .copy(&bucket, "no/such.parquet", &bucket, "to.parquet")
            .await,
    ] {
        match result {
            Err(err @ StorageError::NotFound { .. }) => {
                assert_eq!(
                    err.to_string(),
                    format!("object s3://{bucket}/no/such.parquet does not exist")
                );
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_missing_bucket_is_a_permanent_failure_not_an_absent_object() {
    let Some((storage, _)) = storage_with_bucket().await else {
        return;
    };
    let bucket = support::unique("tascomi-none");
    match storage.get(&bucket, "k.parquet").await {
        Err(err @ StorageError::Failed { .. }) => {
            assert!(!err.is_transient());
            let text = err.to_string();
            assert!(
                text.contains(&bucket) && text.contains("k.parquet"),
                "{text}"
            );
            assert!(!text.contains("testing"), "credentials leaked: {text}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn delete_and_list_span_more_than_one_page() {
    let Some((storage, bucket)) = storage_with_bucket().await else {
        return;
    };
    // 1,001 keys: two ListObjectsV2 pages and two DeleteObjects requests.
    let keys: Vec<String> = (0..1001).map(|i| format!("many/{i:05}.txt")).collect();
    futures::future::try_join_all(
        keys.iter()
            .map(|key| storage.put(&bucket, key, Bytes::from_static(b"x"))),
    )
    .await
    .unwrap();
    let listed = storage.list(&bucket, "many/").await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        keys
    );
    storage.delete(&bucket, &keys).await.unwrap();
    assert!(storage.list(&bucket, "many/").await.unwrap().is_empty());
}

#[tokio::test]
async fn empty_and_past_the_end_ranges_are_empty() {
    let Some((storage, bucket)) = storage_with_bucket().await else {
        return;
    };
    storage
        .put(&bucket, "r.bin", Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert!(
        storage
            .get_range(&bucket, "r.bin", 4..4)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        storage
            .get_range(&bucket, "r.bin", 10..20)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        storage.get_range(&bucket, "r.bin", 8..20).await.unwrap(),
        "89"
    );
}

#[tokio::test]
async fn copy_handles_keys_that_need_encoding() {
    let Some((storage, bucket)) = storage_with_bucket().await else {
        return;
    };
    let from = "planning/import_year=2026/a b+c.parquet";
    storage
        .put(&bucket, from, Bytes::from_static(b"pq"))
        .await
        .unwrap();
    storage
        .copy(&bucket, from, &bucket, "copied/x=1/é.parquet")
        .await
        .unwrap();
    assert_eq!(
        storage.get(&bucket, "copied/x=1/é.parquet").await.unwrap(),
        "pq"
    );
}
