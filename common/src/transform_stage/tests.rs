//! The flow's contract, with a stage of the simplest kind: its own part copies the input's
//! `id` column and upper-cases it (or fails when told to).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{AsArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;

use super::*;
use crate::publish::published_partitions;
use crate::quality::CheckResult;
use crate::runner::Failure;
use crate::source::SourceError;

/// Parsed → increment: `id` upper-cased; fails writing its second batch when `fail` is set.
#[derive(Debug, Default)]
struct Upper {
    fail: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
enum UpperError {
    #[error("told to fail")]
    Told,
    #[error(transparent)]
    Transform(#[from] TransformError),
}

impl Transience for UpperError {
    fn is_transient(&self) -> bool {
        match self {
            UpperError::Told => false,
            UpperError::Transform(err) => err.is_transient(),
        }
    }
}

#[async_trait]
impl Transform for Upper {
    const STAGE: &'static str = "upper";
    const READS: Layer = Layer::Parsed;
    const WRITES: Layer = Layer::Increment;
    type Error = UpperError;
    type Plan = ();
    type Summary = usize;

    async fn plan(
        &self,
        _: &Job<'_>,
        input: &mut PartitionReader<'_>,
    ) -> Result<(SchemaRef, ()), UpperError> {
        input.require_same_columns();
        let schema = input.first_schema().await.map_err(TransformError::from)?;
        Ok((schema.unwrap_or_else(schema_of_ids), ()))
    }

    async fn write(
        &self,
        _: &Job<'_>,
        _: (),
        input: &mut PartitionReader<'_>,
        output: &mut Output,
    ) -> Result<usize, UpperError> {
        let mut batches = 0;
        while let Some((_, batch)) = input.next_batch().await.map_err(TransformError::from)? {
            if batches == 1 && self.fail.load(Ordering::SeqCst) {
                return Err(UpperError::Told);
            }
            let ids: StringArray = batch
                .column(0)
                .as_string::<i32>()
                .iter()
                .map(|id| id.map(str::to_uppercase))
                .collect();
            let upper = RecordBatch::try_new(output.schema().clone(), vec![Arc::new(ids)])
                .expect("one text column");
            output.write(&upper).await?;
            batches += 1;
        }
        Ok(batches)
    }

    fn report(&self, _: &Job<'_>, batches: &usize, report: &mut QualityReport) {
        report.checks.push(CheckResult {
            check: "batches".into(),
            passed: true,
            value: *batches as f64,
            threshold: 0.0,
            examples: Vec::new(),
        });
    }

    fn parameters(&self, batches: &usize) -> Vec<(String, String)> {
        vec![("batches".into(), batches.to_string())]
    }

    fn log_published(&self, _: &Job<'_>, _: &Transformed<usize>) {}
}

fn schema_of_ids() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]))
}

struct Fixture {
    _dir: tempfile::TempDir,
    platform: Platform,
    stage: TransformStage<Upper>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    let pipeline = PipelineFile::parse("tables:\n  appeals: daily\n", "pipeline.yaml").unwrap();
    let stage = TransformStage::new(platform.clone(), pipeline, 2, Upper::default());
    Fixture {
        _dir: dir,
        platform,
        stage,
    }
}

fn partition(f: &Fixture, layer: Layer) -> PartitionRef {
    let table = TableName::new("appeals").unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    f.platform.layout.partition(&table, layer, date)
}

/// Publishes the parsed partition with these ids; returns its message.
async fn publish_input(f: &Fixture, ids: &[Option<&str>]) -> PartitionReady {
    let input = partition(f, Layer::Parsed);
    let run_id = new_run_id();
    let mut writer = PartitionWriter::new(
        f.platform.storage.clone(),
        input.clone(),
        run_id.clone(),
        schema_of_ids(),
        f.platform.write_options,
    );
    let ids: StringArray = ids.iter().copied().collect();
    let batch = RecordBatch::try_new(schema_of_ids(), vec![Arc::new(ids)]).unwrap();
    writer.write(&batch).await.unwrap();
    let published = writer
        .finish()
        .await
        .unwrap()
        .publish(
            f.platform.catalog.as_ref(),
            &f.platform.layout,
            BTreeMap::new(),
            f.platform.orphan_grace,
        )
        .await
        .unwrap();
    PartitionReady::new(&input, published.location, run_id, None)
}

async fn output_keys(f: &Fixture) -> Vec<String> {
    let output = partition(f, Layer::Increment);
    let prefix = output.key_prefix();
    let objects = f.platform.storage.list(&output.bucket, &prefix).await;
    objects.unwrap().into_iter().map(|o| o.key).collect()
}

#[tokio::test]
async fn the_output_is_published_with_the_flows_and_the_stages_parameters_and_checks() {
    let f = fixture();
    let mut message = publish_input(&f, &[Some("a1"), Some("b2"), Some("c3")]).await;
    message.as_of = NaiveDate::from_ymd_opt(2026, 11, 22);
    let done = f.stage.run(&message).await.unwrap();
    assert_eq!(done.summary, 2, "three rows in batches of two");
    assert_eq!(done.published.rows, 3);
    assert!(done.input_bytes > 0);
    assert_eq!(done.next.layer, Layer::Increment);
    assert_eq!(done.next.location, done.published.location);
    assert_eq!(done.next.as_of, message.as_of, "as_of is passed on");
    assert!(done.report.passed());
    assert_eq!(done.report.stage, "upper");
    let checks: Vec<&str> = done
        .report
        .checks
        .iter()
        .map(|c| c.check.as_str())
        .collect();
    assert_eq!(checks.last(), Some(&"batches"), "{checks:?}");

    let output = partition(&f, Layer::Increment);
    let found = published_partitions(f.platform.catalog.as_ref(), &output);
    let (_, info) = found.await.unwrap().pop().unwrap();
    assert_eq!(info.parameters["stage"], "upper");
    assert_eq!(info.parameters["source_location"], message.location);
    assert_eq!(info.parameters["source_run_id"], message.run_id);
    assert_eq!(info.parameters["batches"], "2");

    let source = published_files(&f.platform, &output)
        .await
        .unwrap()
        .unwrap();
    let mut reader = PartitionReader::new(f.platform.storage.clone(), &output, &source, 10);
    let (_, batch) = reader.next_batch().await.unwrap().unwrap();
    let ids: Vec<_> = batch.column(0).as_string::<i32>().iter().collect();
    assert_eq!(ids, [Some("A1"), Some("B2"), Some("C3")]);

    let again = f.stage.run(&message).await.unwrap();
    assert_eq!(
        again.published.replaced.as_deref(),
        Some(done.published.location.as_str()),
        "the same message again replaces the partition"
    );
}

#[tokio::test]
async fn a_message_for_another_layer_or_an_unpublished_partition_is_permanent() {
    let f = fixture();
    let mut message = publish_input(&f, &[Some("a1")]).await;
    message.layer = Layer::Raw;
    let err = f.stage.run(&message).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "upper-svc reads parsed partitions, but the message names the raw layer of appeals"
    );
    assert!(matches!(err.into_failure(), Failure::Permanent(_)));

    message.layer = Layer::Parsed;
    message.partition.insert("import_day".into(), "22".into());
    message
        .partition
        .insert("import_date".into(), "20261122".into());
    let err = f.stage.run(&message).await.unwrap_err();
    assert!(
        matches!(
            err,
            UpperError::Transform(TransformError::NotPublished { .. })
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(f.stage.is_known_table(&message.table));
}

#[tokio::test]
async fn a_failed_gate_records_its_results_and_discards_the_run() {
    let f = fixture();
    let good = publish_input(&f, &[Some("a1")]).await;
    let published = f.stage.run(&good).await.unwrap().published;

    let bad = publish_input(&f, &[Some("a1"), None]).await;
    let err = f.stage.run(&bad).await.unwrap_err();
    assert!(
        err.to_string().starts_with(
            "appeals increment import_date=20261121: data-quality gate failed, nothing published: missing_id = 1"
        ),
        "{err}"
    );
    assert!(matches!(err.into_failure(), Failure::Permanent(_)));
    let keys = output_keys(&f).await;
    assert!(
        keys.iter().all(|k| k.contains(&published.run_id)),
        "only the last good run's files: {keys:?}"
    );
    let recorded = f
        .platform
        .storage
        .list(
            &f.platform.layout.refined_bucket,
            &format!("{}upper/appeals/", f.platform.metrics_prefix),
        )
        .await
        .unwrap();
    assert_eq!(recorded.len(), 2, "both runs recorded their results");
}

#[tokio::test]
async fn a_failure_while_writing_removes_what_was_written() {
    let f = fixture();
    f.stage.part().fail.store(true, Ordering::SeqCst);
    let message = publish_input(&f, &[Some("a1"), Some("b2"), Some("c3")]).await;
    let err = f.stage.run(&message).await.unwrap_err();
    assert!(matches!(err, UpperError::Told), "{err:?}");
    assert!(output_keys(&f).await.is_empty());
    let output = partition(&f, Layer::Increment);
    assert!(
        published_files(&f.platform, &output)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_input_file_that_is_not_parquet_is_a_read_error_and_nothing_is_published() {
    let f = fixture();
    let message = publish_input(&f, &[Some("a1")]).await;
    let input = partition(&f, Layer::Parsed);
    let source = published_files(&f.platform, &input).await.unwrap().unwrap();
    let garbage = bytes::Bytes::from_static(b"not parquet");
    let put = f
        .platform
        .storage
        .put(&source.bucket, &source.files[0].key, garbage);
    put.await.unwrap();
    let err = f.stage.run(&message).await.unwrap_err();
    assert!(
        matches!(&err, UpperError::Transform(TransformError::Source(e)) if matches!(**e, SourceError::Read { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("reading appeals parsed import_date=20261121: "),
        "{err}"
    );
    assert!(matches!(err.into_failure(), Failure::Permanent(_)));
    assert!(output_keys(&f).await.is_empty());
}
