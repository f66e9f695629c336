//! The storage contract, run against every implementation of `common::storage::Storage` (the
//! local one in common/tests/local_contract.rs, S3 on moto in common/tests/moto_s3.rs).

use bytes::Bytes;
use common::storage::{Storage, StorageError};

/// Checks `storage` keeps the contract in `bucket`, which must exist. Includes a 12 MiB object
/// (several parts for S3) and a copy. Panics on the first broken promise.
pub async fn check(storage: &dyn Storage, bucket: &str) {
    let big = Bytes::from(vec![7u8; 12 * 1024 * 1024 + 3]);
    storage
        .put(bucket, "t/a/one.bin", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    storage
        .put(bucket, "t/a/big.bin", big.clone())
        .await
        .unwrap();
    storage
        .put(bucket, "t/b/two.bin", Bytes::from_static(b"2"))
        .await
        .unwrap();

    assert_eq!(
        storage.get(bucket, "t/a/one.bin").await.unwrap(),
        "hello world"
    );
    assert_eq!(
        storage
            .get_range(bucket, "t/a/one.bin", 6..11)
            .await
            .unwrap(),
        "world"
    );
    assert_eq!(
        storage
            .get_range(bucket, "t/a/one.bin", 6..100)
            .await
            .unwrap(),
        "world"
    );
    assert_eq!(
        storage.size(bucket, "t/a/big.bin").await.unwrap(),
        big.len() as u64
    );
    assert_eq!(storage.get(bucket, "t/a/big.bin").await.unwrap(), big);

    let listed = storage.list(bucket, "t/a/").await.unwrap();
    let keys: Vec<_> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["t/a/big.bin", "t/a/one.bin"]);
    assert_eq!(listed[1].size, 11);
    assert_eq!(storage.list(bucket, "t/").await.unwrap().len(), 3);
    assert!(storage.list(bucket, "nothing/").await.unwrap().is_empty());

    storage
        .copy(bucket, "t/a/one.bin", bucket, "t/c/copy.bin")
        .await
        .unwrap();
    assert_eq!(
        storage.get(bucket, "t/c/copy.bin").await.unwrap(),
        "hello world"
    );

    storage
        .delete(bucket, &["t/a/one.bin".into(), "t/never.bin".into()])
        .await
        .unwrap();
    match storage.get(bucket, "t/a/one.bin").await {
        Err(StorageError::NotFound { key, .. }) => assert_eq!(key, "t/a/one.bin"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        storage.size(bucket, "t/a/one.bin").await,
        Err(StorageError::NotFound { .. })
    ));
    // Overwrite replaces.
    storage
        .put(bucket, "t/b/two.bin", Bytes::from_static(b"22"))
        .await
        .unwrap();
    assert_eq!(storage.get(bucket, "t/b/two.bin").await.unwrap(), "22");
}
