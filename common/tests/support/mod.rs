//! What the moto integration tests share: the endpoint check and unique resource names.
//!
//! `scripts/test.sh` starts a moto server and exports `AWS_ENDPOINT_URL` (and test credentials).
//! Without it these tests skip with a message, so `cargo test` works on a bare machine; with `CI`
//! or `TASCOMI_REQUIRE_MOTO` set, a missing endpoint fails them instead, so that a CI run cannot
//! pass by skipping.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use aws_config::SdkConfig;
use common::config::Env;

/// The SDK configuration for the moto server, or `None` (after saying so) when there is none.
pub async fn moto() -> Option<SdkConfig> {
    let env = Env::from_process();
    if env.get("AWS_ENDPOINT_URL").is_none_or(str::is_empty) {
        let required = ["CI", "TASCOMI_REQUIRE_MOTO"]
            .into_iter()
            .find(|name| env.get(name).is_some_and(|v| !v.is_empty()));
        if let Some(name) = required {
            panic!(
                "AWS_ENDPOINT_URL is not set but {name} is: run scripts/test.sh, which starts moto"
            );
        }
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)");
        return None;
    }
    Some(common::aws::load_sdk_config().await)
}

/// A name no other test (or earlier run against the same server) uses: `prefix-<uuid>`, lowercase,
/// 45 characters for a 12-character prefix, valid for buckets, queues and Glue databases.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// S3 on moto with a fresh bucket named `prefix-<uuid>` (in eu-west-2, as the deployments).
pub async fn s3_bucket(config: &SdkConfig, prefix: &str) -> (common::storage::S3Storage, String) {
    let storage = common::storage::S3Storage::new(config);
    let bucket = unique(prefix);
    tascomi_test_support::moto::create_bucket(&storage, &bucket).await;
    (storage, bucket)
}
