//! `tascomi compare` on local lakes that the real pipeline built (two nights against the
//! simulated API): two dates of one lake, the same date in a copy of the lake, and the same
//! date in a Glue-style lake (files rewritten by pyarrow as Spark writes them: INT96
//! timestamps, no Arrow schema in the footer) registered under another database prefix.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Parser;
use common::catalog::{PartitionInfo, TableDef};
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName, date_value, partition_values};
use common::platform::Platform;
use common::publish::published_partitions;
use ctl::compare::{CompareArgs, CompareOutcome};
use ctl::local::{LocalOptions, LocalPipeline};
use ctl::target::Target;
use serde_json::json;
use support::snapshot;
use tascomi_sim::{SimApi, SimConfig};
use tascomi_test_support::python;

const PIPELINE: &str = "\
column_type_dictionary: DICTIONARY
tables:
  applications: { schedule: daily, completeness_column: application_reference_number }
  appeals: daily
";

/// `tascomi compare ARGS`, parsed as the command line parses them.
#[derive(Debug, Parser)]
struct Compare {
    #[command(flatten)]
    args: CompareArgs,
}

async fn local_target(data_dir: &Path, pipeline: &Path) -> Target {
    let pipeline = PipelineFile::load(pipeline).unwrap();
    let dictionary = ColumnTypes::load(&tascomi_sim::production_dictionary_path()).unwrap();
    let local = LocalPipeline::build(LocalOptions {
        data_dir: data_dir.to_owned(),
        pipeline,
        dictionary,
        api: None,
    })
    .await
    .unwrap();
    Target::Local(Box::new(local))
}

async fn compare(target: &Target, args: &[&str]) -> CompareOutcome {
    let parsed = Compare::try_parse_from(std::iter::once("compare").chain(args.iter().copied()))
        .unwrap_or_else(|err| panic!("{args:?}: {err}"));
    ctl::compare::run(parsed.args, target).await.unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_reconciles_two_dates_a_copy_and_a_glue_style_lake() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let pipeline = dir.path().join("pipeline.yaml");
    let dictionary = tascomi_sim::production_dictionary_path();
    std::fs::write(
        &pipeline,
        PIPELINE.replace("DICTIONARY", dictionary.to_str().unwrap()),
    )
    .unwrap();
    let config = SimConfig::with_production_dictionary().unwrap();
    let first = config.history.start + chrono::Duration::days(5);
    let sim = SimApi::start(config).await.unwrap();
    let days = [first, first + chrono::Duration::days(1)];
    for day in days {
        support::run_night(&data_dir, &pipeline, &sim, day);
    }
    let [day1, day2] = days;
    let target = local_target(&data_dir, &pipeline).await;

    // Two dates of one lake: what changed from the first night to the second, as the
    // snapshots' own rows say.
    let (new, old) = (
        snapshot(&data_dir, "appeals", day2).await,
        snapshot(&data_dir, "appeals", day1).await,
    );
    let only_new: Vec<i64> = new
        .keys()
        .filter(|id| !old.contains_key(id))
        .copied()
        .collect();
    let updated = new
        .iter()
        .filter(|(id, v)| old.get(id).is_some_and(|o| o != *v))
        .count() as u64;
    assert!(
        !only_new.is_empty() && updated > 0,
        "the simulated API changed nothing"
    );
    let d2 = date_value(day2);
    let outcome = compare(
        &target,
        &[
            "--table",
            "appeals",
            "--date",
            &d2,
            "--against-date",
            &date_value(day1),
        ],
    )
    .await;
    assert_eq!(outcome.exit_code(), ExitCode::FAILURE);
    let appeals = &outcome.tables[0];
    assert_eq!(
        (appeals.left.rows, appeals.right.rows),
        (new.len() as u64, old.len() as u64)
    );
    assert_eq!(appeals.only_left.count, only_new.len() as u64);
    let smallest: Vec<_> = only_new.iter().take(5).map(|id| json!(id)).collect();
    assert_eq!(appeals.only_left.examples, smallest);
    assert_eq!(appeals.only_right.count, 0);
    let last_updated = appeals
        .value_differences
        .iter()
        .find(|v| v.column == "last_updated")
        .expect("last_updated differs");
    assert_eq!(last_updated.count, updated);
    let text = outcome.render();
    eprintln!("{text}");
    assert!(text.contains("appeals: DIFFERENCES"), "{text}");
    assert!(
        text.contains(&format!("snapshot_date={d2}: {} rows", new.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!("ids only left: {}", only_new.len())),
        "{text}"
    );
    // Without --against-date, the snapshot before --date: the same comparison.
    let default = compare(&target, &["--table", "appeals", "--date", &d2]).await;
    assert_eq!(default.tables, outcome.tables);

    // The same date in a copy of the lake: every table identical, exit 0.
    let copy = dir.path().join("copy");
    copy_dir(&data_dir, &copy);
    let outcome = compare(&target, &["--against-data-dir", copy.to_str().unwrap()]).await;
    let text = outcome.render();
    assert_eq!(outcome.exit_code(), ExitCode::SUCCESS, "{text}");
    assert!(
        text.contains("2 table(s) compared: 2 identical, 0 with differences"),
        "{text}"
    );
    assert!(text.contains("applications: identical"), "{text}");
    let json: serde_json::Value = serde_json::from_str(
        &compare(
            &target,
            &["--against-data-dir", copy.to_str().unwrap(), "--json"],
        )
        .await
        .render(),
    )
    .unwrap();
    assert_eq!(json["identical"], json!(true));
    assert_eq!(json["tables"][1]["table"], json!("appeals"));

    glue_style_lake(&target, &data_dir, day2).await;
}

/// Rewrites the snapshot of `day` of appeals as Spark on Glue would have written it, twice:
/// as is (prefix `glue-same`) and with the smallest id dropped and one value changed (prefix
/// `glue-changed`), each published in the catalog under its own database prefix.
async fn glue_style_lake(target: &Target, data_dir: &Path, day: NaiveDate) {
    let Some(python) = python() else { return };
    let platform = Platform::local(data_dir);
    let table = TableName::new("appeals").unwrap();
    let ours = platform.layout.partition(&table, Layer::Snapshot, day);
    let files = common::source::published_files(&platform, &ours)
        .await
        .unwrap()
        .unwrap();
    let paths: Vec<String> = files
        .files
        .iter()
        .map(|f| {
            let path = data_dir.join(&files.bucket).join(&f.key);
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let mut changed = BTreeMap::new();
    for (prefix, mode) in [("glue-same", "same"), ("glue-changed", "changed")] {
        let mut other = platform.clone();
        other.layout.database_prefix = prefix.into();
        let partition = other.layout.partition(&table, Layer::Snapshot, day);
        let key = format!("{prefix}/{}", partition.key_prefix());
        let folder = data_dir.join(&partition.bucket).join(&key);
        std::fs::create_dir_all(&folder).unwrap();
        let out = std::process::Command::new(&python)
            .args(["-c", SPARK_COPY])
            .arg(folder.join("part-00000-c000.snappy.parquet"))
            .arg(mode)
            .args(&paths)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        changed.insert(mode, String::from_utf8_lossy(&out.stdout).trim().to_owned());
        let catalog = other.catalog.as_ref();
        catalog.ensure_database(&partition.database).await.unwrap();
        let table_def = TableDef {
            database: partition.database.clone(),
            name: partition.catalog_table.clone(),
            location: format!(
                "s3://{}/{prefix}/{}",
                partition.bucket,
                Layer::Snapshot.table_prefix(&table)
            ),
            columns: vec![],
            partition_keys: Layer::Snapshot.partition_keys().map(String::from).to_vec(),
        };
        catalog.ensure_table(&table_def).await.unwrap();
        let info = PartitionInfo {
            values: partition_values(day),
            location: format!("s3://{}/{key}", partition.bucket),
            parameters: BTreeMap::new(),
        };
        catalog
            .publish_partition(&partition.database, &partition.catalog_table, &info)
            .await
            .unwrap();
        let published = published_partitions(catalog, &partition).await.unwrap();
        assert_eq!(published.len(), 1);
    }

    // Re-encoded only (INT96 timestamps, wider numbers): identical once widths are forgiven.
    let outcome = compare(
        target,
        &[
            "--table",
            "appeals",
            "--against-prefix",
            "glue-same",
            "--ignore-widening",
        ],
    )
    .await;
    let text = outcome.render();
    eprintln!("{text}");
    assert_eq!(outcome.exit_code(), ExitCode::SUCCESS, "{text}");
    let appeals = &outcome.tables[0];
    assert!(text.contains("appeals: identical"), "{text}");
    assert!(
        text.contains("glue-same-tascomi-refined-zone.appeals"),
        "{text}"
    );
    // INT96 is read as our microseconds: the same type, equal values.
    assert!(
        appeals
            .type_differences
            .iter()
            .chain(&appeals.encoding_differences)
            .all(|t| t.column != "import_datetime"),
        "{text}"
    );
    // Without --ignore-widening, a width is a difference (if the copy widened anything).
    let strict = compare(
        target,
        &["--table", "appeals", "--against-prefix", "glue-same"],
    )
    .await;
    assert_eq!(strict.identical, appeals.type_differences.is_empty());
    // Every table: applications has no snapshot in that lake, which is a difference.
    let outcome = compare(
        target,
        &["--against-prefix", "glue-same", "--ignore-widening"],
    )
    .await;
    assert_eq!(outcome.exit_code(), ExitCode::FAILURE);
    let applications = outcome
        .tables
        .iter()
        .find(|t| t.table == "applications")
        .unwrap();
    let problem = applications.problem.as_deref().unwrap();
    assert!(
        problem.contains("on the right (glue-same-tascomi-refined-zone.applications"),
        "{problem}"
    );
    assert!(outcome.render().contains("applications: NOT COMPARED"));

    // One id dropped, one value changed: both found, with the ids, in the JSON too.
    let ids: Vec<i64> = changed["changed"]
        .split(' ')
        .map(|i| i.parse().unwrap())
        .collect();
    let outcome = compare(
        target,
        &[
            "--table",
            "appeals",
            "--against-prefix",
            "glue-changed",
            "--ignore-widening",
            "--json",
        ],
    )
    .await;
    assert_eq!(outcome.exit_code(), ExitCode::FAILURE);
    eprintln!("{}", outcome.render());
    let doc: serde_json::Value = serde_json::from_str(&outcome.render()).unwrap();
    let appeals = &doc["tables"][0];
    assert_eq!(doc["identical"], json!(false));
    assert_eq!(
        appeals["only_left"],
        json!({"count": 1, "examples": [ids[0]]})
    );
    assert_eq!(appeals["only_right"]["count"], json!(0));
    assert_eq!(
        appeals["value_differences"],
        json!([{"column": "import_api_url_requested", "count": 1,
                "examples": [{"id": ids[1], "left": appeals["value_differences"][0]["examples"][0]["left"], "right": "changed"}]}])
    );
    assert!(appeals["value_differences"][0]["examples"][0]["left"].is_string());
}

/// Reads our snapshot files (arguments after the output and the mode) and writes them as one
/// file as Spark does: INT96 timestamps, snappy, no Arrow schema, `page_number` bigint and
/// floats double. Mode `changed` drops the smallest id and changes `import_api_url_requested`
/// of the next one, and prints both ids.
const SPARK_COPY: &str = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq, pyarrow.compute as pc
out, mode, *files = sys.argv[1:]
t = pa.concat_tables([pq.ParquetFile(f).read() for f in files])
columns = {}
for field in t.schema:
    c = t.column(field.name)
    if pa.types.is_float32(field.type):
        c = c.cast(pa.float64())
    if field.name == "page_number" and pa.types.is_int32(field.type):
        c = c.cast(pa.int64())
    columns[field.name] = c
t = pa.table(columns)
if mode == "changed":
    first, second = sorted(t.column("id").to_pylist())[:2]
    t = t.filter(pc.not_equal(t.column("id"), first))
    urls = t.column("import_api_url_requested").to_pylist()
    urls[t.column("id").to_pylist().index(second)] = "changed"
    i = t.schema.get_field_index("import_api_url_requested")
    t = t.set_column(i, "import_api_url_requested", pa.array(urls, pa.string()))
    print(first, second)
pq.write_table(t, out, use_deprecated_int96_timestamps=True, compression="snappy",
               store_schema=False)
"#;
