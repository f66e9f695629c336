//! A platform of its own on the moto server (S3, Glue, SQS), so that tests run in parallel on
//! one server.
//!
//! `scripts/test.sh` starts moto and sets `AWS_ENDPOINT_URL`. Without it [`MotoPlatform::start`]
//! says why and returns `None`, so `cargo test` works on a bare machine, unless `CI` is set,
//! where skipping is a failure.

use std::sync::Arc;

use common::config::Env;
use common::platform::Platform;
use common::queue::{Queue, SqsQueue};

/// Buckets, a database prefix and queues named with a suffix of their own.
#[derive(Debug)]
pub struct MotoPlatform {
    pub sdk: aws_config::SdkConfig,
    pub platform: Platform,
    pub suffix: String,
}

impl MotoPlatform {
    /// Creates the two buckets. `None` (with the reason printed) when no endpoint is configured.
    pub async fn start() -> Option<Self> {
        if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("AWS_ENDPOINT_URL is not set, and CI requires the moto tests");
            }
            eprintln!(
                "skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)"
            );
            return None;
        }
        let sdk = common::aws::load_sdk_config().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let raw = format!("raw-{suffix}");
        let refined = format!("refined-{suffix}");
        let s3 = common::storage::S3Storage::new(&sdk);
        for bucket in [&raw, &refined] {
            let mut request = s3.client().create_bucket().bucket(bucket);
            if let Some(region) = sdk
                .region()
                .map(|r| r.as_ref())
                .filter(|r| *r != "us-east-1")
            {
                request = request.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(region.into())
                        .build(),
                );
            }
            request.send().await.expect("moto creates the bucket");
        }
        let env = Env::from_pairs([
            ("TASCOMI_RAW_BUCKET", raw),
            ("TASCOMI_REFINED_BUCKET", refined),
            ("TASCOMI_DATABASE_PREFIX", format!("t{suffix}")),
        ]);
        let platform = Platform::aws(&sdk, &env).expect("a valid platform");
        Some(Self {
            sdk,
            platform,
            suffix,
        })
    }

    /// A stage's three queues on moto: input, next stage, dead letters.
    pub async fn queues(&self, stage: &str) -> [Arc<dyn Queue>; 3] {
        let client = aws_sdk_sqs::Client::new(&self.sdk);
        let mut queues = Vec::new();
        for q in ["in", "next", "dead"] {
            let created = client
                .create_queue()
                .queue_name(format!("{stage}-{q}-{}", self.suffix))
                .send()
                .await
                .expect("moto creates the queue");
            let url = created.queue_url().expect("a queue URL").to_owned();
            queues.push(Arc::new(SqsQueue::new(&self.sdk, url)) as Arc<dyn Queue>);
        }
        queues.try_into().expect("three queues")
    }
}

/// Creates `bucket` on moto in eu-west-2, the deployments' region.
pub async fn create_bucket(s3: &common::storage::S3Storage, bucket: &str) {
    s3.client()
        .create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest2)
                .build(),
        )
        .send()
        .await
        .expect("moto creates the bucket");
}
