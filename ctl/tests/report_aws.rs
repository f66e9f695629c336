//! `tascomi report` and `status` on a deployment (S3, Glue and SQS on moto): the page is made
//! from the catalog's partition parameters, the data-quality reports and the dead-letter
//! queues, with every data file deleted first (so it provably never reads a table), and the
//! dead letters it read are still in their queue afterwards.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use common::config::Env;
use common::layout::{Layer, TableName, date_value};
use common::platform::Platform;
use common::publish::{PartitionWriter, new_run_id};
use common::quality::{CheckResult, QualityReport};
use common::queue::{Queue, SqsQueue};
use tascomi_test_support::moto::create_bucket;

const STAGES: [&str; 4] = ["ingest", "parse", "recast", "snapshot"];

/// Publishes a partition of `rows` rows (one `id` column) with `parameters`, as a stage would.
async fn publish(
    platform: &Platform,
    table: &str,
    layer: Layer,
    date: NaiveDate,
    rows: i64,
    parameters: &[(&str, &str)],
) -> String {
    let table = TableName::new(table).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let run_id = new_run_id();
    let mut writer = PartitionWriter::new(
        platform.storage.clone(),
        platform.layout.partition(&table, layer, date),
        run_id.clone(),
        schema.clone(),
        platform.write_options,
    );
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(0..rows))],
    )
    .unwrap();
    writer.write(&batch).await.unwrap();
    let parameters = parameters
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    writer
        .finish()
        .await
        .unwrap()
        .publish(
            platform.catalog.as_ref(),
            &platform.layout,
            parameters,
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    run_id
}

fn check(name: &str, value: f64, examples: &[&str]) -> CheckResult {
    CheckResult {
        check: name.into(),
        passed: true,
        value,
        threshold: 0.0,
        examples: examples.iter().map(|e| (*e).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_on_a_deployment_reads_the_catalog_the_quality_reports_and_the_queues() {
    let process_env = Env::from_process();
    if process_env.get("AWS_ENDPOINT_URL").is_none() {
        assert!(
            process_env.get("CI").is_none() && process_env.get("TASCOMI_REQUIRE_MOTO").is_none(),
            "AWS_ENDPOINT_URL is not set: run scripts/test.sh, which starts moto"
        );
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)");
        return;
    }
    let sdk = common::aws::load_sdk_config().await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let unique = format!("ctlrep{}x{}", std::process::id(), nanos % 1_000_000_000);
    let s3 = common::storage::S3Storage::new(&sdk);
    create_bucket(&s3, &format!("{unique}-raw")).await;
    create_bucket(&s3, &format!("{unique}-refined")).await;
    let mut vars: Vec<(String, String)> = vec![
        ("TASCOMI_RAW_BUCKET".into(), format!("{unique}-raw")),
        ("TASCOMI_REFINED_BUCKET".into(), format!("{unique}-refined")),
        ("TASCOMI_DATABASE_PREFIX".into(), unique.clone()),
    ];
    let platform = Platform::aws(&sdk, &Env::from_pairs(vars.clone())).unwrap();
    let mut dead_letter_queues = BTreeMap::new();
    for stage in STAGES {
        let name = format!("{unique}-{stage}");
        let (url, dlq) =
            SqsQueue::create_queue_with_dlq(&sdk, &name, &format!("{name}-dlq"), 3, 30)
                .await
                .unwrap();
        let upper = stage.to_uppercase();
        vars.push((format!("TASCOMI_{upper}_QUEUE_URL"), url));
        vars.push((
            format!("TASCOMI_{upper}_DEAD_LETTER_QUEUE_URL"),
            dlq.clone(),
        ));
        dead_letter_queues.insert(stage, SqsQueue::new(&sdk, dlq));
    }

    // Three nights of appeals; the last snapshot shrank, and a column started failing to cast.
    let nights: Vec<NaiveDate> = (8..=10)
        .map(|d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
        .collect();
    let snapshot_rows = [100, 104, 90];
    let casts = [0.0, 0.0, 2.0];
    for (i, night) in nights.iter().enumerate() {
        publish(
            &platform,
            "appeals",
            Layer::Raw,
            *night,
            12,
            &[("failed_pages", "0")],
        )
        .await;
        publish(&platform, "appeals", Layer::Parsed, *night, 12, &[]).await;
        let failures = casts[i].to_string();
        let run = publish(
            &platform,
            "appeals",
            Layer::Increment,
            *night,
            12,
            &[("cast_failures", &failures)],
        )
        .await;
        publish(
            &platform,
            "appeals",
            Layer::Snapshot,
            *night,
            snapshot_rows[i],
            &[],
        )
        .await;
        let partition = platform.layout.partition(
            &TableName::new("appeals").unwrap(),
            Layer::Increment,
            *night,
        );
        let mut report = QualityReport::new("recast", &partition, &run);
        report.rows = 12;
        report.checks = vec![
            check("unique_id", 0.0, &[]),
            check("cast_failures_decision_date", casts[i], &["31/02/2026"]),
            check("cast_failures", casts[i], &[]),
        ];
        report
            .record(
                platform.storage.as_ref(),
                &platform.layout.refined_bucket,
                &platform.metrics_prefix,
            )
            .await
            .unwrap();
    }
    // wards (weekly): the Sunday's raw import has no parsed partition, a hole.
    publish(&platform, "wards", Layer::Raw, nights[0], 5, &[]).await;
    // A parse message of appeals in the dead-letter queue.
    let reason = "appeals parsed 20261110: data-quality gate failed, nothing published: completeness_id = 0.5 (threshold 0.99)";
    dead_letter_queues["parse"]
        .send(
            r#"{"type":"partition_ready","version":1,"table":"appeals","layer":"raw","partition":{"import_date":"20261110"},"location":"s3://x/","run_id":"r","as_of":"2026-11-10"}"#,
            &BTreeMap::from([("failure_reason".to_owned(), reason.to_owned())]),
        )
        .await
        .unwrap();
    // Every data file goes: what is left is what the report may read.
    for bucket in [&platform.layout.raw_bucket, &platform.layout.refined_bucket] {
        let parquet: Vec<String> = platform
            .storage
            .list(bucket, "")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.ends_with(".parquet"))
            .collect();
        assert!(!parquet.is_empty());
        platform.storage.delete(bucket, &parquet).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(&pipeline, "tables:\n  appeals: daily\n  wards: weekly\n").unwrap();
    let out = dir.path().join("report.html");
    let tascomi = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tascomi"))
            .args(args)
            .arg("--pipeline")
            .arg(&pipeline)
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("TASCOMI_COLUMN_TYPE_DICTIONARY")
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let as_of = date_value(nights[2]);
    let (ok, text) = tascomi(&["report", "--as-of", &as_of, "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        text.contains("2 tables: 0 fresh, 0 stale, 2 failing; 1 dead letter(s); 2 warning(s)"),
        "{text}"
    );
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(!page.to_ascii_lowercase().contains("<script"));
    for expected in [
        "id=\"t-appeals\"",
        "id=\"t-wards\"",
        "has no parsed partition",
        "the snapshot shrank from 104 rows (20261109) to 90 (20261110)",
        "started failing to cast on 20261110",
        "decision_date (2), e.g. 31/02/2026",
        "completeness_id = 0.5 (threshold 0.99)",
        "Cast failures per column",
    ] {
        assert!(page.contains(expected), "no {expected:?} in the page");
    }
    // The dead letter it read is still there, visible.
    let depth = dead_letter_queues["parse"].depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (1, 0), "{depth:?}");

    // status counts the dead letter without reading it, and exits 1.
    let (ok, text) = tascomi(&["status", "--as-of", &as_of]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("2 tables: 1 fresh, 0 stale, 1 failing; 1 dead letter(s); 2 warning(s)"),
        "{text}"
    );
    assert!(
        text.contains("HOLE    wards: the raw import 20261108 has no parsed partition"),
        "{text}"
    );
    assert!(
        text.contains("WARN    appeals: values started failing to cast"),
        "{text}"
    );
}
