//! The snapshot scenarios against S3 and Glue as served by moto (`AWS_ENDPOINT_URL`). Each test
//! makes its own buckets and database, so the tests run in parallel on one server. Without
//! `AWS_ENDPOINT_URL` the tests are skipped, except in CI (env `CI`), where they fail.
#![allow(clippy::print_stdout)]

#[macro_use]
mod support;

use common::config::Env;
use common::platform::Platform;
use common::storage::S3Storage;
use support::Lake;

async fn moto_lake() -> Option<Lake> {
    let env = Env::from_process();
    let endpoint = match env.get("AWS_ENDPOINT_URL") {
        Some(endpoint) => endpoint.to_owned(),
        None if env.get("CI").is_some() => panic!("AWS_ENDPOINT_URL is not set in CI"),
        _ => {
            println!(
                "skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)"
            );
            return None;
        }
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let run = common::publish::new_run_id();
    let suffix = &run[run.len() - 12..];
    let raw = format!("snapshot-raw-{suffix}");
    let refined = format!("snapshot-refined-{suffix}");
    let s3 = S3Storage::new(&sdk);
    for bucket in [&raw, &refined] {
        s3.client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
    }
    let env = Env::from_pairs([
        ("TASCOMI_RAW_BUCKET", raw.as_str()),
        ("TASCOMI_REFINED_BUCKET", refined.as_str()),
        ("TASCOMI_DATABASE_PREFIX", &format!("snapshot{suffix}")),
        ("TASCOMI_ORPHAN_GRACE_SECS", "0"),
    ]);
    let platform = Platform::aws(&sdk, &env).unwrap();
    Some(Lake {
        platform,
        dir: tempfile::tempdir().unwrap(),
    })
}

scenarios!(moto_lake());
