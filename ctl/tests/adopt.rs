//! `tascomi adopt` on a lake written the way the old Glue jobs wrote it: the real pipeline runs
//! three nights against the simulated API, then every published partition is rewritten by
//! pyarrow as Spark on Glue writes it (one snappy file per Hive folder, no run folder, INT96
//! timestamps, no Arrow schema in the footer, `page_number` bigint, the status code a string, a
//! `_SUCCESS` marker) into a second data directory with no catalog and no ingest state. After
//! `adopt`, the fourth night must make no full-load request, keep the existing column types, and
//! give the same snapshot as the lake that ran all four nights.

mod support;

use std::path::Path;

use chrono::NaiveDate;
use common::catalog::{Column, TableDef};
use common::layout::{Layer, TableName};
use common::platform::Platform;
use common::publish::published_partitions;
use serde_json::json;
use support::{Workspace, expected, published_dates, snapshot};
use tascomi_sim::{SimApi, SimConfig};
use tascomi_test_support::moto::MotoPlatform;
use tascomi_test_support::python;

const TABLES: &str = "  appeals: daily\n";

/// Three nights of the real pipeline in `ours`, and the same partitions as the old jobs wrote
/// them in `old` (no catalog, no ingest state).
struct OldLake {
    ours: Workspace,
    old: std::path::PathBuf,
    sim: tascomi_sim::SimHandle,
    days: Vec<NaiveDate>,
}

impl OldLake {
    async fn build(python: &str) -> Self {
        let ours = Workspace::new(TABLES);
        let config = SimConfig::with_production_dictionary().unwrap();
        let first = config.history.start + chrono::Duration::days(5);
        let sim = SimApi::start(config).await.unwrap();
        let days: Vec<NaiveDate> = (0..4).map(|i| first + chrono::Duration::days(i)).collect();
        let old = ours.dir.path().join("old-lake");
        let lake = Self {
            ours,
            old,
            sim,
            days,
        };
        for day in &lake.days[..3] {
            lake.run(&lake.ours.data_dir, *day);
        }
        glue_style_copy(python, &lake.ours.data_dir, &lake.old).await;
        lake
    }

    /// The night of `day` on the lake in `data_dir`.
    fn run(&self, data_dir: &Path, day: NaiveDate) {
        support::run_night(data_dir, &self.ours.pipeline, &self.sim, day);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_glue_lake_continues_incrementally_with_its_types_and_the_same_snapshot() {
    let Some(python) = python() else { return };
    let lake = OldLake::build(&python).await;
    let (ours, old, sim, days) = (&lake.ours, &lake.old, &lake.sim, &lake.days);
    let run = |data_dir: &Path, day: NaiveDate| lake.run(data_dir, day);
    for layer in Layer::ALL {
        assert!(published_dates(old, "appeals", layer).await.is_empty());
    }

    let adopt = |args: &[&str]| {
        let mut all = vec!["adopt"];
        all.extend_from_slice(args);
        support::tascomi(old, &ours.pipeline, sim, &all, &[])
    };
    let (ok, out) = adopt(&["--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("would register 3"), "{out}");
    assert!(
        out.contains(&format!(
            "base import {}",
            common::layout::date_value(days[2])
        )),
        "{out}"
    );
    assert!(out.contains("dry run: 12 partition(s)"), "{out}");
    assert!(
        published_dates(old, "appeals", Layer::Snapshot)
            .await
            .is_empty(),
        "--dry-run registered something"
    );

    let (ok, out) = adopt(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("12 partition(s) registered"), "{out}");
    for layer in Layer::ALL {
        assert_eq!(
            published_dates(old, "appeals", layer).await,
            published_dates(&ours.data_dir, "appeals", layer).await,
            "{layer}"
        );
    }
    let (ok, out) = adopt(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("0 partition(s) registered"), "{out}");
    assert!(out.contains("state kept"), "{out}");
    let types_before = catalog_types(old).await;

    // The fourth night on both lakes: the adopted one asks for days, never the whole table.
    let last = days[3];
    run(&ours.data_dir, last);
    let before = sim.requests().len();
    run(old, last);
    let requests = &sim.requests()[before..];
    assert!(!requests.is_empty());
    let full: Vec<_> = requests
        .iter()
        .filter(|r| r.last_updated.is_none())
        .collect();
    assert!(full.is_empty(), "full-load requests after adopt: {full:?}");

    assert_eq!(catalog_types(old).await, types_before);
    let raw_schema = partition_schema(old, Layer::Raw, last).await;
    for (column, want) in [
        ("import_api_status_code", arrow::datatypes::DataType::Utf8),
        ("page_number", arrow::datatypes::DataType::Int64),
        ("import_timestamp", arrow::datatypes::DataType::Utf8),
    ] {
        assert_eq!(
            raw_schema.field_with_name(column).unwrap().data_type(),
            &want,
            "{column}"
        );
    }
    let adopted = snapshot(old, "appeals", last).await;
    assert_eq!(adopted, snapshot(&ours.data_dir, "appeals", last).await);
    assert_eq!(adopted, expected(sim, "appeals", last));

    // The sign-off of a take-over: `compare` finds the adopted lake's snapshot identical to the
    // one of the lake that ran every night (but for the import's own time and URL), and a
    // different date different.
    let compare = |against: &str| {
        support::tascomi(
            old,
            &ours.pipeline,
            sim,
            &[
                "compare",
                "--date",
                &last.to_string(),
                "--against-data-dir",
                ours.data_dir.to_str().unwrap(),
                "--against-date",
                against,
                "--ignore-columns",
                "import_datetime,import_timestamp,import_api_url_requested",
            ],
            &[],
        )
    };
    let (ok, out) = compare(&last.to_string());
    assert!(ok, "{out}");
    assert!(out.contains("appeals: identical"), "{out}");
    let (ok, out) = compare(&days[2].to_string());
    assert!(!ok, "{out}");
    assert!(out.contains("appeals: DIFFERENCES"), "{out}");
}

/// On a deployment: the old lake's files in S3 (moto), its raw table made by a crawler before
/// the first run (the old types), the other tables absent. `adopt` registers every partition in
/// Glue, keeps the crawler's column types, and writes the derived ingest state to S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_on_a_deployment_registers_in_glue_and_writes_the_state_to_s3() {
    let Some(python) = python() else { return };
    let Some(moto) = MotoPlatform::start().await else {
        return;
    };
    let lake = OldLake::build(&python).await;
    let aws = &moto.platform;
    let local = Platform::local(&lake.old);
    for (from, to) in [
        (&local.layout.raw_bucket, &aws.layout.raw_bucket),
        (&local.layout.refined_bucket, &aws.layout.refined_bucket),
    ] {
        for object in local.storage.list(from, "").await.unwrap() {
            let body = local.storage.get(from, &object.key).await.unwrap();
            aws.storage.put(to, &object.key, body).await.unwrap();
        }
    }
    let table = TableName::new("appeals").unwrap();
    let raw_database = aws.layout.database(Layer::Raw.zone());
    let raw_table = Layer::Raw.catalog_table(&table);
    let crawled: Vec<Column> = [
        ("page_number", "bigint"),
        ("import_api_url_requested", "string"),
        ("import_api_status_code", "string"),
        ("import_exception_thrown", "string"),
        ("appeals", "string"),
        ("import_datetime", "timestamp"),
        ("import_timestamp", "string"),
    ]
    .into_iter()
    .map(|(name, hive_type)| Column {
        name: name.into(),
        hive_type: hive_type.into(),
    })
    .collect();
    aws.catalog.ensure_database(&raw_database).await.unwrap();
    aws.catalog
        .ensure_table(&TableDef {
            database: raw_database.clone(),
            name: raw_table.clone(),
            location: aws.layout.table_location(&table, Layer::Raw),
            columns: crawled.clone(),
            partition_keys: Layer::Raw.partition_keys().map(String::from).to_vec(),
        })
        .await
        .unwrap();

    // `tascomi ARGS` on the deployment the environment names.
    let tascomi = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tascomi"))
            .args(args)
            .arg("--pipeline")
            .arg(&lake.ours.pipeline)
            .env("TASCOMI_RAW_BUCKET", &aws.layout.raw_bucket)
            .env("TASCOMI_REFINED_BUCKET", &aws.layout.refined_bucket)
            .env("TASCOMI_DATABASE_PREFIX", &aws.layout.database_prefix)
            .env_remove("TASCOMI_PIPELINE_FILE")
            .env_remove("TASCOMI_COLUMN_TYPE_DICTIONARY")
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), out)
    };
    let (ok, out) = tascomi(&["adopt"]);
    assert!(ok, "{out}");
    assert!(out.contains("12 partition(s) registered"), "{out}");
    for layer in Layer::ALL {
        let partitions = aws
            .catalog
            .list_partitions(
                &aws.layout.database(layer.zone()),
                &layer.catalog_table(&table),
            )
            .await
            .unwrap();
        assert_eq!(partitions.len(), 3, "{layer}");
    }
    let def = aws
        .catalog
        .table(&raw_database, &raw_table)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(def.columns, crawled, "the crawler's types are kept");
    let state = ingest_svc::state::load(&aws.storage, &aws.layout.raw_bucket, &table)
        .await
        .unwrap();
    assert_eq!(
        state.latest().map(|i| i.import_date),
        Some(lake.days[2]),
        "the base is the last import that answered 200"
    );

    // `compare` on the deployment reads the adopted Spark files (INT96, snappy) through Glue and
    // S3: the night before differs.
    let (third, second) = (lake.days[2].to_string(), lake.days[1].to_string());
    let (ok, out) = tascomi(&[
        "compare",
        "--table",
        "appeals",
        "--date",
        &third,
        "--against-date",
        &second,
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("appeals: DIFFERENCES"), "{out}");
}

/// Every catalog column type of appeals, per layer.
async fn catalog_types(data_dir: &Path) -> Vec<(Layer, String, String)> {
    let platform = Platform::local(data_dir);
    let table = TableName::new("appeals").unwrap();
    let mut out = Vec::new();
    for layer in Layer::ALL {
        let def = platform
            .catalog
            .table(
                &platform.layout.database(layer.zone()),
                &layer.catalog_table(&table),
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no {layer} table"));
        out.extend(
            def.columns
                .into_iter()
                .map(|c| (layer, c.name, c.hive_type)),
        );
    }
    out
}

/// The schema of the first file of a published partition.
async fn partition_schema(
    data_dir: &Path,
    layer: Layer,
    date: NaiveDate,
) -> arrow::datatypes::SchemaRef {
    let platform = Platform::local(data_dir);
    let table = TableName::new("appeals").unwrap();
    let partition = platform.layout.partition(&table, layer, date);
    let files = common::source::published_files(&platform, &partition)
        .await
        .unwrap()
        .unwrap();
    let (schema, _) = common::parquet_io::read_file(
        platform.storage.clone(),
        &files.bucket,
        &files.files[0].key,
        1,
    )
    .await
    .unwrap();
    schema
}

/// Writes every published partition of `from` into `to` as Spark on Glue would have.
async fn glue_style_copy(python: &str, from: &Path, to: &Path) {
    let platform = Platform::local(from);
    let table = TableName::new("appeals").unwrap();
    let mut jobs = Vec::new();
    for layer in Layer::ALL {
        let any = platform.layout.partition(&table, layer, NaiveDate::MIN);
        for (date, _) in published_partitions(platform.catalog.as_ref(), &any)
            .await
            .unwrap()
        {
            let partition = platform.layout.partition(&table, layer, date);
            let files = common::source::published_files(&platform, &partition)
                .await
                .unwrap()
                .unwrap();
            let inputs: Vec<String> = files
                .files
                .iter()
                .map(|f| path_str(&from.join(&files.bucket).join(&f.key)))
                .collect();
            let folder = to.join(&partition.bucket).join(partition.key_prefix());
            jobs.push(json!({"folder": path_str(&folder), "inputs": inputs}));
        }
    }
    assert_eq!(jobs.len(), 12, "3 nights × 4 layers");
    let out = std::process::Command::new(python)
        .args(["-c", SPARK_WRITE])
        .arg(serde_json::to_string(&jobs).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// For each job, reads the input files and writes them into the folder as one file as Spark
/// does: INT96 timestamps, snappy, no Arrow schema, `page_number` bigint, the status code a
/// string, floats double; and an empty `_SUCCESS`.
const SPARK_WRITE: &str = r#"
import json, os, sys, pyarrow as pa, pyarrow.parquet as pq
for job in json.loads(sys.argv[1]):
    t = pa.concat_tables([pq.ParquetFile(f).read() for f in job["inputs"]])
    columns = {}
    for field in t.schema:
        c = t.column(field.name)
        if pa.types.is_float32(field.type):
            c = c.cast(pa.float64())
        if field.name == "page_number":
            c = c.cast(pa.int64())
        if field.name == "import_api_status_code":
            c = c.cast(pa.string())
        columns[field.name] = c
    os.makedirs(job["folder"], exist_ok=True)
    pq.write_table(pa.table(columns), os.path.join(job["folder"], "part-00000-c000.snappy.parquet"),
                   use_deprecated_int96_timestamps=True, compression="snappy", store_schema=False)
    open(os.path.join(job["folder"], "_SUCCESS"), "w").close()
"#;
