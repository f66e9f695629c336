//! The ingest stage publishing to S3 and Glue (moto). Runs when `AWS_ENDPOINT_URL` points at a
//! moto server; skipped with a reason otherwise, except in CI, where it must run.

mod common_fixture;

use aws_config::BehaviorVersion;
use common::config::Env;
use common::messages::IngestMode;
use common::platform::Platform;

use common_fixture::*;

async fn moto_sdk() -> Option<aws_config::SdkConfig> {
    let env = Env::from_process();
    if env.get("AWS_ENDPOINT_URL").is_none() {
        if env.get("CI").is_some() {
            panic!("AWS_ENDPOINT_URL must point at a moto server in CI");
        }
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (start moto_server and set it)");
        return None;
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if env.get("AWS_REGION").is_none() && env.get("AWS_DEFAULT_REGION").is_none() {
        loader = loader.region(aws_config::Region::new("eu-west-2"));
    }
    if env.get("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ));
    }
    Some(loader.load().await)
}

#[tokio::test]
async fn publishes_raw_partitions_to_s3_and_glue() {
    let Some(sdk) = moto_sdk().await else { return };
    let unique = format!(
        "ingest{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    for bucket in [format!("{unique}-raw"), format!("{unique}-refined")] {
        let mut create = s3.create_bucket().bucket(&bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        region.as_str(),
                    ))
                    .build(),
            );
        }
        create.send().await.unwrap();
    }
    let env = Env::from_pairs([
        ("TASCOMI_RAW_BUCKET", format!("{unique}-raw")),
        ("TASCOMI_REFINED_BUCKET", format!("{unique}-refined")),
        ("TASCOMI_DATABASE_PREFIX", unique.clone()),
    ]);
    let f = fixture_on(Platform::aws(&sdk, &env).unwrap(), sim_config()).await;

    f.night(IngestMode::Full, day(4)).await;
    let rows = f.rows(day(4)).await;
    assert_eq!(records_by_id(&rows), f.snapshot(day(4)));

    f.sim.set_today(day(5));
    let message = request("appeals", IngestMode::Incremental, day(5));
    f.ingest(&message).await;
    let first = f.rows(day(5)).await;
    f.ingest(&message).await;
    let second = f.rows(day(5)).await;
    assert_eq!(first, second);
    assert_eq!(records_by_id(&second), f.updated_on(day(4)));
    let database = format!("{unique}-tascomi-raw-zone");
    let partitions = f
        .platform
        .catalog
        .list_partitions(&database, "api_response_appeals")
        .await
        .unwrap();
    assert_eq!(partitions.len(), 2);
}
