//! parse-svc, recast-svc and snapshot-svc never hold the Tascomi API keys: even built from an
//! environment that has them (as a misconfigured task might), nothing of a stage shows them,
//! because nothing reads them. Only ingest-svc reads the keys (see ingest-svc/tests/logs.rs);
//! infra/modules/tascomi-pipeline/locals.tf gives the secret id (`TASCOMI_API_SECRET_ID`), and
//! its iam.tf the right to
//! read the secret, to ingest only.

use common::config::Env;
use common::service::ServiceSettings;

const PUBLIC: &str = "PUBLIC-key-never-held";
const PRIVATE: &str = "PRIVATE-key-never-held";

#[tokio::test]
async fn the_stages_built_from_an_environment_with_the_keys_hold_none() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(&pipeline, "tables:\n  appeals: daily\n").unwrap();
    let dictionary = dir.path().join("column-type-dictionary.json");
    std::fs::write(&dictionary, r#"[{"integer": {"appeals": ["id"]}}]"#).unwrap();
    let env = Env::from_pairs([
        ("TASCOMI_PUBLIC_KEY", PUBLIC),
        ("TASCOMI_PRIVATE_KEY", PRIVATE),
        ("TASCOMI_API_SECRET_ID", "tascomi/api"),
        ("TASCOMI_PIPELINE_FILE", pipeline.to_str().unwrap()),
        (
            "TASCOMI_COLUMN_TYPE_DICTIONARY",
            dictionary.to_str().unwrap(),
        ),
        ("TASCOMI_RAW_BUCKET", "raw-zone"),
        ("TASCOMI_REFINED_BUCKET", "refined-zone"),
        ("TASCOMI_DATABASE_PREFIX", "council"),
        ("TASCOMI_QUEUE_URL", "http://127.0.0.1:1/queue/stage"),
    ]);
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-2"))
        .no_credentials()
        .load()
        .await;
    let shown = [
        format!(
            "{:?} {:?}",
            parse_svc::ParseStage::from_env(&env, &sdk).unwrap(),
            parse_svc::ParseSettings::from_env(&env).unwrap()
        ),
        format!(
            "{:?} {:?}",
            recast_svc::RecastStage::from_env(&env, &sdk).await.unwrap(),
            recast_svc::RecastSettings::from_env(&env).unwrap()
        ),
        format!(
            "{:?} {:?}",
            snapshot_svc::SnapshotStage::from_env(&env, &sdk).unwrap(),
            snapshot_svc::SnapshotSettings::from_env(&env).unwrap()
        ),
        format!("{:?} {env:?}", ServiceSettings::from_env(&env).unwrap()),
    ];
    for shown in shown {
        assert!(
            shown.contains("raw-zone") || shown.contains("queue/stage"),
            "built from this environment: {shown}"
        );
        for secret in [PUBLIC, PRIVATE] {
            assert!(!shown.contains(secret), "{secret} is held: {shown}");
        }
    }
}
