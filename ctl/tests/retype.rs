//! `tascomi retype` on the embedded default: nights run (through the real binary) with a
//! dictionary that leaves a column as text, the dictionary corrected to type it, then the plan
//! (nothing changed) and its execution, read back from the published Parquet and the catalog.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::DataType;
use chrono::NaiveDate;
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::published_partitions;
use common::storage::{LocalStorage, Storage, split_s3_uri};
use ctl::local::{LocalOptions, LocalPipeline};
use ctl::retype::{self, Retype};
use ctl::target::Target;
use tascomi_sim::{SimApi, SimConfig};

/// What the simulated API serves: `appeal_count` holds whole numbers.
const SERVED: &str = r#"[{"integer": {"appeals": ["id", "appeal_count"]},
  "timestamp": {"appeals": ["last_updated"]}, "float": {"appeals": ["area"]}}]"#;
/// The dictionary before the correction: `appeal_count` is not listed, so it stays text.
const BEFORE: &str = r#"[{"integer": {"appeals": ["id"]},
  "timestamp": {"appeals": ["last_updated"]}, "float": {"appeals": ["area"]}}]"#;
/// `float` and `double` are both written as a 64-bit double: no difference to retype.
const DOUBLE: &str = r#"[{"integer": {"appeals": ["id", "appeal_count"]},
  "timestamp": {"appeals": ["last_updated"]}, "double": {"appeals": ["area"]}}]"#;

struct Lake {
    _dir: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    pipeline: std::path::PathBuf,
    dictionary: std::path::PathBuf,
    sim: tascomi_sim::SimHandle,
    first: NaiveDate,
}

impl Lake {
    /// `nights` local nights of `appeals` with `dictionary`.
    async fn run(nights: i64, dictionary: &str) -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let pipeline = dir.path().join("pipeline.yaml");
        let dictionary_path = dir.path().join("column-type-dictionary.json");
        std::fs::write(&dictionary_path, dictionary).unwrap();
        std::fs::write(
            &pipeline,
            format!(
                "column_type_dictionary: {}\ntables:\n  appeals: daily\n",
                dictionary_path.display()
            ),
        )
        .unwrap();
        let config = SimConfig {
            dictionary: ColumnTypes::parse(SERVED, "served").unwrap(),
            ..SimConfig::default()
        };
        let first = config.history.start + chrono::Duration::days(5);
        let sim = SimApi::start(config).await.unwrap();
        for n in 0..nights {
            let day = first + chrono::Duration::days(n);
            support::run_night(&data_dir, &pipeline, &sim, day);
        }
        Lake {
            _dir: dir,
            data_dir,
            pipeline,
            dictionary: dictionary_path,
            sim,
            first,
        }
    }

    /// The embedded default on the lake, with the dictionary file as it is now (as the stages
    /// of `tascomi retype --local` run).
    async fn target(&self) -> Target {
        let pipeline = PipelineFile::load(&self.pipeline).unwrap();
        let dictionary = ColumnTypes::load(&self.dictionary).unwrap();
        let local = LocalPipeline::build(LocalOptions {
            data_dir: self.data_dir.clone(),
            pipeline,
            dictionary,
            api: None,
        })
        .await
        .unwrap();
        Target::Local(Box::new(local))
    }

    async fn plan(&self) -> Retype {
        let dictionary = ColumnTypes::load(&self.dictionary).unwrap();
        let target = self.target().await;
        retype::plan(&target, &appeals(), &dictionary, None)
            .await
            .unwrap()
    }

    /// The catalog's type of `column` in the table of `layer`.
    async fn catalog_type(&self, layer: Layer, column: &str) -> String {
        let platform = Platform::local(&self.data_dir);
        let any = platform.layout.partition(&appeals(), layer, self.first);
        let def = platform
            .catalog
            .table(&any.database, &any.catalog_table)
            .await
            .unwrap()
            .unwrap();
        def.columns
            .into_iter()
            .find(|c| c.name == column)
            .unwrap()
            .hive_type
    }

    /// Per published partition of `layer`: its rows and the types `column` has in its files,
    /// read from the Parquet.
    async fn published(
        &self,
        layer: Layer,
        column: &str,
    ) -> BTreeMap<NaiveDate, (usize, Vec<DataType>)> {
        let platform = Platform::local(&self.data_dir);
        let any = platform.layout.partition(&appeals(), layer, self.first);
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(&self.data_dir));
        let mut out = BTreeMap::new();
        for (date, info) in published_partitions(platform.catalog.as_ref(), &any)
            .await
            .unwrap()
        {
            let (bucket, prefix) = split_s3_uri(&info.location).unwrap();
            let (mut rows, mut types) = (0, Vec::new());
            for object in storage.list(bucket, prefix).await.unwrap() {
                for batch in read_all(storage.clone(), bucket, &object.key)
                    .await
                    .unwrap()
                {
                    rows += batch.num_rows();
                    let field = batch.schema().field_with_name(column).unwrap().clone();
                    if !types.contains(field.data_type()) {
                        types.push(field.data_type().clone());
                    }
                }
            }
            out.insert(date, (rows, types));
        }
        out
    }

    /// The catalog's files, as they are: what must not change without `--yes`.
    fn catalog_files(&self) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<std::path::PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.data_dir, &mut out);
        out
    }
}

fn appeals() -> TableName {
    TableName::new("appeals").unwrap()
}

/// Rows per date, and the one type every file gives the column.
fn typed(
    published: &BTreeMap<NaiveDate, (usize, Vec<DataType>)>,
) -> (BTreeMap<NaiveDate, usize>, Vec<DataType>) {
    let mut types: Vec<DataType> = Vec::new();
    let rows = published
        .iter()
        .map(|(date, (rows, t))| {
            for t in t {
                if !types.contains(t) {
                    types.push(t.clone());
                }
            }
            (*date, *rows)
        })
        .collect();
    (rows, types)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_typed_by_a_corrected_dictionary_is_rebuilt_with_its_new_type() {
    let lake = Lake::run(3, BEFORE).await;
    let (increments, types) = typed(&lake.published(Layer::Increment, "appeal_count").await);
    assert_eq!(types, [DataType::Utf8]);
    assert_eq!(increments.len(), 3);
    let (snapshots, types) = typed(&lake.published(Layer::Snapshot, "appeal_count").await);
    assert_eq!(types, [DataType::Utf8]);
    assert_eq!(snapshots.len(), 3);
    assert_eq!(
        lake.catalog_type(Layer::Increment, "appeal_count").await,
        "string"
    );

    // The correction: `appeal_count` is an integer.
    std::fs::write(&lake.dictionary, SERVED).unwrap();
    let before = lake.catalog_files();
    let Retype::Rebuild(plan) = lake.plan().await else {
        panic!("the corrected column must be retyped");
    };
    let text = plan.describe();
    for table in ["increment_appeals (increment)", "appeals (snapshot)"] {
        assert!(
            text.contains(&format!("set the column types of {table}")),
            "{text}"
        );
    }
    assert_eq!(
        text.matches("  appeal_count: string → int\n").count(),
        2,
        "{text}"
    );
    // Nothing else differs: `area` (float) and `id` already have their types.
    assert_eq!(text.matches(" → ").count(), 2, "{text}");
    // Every increment and snapshot is removed and rebuilt from the first parsed partition, each
    // under its date.
    assert_eq!(plan.remove.len(), 6, "{text}");
    assert_eq!(plan.replay.len(), 3, "{text}");
    let first = date(lake.first);
    assert!(
        text.contains(&format!(
            "replay appeals parsed {first} to recast (as of {first})"
        )),
        "{text}"
    );
    assert!(!text.contains("note:"), "{text}");
    // Planning changes nothing (without --yes nothing else runs).
    assert_eq!(lake.catalog_files(), before);

    let target = lake.target().await;
    plan.execute(&target).await.unwrap();
    assert!(
        target
            .local()
            .unwrap()
            .dead_letters(ctl::stage::Stage::Snapshot)
            .is_empty()
            && target
                .local()
                .unwrap()
                .dead_letters(ctl::stage::Stage::Recast)
                .is_empty(),
        "a rebuilt partition was dead-lettered"
    );

    let (rebuilt, types) = typed(&lake.published(Layer::Increment, "appeal_count").await);
    assert_eq!(types, [DataType::Int32]);
    assert_eq!(rebuilt, increments, "increment rows per date");
    let (rebuilt, types) = typed(&lake.published(Layer::Snapshot, "appeal_count").await);
    assert_eq!(types, [DataType::Int32]);
    assert_eq!(rebuilt, snapshots, "snapshot rows per date");
    for layer in [Layer::Increment, Layer::Snapshot] {
        assert_eq!(
            lake.catalog_type(layer, "appeal_count").await,
            "int",
            "{layer}"
        );
    }
    // The snapshots still hold what the API holds.
    let last = lake.first + chrono::Duration::days(2);
    assert_eq!(
        support::snapshot(&lake.data_dir, "appeals", last).await,
        support::expected(&lake.sim, "appeals", last)
    );

    // Done: a second retype finds nothing to do.
    let Retype::Agrees(text) = lake.plan().await else {
        panic!("a retype after a retype must find nothing");
    };
    assert!(
        text.contains("nothing to retype") && !text.contains("note:"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retype_without_a_difference_changes_nothing() {
    let lake = Lake::run(2, SERVED).await;
    let before = lake.catalog_files();
    // `float` to `double` writes the same 64-bit doubles: nothing to retype.
    std::fs::write(&lake.dictionary, DOUBLE).unwrap();
    let Retype::Agrees(text) = lake.plan().await else {
        panic!("float to double must not be a retype");
    };
    assert_eq!(
        text,
        "appeals: the column types of its increment and snapshot tables in the catalog are what the column-type dictionary says: nothing to retype"
    );
    assert_eq!(lake.catalog_files(), before);

    // A difference, but the first night's increment and snapshot have no parsed partition any
    // more: refused, naming them, rather than losing them.
    std::fs::write(&lake.dictionary, BEFORE).unwrap();
    support::unpublish(&lake.data_dir, "appeals", Layer::Parsed, lake.first).await;
    let dictionary = ColumnTypes::load(&lake.dictionary).unwrap();
    let err = retype::plan(&lake.target().await, &appeals(), &dictionary, None)
        .await
        .unwrap_err()
        .to_string();
    let first = date(lake.first);
    assert!(
        err.contains(&format!("increment {first}, snapshot {first} predate")),
        "{err}"
    );
}

fn date(d: NaiveDate) -> String {
    common::layout::date_value(d)
}
