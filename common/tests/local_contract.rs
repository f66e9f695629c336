//! The local implementations (the embedded default) keep the same contracts as S3 and Glue
//! (common/tests/moto_s3.rs, moto_glue.rs): the checks are in `tascomi_test_support::contract`.

use common::catalog::LocalCatalog;
use common::storage::LocalStorage;
use tascomi_test_support::contract;

#[tokio::test]
async fn local_storage_keeps_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalStorage::new(dir.path());
    contract::storage::check(&storage, "bucket").await;
}

#[tokio::test]
async fn local_catalog_keeps_the_catalog_contract() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = LocalCatalog::new(dir.path());
    contract::catalog::check(&catalog, "council-tascomi-refined-zone", "refined").await;
}
