//! The parse stage: config -> build ([`ParseStage::new`]) -> handle one message at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::time::Instant;

use arrow::array::BooleanArray;
use arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use arrow::compute::kernels::boolean::{and, is_not_null};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{cast, filter, filter_record_batch};
use arrow::datatypes::{DataType, Int32Type, SchemaRef};
use async_trait::async_trait;
use common::config::{Env, PipelineFile, TableConfig};
use common::layout::{Layer, PartitionRef, TableName};
use common::messages::PartitionReady;
use common::parquet_io::{ParquetIoError, read_file};
use common::platform::Platform;
use common::publish::{PartitionWriter, Published, new_run_id};
use common::quality::{QualityCheck, QualityReport};
use common::runner::{Failure, Handler};
use common::threads::{on_threads, threads};
use futures::{Stream, TryStreamExt};
use tracing::instrument;

use crate::error::{ParseError, Result};
use crate::explode::{Exploder, FieldCollector, RecordKey};
use crate::locks::PartitionLocks;
use crate::schema::{BOOKKEEPING, PAGE_NUMBER, STATUS_CODE, parsed_schema};
use crate::settings::ParseSettings;
use crate::source::{PublishedFiles, published_files};
use crate::versions::{Chooser, Collapsed, Selection, id_keys};

/// The status of a page whose records are kept.
const OK_STATUS: i32 = 200;

/// The parse stage. Cheap to share: handle messages concurrently through an `Arc`.
#[derive(Debug)]
pub struct ParseStage {
    platform: Platform,
    pipeline: PipelineFile,
    settings: ParseSettings,
    locks: PartitionLocks,
}

/// What a successful parse did.
#[derive(Debug, Clone)]
pub struct ParseOutcome {
    /// The message for recast-svc.
    pub next: PartitionReady,
    pub published: Published,
    /// The data-quality results, as recorded.
    pub report: QualityReport,
    /// Text columns made from record fields (the bookkeeping columns not counted).
    pub field_columns: usize,
    /// Bytes of raw Parquet read per pass.
    pub raw_bytes: u64,
}

impl ParseStage {
    /// A stage on `platform` for the tables of `pipeline` (the operator CLI and tests build it
    /// this way, in process).
    pub fn new(platform: Platform, pipeline: PipelineFile, settings: ParseSettings) -> Self {
        Self {
            platform,
            pipeline,
            settings,
            locks: PartitionLocks::default(),
        }
    }

    /// The service's stage: S3 and Glue, the pipeline file and settings from the environment.
    pub fn from_env(env: &Env, sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let platform = Platform::aws(sdk, env)?;
        let pipeline = common::service::pipeline_from_env(env)?;
        let settings = ParseSettings::from_env(env)?;
        tracing::info!(
            tables = pipeline.tables.len(),
            batch_rows = settings.batch_rows,
            raw_bucket = %platform.layout.raw_bucket,
            database_prefix = %platform.layout.database_prefix,
            "parse stage configured"
        );
        Ok(Self::new(platform, pipeline, settings))
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    fn table_config(&self, table: &TableName) -> TableConfig {
        self.pipeline.table_or_default(table)
    }

    /// Parses the raw partition `message` names and publishes the parsed partition.
    ///
    /// `Ok` means the parsed partition is published (possibly empty: a quiet day) and its
    /// data-quality results recorded. Idempotent: the same message again publishes the same
    /// rows in place of the first run's. On `Err` nothing new is visible; a failed gate has
    /// recorded its results and left the table's last good partition in place.
    #[instrument(skip_all, fields(table = %message.table, import_date = tracing::field::Empty))]
    pub async fn parse(&self, message: &PartitionReady) -> Result<ParseOutcome> {
        if message.layer != Layer::Raw {
            return Err(ParseError::WrongLayer {
                table: message.table.to_string(),
                layer: message.layer,
            });
        }
        let started = Instant::now();
        let layout = &self.platform.layout;
        let raw = message.partition_ref(layout);
        let import_date = common::layout::date_value(raw.date);
        tracing::Span::current().record("import_date", import_date.as_str());
        let parsed = layout.partition(&message.table, Layer::Parsed, raw.date);
        let _held = self.locks.lock(&parsed).await;

        let source = published_files(&self.platform, &raw)
            .await?
            .ok_or_else(|| ParseError::NotPublished {
                partition: raw.describe(),
            })?;
        let mut reader = RawReader::new(&self.platform, &raw, &source, self.settings.batch_rows);
        let (fields, mut selection) = reader.first_pass().await?;
        let records = reader.ordinal;
        let schema = parsed_schema(&fields).map_err(|problem| ParseError::BadField {
            partition: raw.describe(),
            problem,
        })?;

        let run_id = new_run_id();
        let config = self.table_config(&message.table);
        let mut check = QualityCheck::new("id", &config.completeness_column);
        let mut writer = PartitionWriter::new(
            self.platform.storage.clone(),
            parsed.clone(),
            run_id.clone(),
            schema.clone(),
            self.platform.write_options,
        );
        let written = reader
            .explode_into(&fields, &schema, &mut selection, &mut writer, &mut check)
            .await
            .and_then(|()| {
                selection
                    .outcome(records)
                    .map_err(|detail| ParseError::PassesDiffer {
                        partition: raw.describe(),
                        detail,
                    })
            });
        let collapsed = match written {
            Ok(collapsed) => collapsed,
            Err(err) => {
                writer.abandon().await;
                return Err(err);
            }
        };
        let staged = writer.finish().await?;

        let mut report = QualityReport::new("parse", &parsed, &run_id);
        report.rows = check.rows();
        report.checks = check.results();
        report.checks.extend(collapsed.checks());
        report_collapsed(&parsed, &collapsed);
        if let Err(gate) = report.record_and_check(&self.platform, &parsed).await {
            staged.discard_or_warn().await;
            return Err(gate.into());
        }

        let parameters = BTreeMap::from([
            ("stage".to_string(), "parse".to_string()),
            ("source_location".to_string(), source.location.clone()),
            (
                "source_run_id".to_string(),
                source.run_id.clone().unwrap_or_default(),
            ),
        ]);
        let published = staged
            .publish(
                self.platform.catalog.as_ref(),
                layout,
                parameters,
                self.platform.orphan_grace,
            )
            .await?;
        let elapsed = started.elapsed().as_secs_f64();
        tracing::info!(
            partition = %parsed,
            rows = published.rows,
            columns = fields.len(),
            files = published.files,
            raw_bytes = source.bytes(),
            skipped_rows = reader.skipped,
            duplicates_collapsed = collapsed.duplicates,
            superseded_versions_dropped = collapsed.superseded,
            seconds = elapsed,
            rows_per_second = (published.rows as f64 / elapsed.max(1e-9)).round(),
            "parsed partition published"
        );
        Ok(ParseOutcome {
            next: PartitionReady::new(&parsed, published.location.clone(), run_id, message.as_of),
            published,
            report,
            field_columns: fields.len(),
            raw_bytes: source.bytes(),
        })
    }
}

#[async_trait]
impl Handler for ParseStage {
    type Message = PartitionReady;

    fn stage(&self) -> &'static str {
        "parse"
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.pipeline.contains(table)
    }

    async fn handle(&self, message: PartitionReady) -> Result<Vec<PartitionReady>, Failure> {
        match self.parse(&message).await {
            Ok(outcome) => Ok(vec![outcome.next]),
            Err(err) => Err(err.into_failure()),
        }
    }
}

/// The rows of one raw batch worth parsing: status 200 and a record.
struct RawRows {
    records: StringArray,
    pages: Int32Array,
    /// Each row's number within its page, counting from 1 in storage order.
    row_numbers: Vec<u64>,
    /// The first row's number among the pass's kept rows, counting from 0 in storage order (the
    /// same row has the same ordinal in both passes).
    first_ordinal: u64,
    /// The bookkeeping columns of those rows, in [`BOOKKEEPING`] order and types.
    bookkeeping: Vec<ArrayRef>,
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, ParquetIoError>> + Send>>;

/// Reads a raw partition's files batch by batch, in the same order on every pass.
struct RawReader<'a> {
    platform: &'a Platform,
    raw: &'a PartitionRef,
    source: &'a PublishedFiles,
    batch_rows: usize,
    next_file: usize,
    current: Option<(usize, BatchStream)>,
    page_rows: HashMap<Option<i32>, u64>,
    /// Rows with status 200 but no record, seen in this pass.
    skipped: u64,
    /// Rows kept (status 200 and a record) so far in this pass.
    ordinal: u64,
}

impl<'a> RawReader<'a> {
    fn new(
        platform: &'a Platform,
        raw: &'a PartitionRef,
        source: &'a PublishedFiles,
        batch_rows: usize,
    ) -> Self {
        Self {
            platform,
            raw,
            source,
            batch_rows,
            next_file: 0,
            current: None,
            page_rows: HashMap::new(),
            skipped: 0,
            ordinal: 0,
        }
    }

    /// Starts a new pass from the first file.
    fn rewind(&mut self) {
        self.next_file = 0;
        self.current = None;
        self.page_rows.clear();
        self.skipped = 0;
        self.ordinal = 0;
    }

    /// The next batch of kept rows, or `None` at the end of the pass.
    async fn next(&mut self) -> Result<Option<RawRows>> {
        loop {
            if let Some((file, stream)) = &mut self.current {
                let file = *file;
                let batch = stream.try_next().await;
                match batch.map_err(|source| self.read_error(source))? {
                    Some(batch) => return self.select_rows(&batch, file).map(Some),
                    None => self.current = None,
                }
            }
            let Some(file) = self.source.files.get(self.next_file) else {
                return Ok(None);
            };
            let (_, stream) = read_file(
                self.platform.storage.clone(),
                &self.source.bucket,
                &file.key,
                self.batch_rows,
            )
            .await
            .map_err(|source| self.read_error(source))?;
            self.current = Some((self.next_file, Box::pin(stream)));
            self.next_file += 1;
        }
    }

    /// Pass 1: the union of the record fields, and the row kept for each id (see
    /// [`crate::versions`]).
    async fn first_pass(&mut self) -> Result<(BTreeSet<String>, Selection)> {
        self.rewind();
        let mut collectors: Vec<FieldCollector> =
            (0..threads()).map(|_| FieldCollector::default()).collect();
        let mut chooser = Chooser::default();
        while let Some(rows) = self.next().await? {
            let shares = collectors
                .iter_mut()
                .zip(row_shares(rows.records.len(), threads()));
            let results = on_threads(shares.collect(), |(collector, range)| {
                range
                    .into_iter()
                    .map(|i| {
                        collector
                            .add(rows.records.value(i))
                            .map_err(|problem| (i, problem))
                    })
                    .collect::<Result<Vec<RecordKey>, _>>()
            });
            let mut keys = Vec::with_capacity(rows.records.len());
            for result in results {
                keys.extend(result.map_err(|(i, problem)| {
                    bad_record(self.raw, &rows, i, rows.row_numbers[i], problem)
                })?);
            }
            let ids: Vec<Option<&str>> = keys.iter().map(|k| k.id.as_deref()).collect();
            for (i, id) in id_keys(&ids).into_iter().enumerate() {
                let Some(id) = id else { continue };
                let page = rows.pages.is_valid(i).then(|| rows.pages.value(i));
                let ordinal = self.ordinal_of(&rows, i)?;
                chooser.offer(id, keys[i].last_updated.as_deref(), page, ordinal);
            }
        }
        let fields = collectors
            .into_iter()
            .flat_map(FieldCollector::into_fields)
            .collect();
        Ok((fields, chooser.finish()))
    }

    /// The ordinal of row `i` of `rows` (see [`RawRows::first_ordinal`]), which must fit in 32
    /// bits to keep the per-id memory small.
    fn ordinal_of(&self, rows: &RawRows, i: usize) -> Result<u32> {
        u32::try_from(rows.first_ordinal + i as u64).map_err(|_| ParseError::TooManyRecords {
            partition: self.raw.describe(),
        })
    }

    /// Pass 2: explodes every kept row into `schema`'s columns, checking and writing each batch
    /// as soon as it is made.
    ///
    /// Every record is exploded, so every record is checked, but only the rows `selection`
    /// keeps are written (one per id).
    async fn explode_into(
        &mut self,
        fields: &BTreeSet<String>,
        schema: &SchemaRef,
        selection: &mut Selection,
        writer: &mut PartitionWriter,
        check: &mut QualityCheck,
    ) -> Result<()> {
        self.rewind();
        let mut exploders: Vec<Exploder> = (0..threads())
            .map(|_| Exploder::new(fields.iter().cloned()))
            .collect();
        while let Some(rows) = self.next().await? {
            let keep = (0..rows.records.len())
                .map(|i| Ok(selection.keep(self.ordinal_of(&rows, i)?, rows.records.value(i))))
                .collect::<Result<Vec<bool>>>()?;
            // Each share of the batch's rows is exploded on its own thread, then written in
            // row order.
            let shares = exploders
                .iter_mut()
                .zip(row_shares(rows.records.len(), threads()));
            let results = on_threads(shares.collect(), |(exploder, range)| {
                for i in range.clone() {
                    exploder
                        .push(rows.records.value(i))
                        .map_err(|problem| (i, problem))?;
                }
                Ok((range, exploder.finish()))
            });
            for result in results {
                let (range, mut columns) = result.map_err(|(i, problem)| {
                    bad_record(self.raw, &rows, i, rows.row_numbers[i], problem)
                })?;
                columns.extend(
                    rows.bookkeeping
                        .iter()
                        .map(|c| c.slice(range.start, range.len())),
                );
                let arrow_error = |source| ParseError::Arrow {
                    partition: self.raw.describe(),
                    source,
                };
                let mut batch =
                    RecordBatch::try_new(schema.clone(), columns).map_err(arrow_error)?;
                let kept = &keep[range];
                if kept.contains(&false) {
                    let mask = BooleanArray::from(kept.to_vec());
                    batch = filter_record_batch(&batch, &mask).map_err(arrow_error)?;
                }
                check.add(&batch);
                writer.write(&batch).await?;
            }
        }
        Ok(())
    }

    fn read_error(&self, source: common::parquet_io::ParquetIoError) -> ParseError {
        ParseError::Read {
            partition: self.raw.describe(),
            source,
        }
    }

    /// The rows of `batch` with status 200 and a record, with their columns in the types the
    /// parsed layer writes.
    fn select_rows(&mut self, batch: &RecordBatch, file: usize) -> Result<RawRows> {
        let file = format!(
            "s3://{}/{}",
            self.source.bucket, self.source.files[file].key
        );
        let column = |name: &str, expected: &DataType| -> Result<ArrayRef> {
            let found = batch
                .column_by_name(name)
                .ok_or_else(|| ParseError::MissingColumn {
                    partition: self.raw.describe(),
                    file: file.clone(),
                    column: name.to_owned(),
                })?;
            if found.data_type() == expected {
                return Ok(found.clone());
            }
            cast(found, expected).map_err(|source| ParseError::ColumnType {
                partition: self.raw.describe(),
                file: file.clone(),
                column: name.to_owned(),
                expected: expected.to_string(),
                source: Box::new(source),
            })
        };
        let arrow_error = |source| ParseError::Arrow {
            partition: self.raw.describe(),
            source,
        };
        let records = column(self.raw.table.as_str(), &DataType::Utf8)?;
        let bookkeeping = BOOKKEEPING
            .iter()
            .map(|(name, t)| column(name, &t.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let status = column(STATUS_CODE, &DataType::Int32)?;
        let ok = eq(&status, &Int32Array::new_scalar(OK_STATUS)).map_err(arrow_error)?;
        let keep = and(&ok, &is_not_null(&records).map_err(arrow_error)?).map_err(arrow_error)?;
        self.skipped += (ok.true_count() - keep.true_count()) as u64;
        let records = filter(&records, &keep).map_err(arrow_error)?;
        let bookkeeping = bookkeeping
            .iter()
            .map(|c| filter(c, &keep))
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_error)?;
        let page_index = BOOKKEEPING
            .iter()
            .position(|(name, _)| *name == PAGE_NUMBER)
            .unwrap_or_default();
        let pages = bookkeeping[page_index].as_primitive::<Int32Type>().clone();
        let row_numbers = (0..pages.len())
            .map(|i| {
                let count = self
                    .page_rows
                    .entry(pages.is_valid(i).then(|| pages.value(i)))
                    .or_default();
                *count += 1;
                *count
            })
            .collect();
        let first_ordinal = self.ordinal;
        self.ordinal += pages.len() as u64;
        Ok(RawRows {
            records: records.as_string::<i32>().clone(),
            pages,
            row_numbers,
            first_ordinal,
            bookkeeping,
        })
    }
}

/// Logs and emits (as metrics) what the partition's duplicate rows came to: the counts are in
/// the data-quality report too.
fn report_collapsed(parsed: &PartitionRef, collapsed: &Collapsed) {
    if collapsed.duplicates > 0 || collapsed.superseded > 0 {
        tracing::info!(
            partition = %parsed,
            duplicates_collapsed = collapsed.duplicates,
            duplicate_examples = ?collapsed.duplicate_examples,
            superseded_versions_dropped = collapsed.superseded,
            superseded_examples = ?collapsed.superseded_examples,
            "one row kept per id"
        );
    }
    common::metrics::emit(
        "parse",
        parsed.table.as_str(),
        &[
            ("DuplicateRecordsCollapsed", collapsed.duplicates),
            ("SupersededVersionsDropped", collapsed.superseded),
        ],
    );
}

/// `rows` rows cut into at most `shares` contiguous ranges of similar size, in order.
fn row_shares(rows: usize, shares: usize) -> Vec<std::ops::Range<usize>> {
    let size = rows.div_ceil(shares.max(1)).max(1);
    (0..rows)
        .step_by(size)
        .map(|start| start..(start + size).min(rows))
        .collect()
}

fn bad_record(
    raw: &PartitionRef,
    rows: &RawRows,
    index: usize,
    row: u64,
    problem: crate::explode::RecordError,
) -> ParseError {
    let page = if rows.pages.is_valid(index) {
        rows.pages.value(index).to_string()
    } else {
        "(none)".to_owned()
    };
    ParseError::BadRecord {
        partition: raw.describe(),
        page,
        row,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_shares_cover_every_row_once_in_order() {
        assert_eq!(row_shares(10, 2), vec![0..5, 5..10]);
        assert_eq!(row_shares(5, 2), vec![0..3, 3..5]);
        assert_eq!(row_shares(1, 4), vec![0..1]);
        assert!(row_shares(0, 2).is_empty());
        assert_eq!(row_shares(7, 0), vec![0..7]);
    }
    use crate::testing::{RawPage, publish_raw, read_published};
    use arrow::array::Array;
    use arrow::compute::concat_batches;
    use chrono::NaiveDate;

    struct Fixture {
        _dir: tempfile::TempDir,
        platform: Platform,
        stage: ParseStage,
    }

    const PIPELINE: &str = "\
tables:
  appeals: daily
  applications: { schedule: daily, completeness_column: application_reference_number }
";

    fn fixture_with(settings: ParseSettings) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let pipeline = PipelineFile::parse(PIPELINE, "pipeline.yaml").unwrap();
        let stage = ParseStage::new(platform.clone(), pipeline, settings);
        Fixture {
            _dir: dir,
            platform,
            stage,
        }
    }

    fn fixture() -> Fixture {
        fixture_with(ParseSettings::default())
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    fn table(name: &str) -> TableName {
        TableName::new(name).unwrap()
    }

    fn appeal(id: u32) -> String {
        format!(
            r#"{{"id":"{id}","last_updated":"2026-11-20 10:00:00","reference":"A/{id}","ward":null}}"#
        )
    }

    async fn parsed_rows(f: &Fixture, table_name: &str) -> Option<RecordBatch> {
        let partition = f
            .platform
            .layout
            .partition(&table(table_name), Layer::Parsed, date());
        let batches = read_published(&f.platform, &partition).await.unwrap()?;
        let schema = batches.first().map(|b| b.schema())?;
        Some(concat_batches(&schema, &batches).unwrap())
    }

    fn column<'b>(batch: &'b RecordBatch, name: &str) -> &'b StringArray {
        batch.column_by_name(name).unwrap().as_string::<i32>()
    }

    async fn reports(f: &Fixture, table_name: &str) -> Vec<serde_json::Value> {
        let prefix = format!("{}parse/{table_name}/", f.platform.metrics_prefix);
        let bucket = &f.platform.layout.refined_bucket;
        let mut lines = Vec::new();
        for object in f.platform.storage.list(bucket, &prefix).await.unwrap() {
            let body = f.platform.storage.get(bucket, &object.key).await.unwrap();
            for line in std::str::from_utf8(&body).unwrap().lines() {
                lines.push(serde_json::from_str(line).unwrap());
            }
        }
        lines
    }

    #[tokio::test]
    async fn explodes_ok_pages_into_sorted_text_columns_then_bookkeeping() {
        let f = fixture();
        let nested = r#"{"id":"3","last_updated":null,"reference":"A/3","extra":{"a":[1,2]},"count":12.50,"flag":true}"#;
        let pages = [
            RawPage::ok(1, vec![appeal(1), appeal(2)]),
            RawPage::failed(2, 500, "internal server error"),
            RawPage::ok(3, vec![nested.to_string()]),
        ];
        let mut message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        message.as_of = Some(date());
        let outcome = f.stage.parse(&message).await.unwrap();

        assert_eq!(outcome.next.layer, Layer::Parsed);
        assert_eq!(outcome.next.as_of, Some(date()), "as_of is passed on");
        assert_eq!(outcome.next.partition["import_date"], "20261121");
        assert_eq!(outcome.published.rows, 3);
        assert_eq!(outcome.field_columns, 7);
        assert!(outcome.report.passed());

        let batch = parsed_rows(&f, "appeals").await.unwrap();
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "count",
                "extra",
                "flag",
                "id",
                "last_updated",
                "reference",
                "ward",
                "page_number",
                "import_api_url_requested",
                "import_api_status_code",
                "import_exception_thrown",
                "import_datetime",
                "import_timestamp"
            ]
        );
        assert_eq!(
            column(&batch, "id").iter().collect::<Vec<_>>(),
            [Some("1"), Some("2"), Some("3")]
        );
        assert_eq!(column(&batch, "extra").value(2), r#"{"a":[1,2]}"#);
        assert_eq!(column(&batch, "count").value(2), "12.50");
        assert_eq!(column(&batch, "flag").value(2), "true");
        assert!(column(&batch, "extra").is_null(0));
        assert!(column(&batch, "ward").is_null(0));
        assert!(column(&batch, "last_updated").is_null(2));
        let pages = batch
            .column_by_name("page_number")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!(pages.values().to_vec(), [1, 1, 3]);
        let statuses = batch.column_by_name("import_api_status_code").unwrap();
        assert_eq!(
            statuses.as_primitive::<Int32Type>().values().to_vec(),
            [200, 200, 200]
        );
        assert!(
            column(&batch, "import_api_url_requested")
                .value(2)
                .ends_with("page=3")
        );

        // The parsed table is registered with the text columns and the partition keys.
        let def = f
            .platform
            .catalog
            .table("local-tascomi-raw-zone", "appeals")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(def.columns.len(), 13);
        assert_eq!(def.columns[0].hive_type, "string");
        assert_eq!(def.partition_keys[3], "import_date");
    }

    #[tokio::test]
    async fn the_same_message_twice_publishes_the_partition_once() {
        let f = fixture();
        let message = publish_raw(
            &f.platform,
            &table("appeals"),
            date(),
            &[RawPage::ok(1, vec![appeal(1), appeal(2)])],
        )
        .await
        .unwrap();
        let first = f.stage.parse(&message).await.unwrap();
        let second = f.stage.parse(&message).await.unwrap();
        assert_eq!(
            second.published.replaced.as_deref(),
            Some(first.published.location.as_str())
        );
        assert_eq!(parsed_rows(&f, "appeals").await.unwrap().num_rows(), 2);
        let partition = f
            .platform
            .layout
            .partition(&table("appeals"), Layer::Parsed, date());
        let files = f
            .platform
            .storage
            .list(&partition.bucket, &partition.key_prefix())
            .await
            .unwrap();
        assert!(
            files
                .iter()
                .all(|o| o.key.contains(&second.published.run_id)),
            "{files:?}"
        );
    }

    #[tokio::test]
    async fn batch_size_does_not_change_the_result() {
        let small = fixture_with(ParseSettings { batch_rows: 1 });
        let large = fixture();
        let pages = [
            RawPage::ok(1, (1..=5).map(appeal).collect()),
            RawPage::ok(2, (6..=9).map(appeal).collect()),
        ];
        let mut results = Vec::new();
        for f in [&small, &large] {
            let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
                .await
                .unwrap();
            f.stage.parse(&message).await.unwrap();
            results.push(parsed_rows(f, "appeals").await.unwrap());
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0].num_rows(), 9);
    }

    /// An appeal as the API sends it, with this `last_updated` (`None`: null) and reference.
    fn appeal_version(id: u32, last_updated: Option<&str>, reference: &str) -> String {
        serde_json::json!({
            "id": id.to_string(),
            "last_updated": last_updated,
            "reference": reference,
            "ward": null,
        })
        .to_string()
    }

    fn check<'r>(report: &'r QualityReport, name: &str) -> &'r common::quality::CheckResult {
        report
            .checks
            .iter()
            .find(|c| c.check == name)
            .unwrap_or_else(|| panic!("no check {name} in {report:?}"))
    }

    fn pages_of(batch: &RecordBatch) -> Vec<i32> {
        batch
            .column_by_name("page_number")
            .unwrap()
            .as_primitive::<Int32Type>()
            .values()
            .to_vec()
    }

    #[tokio::test]
    async fn a_record_served_on_two_pages_is_stored_once_and_counted() {
        let f = fixture();
        // Offset paging over a live table: the same JSON text on pages 1 and 2.
        let pages = [
            RawPage::ok(1, vec![appeal(1), appeal(2)]),
            RawPage::ok(2, vec![appeal(2), appeal(3)]),
        ];
        let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        let outcome = f.stage.parse(&message).await.unwrap();
        assert!(outcome.report.passed(), "{:?}", outcome.report);
        assert_eq!(outcome.published.rows, 3);
        assert_eq!(outcome.report.rows, 3);

        let batch = parsed_rows(&f, "appeals").await.unwrap();
        assert_eq!(
            column(&batch, "id").iter().collect::<Vec<_>>(),
            [Some("1"), Some("2"), Some("3")]
        );
        assert_eq!(pages_of(&batch), [1, 2, 2], "the later page's copy is kept");

        let collapsed = check(&outcome.report, "duplicate_records_collapsed");
        assert!(collapsed.passed);
        assert_eq!(collapsed.value, 1.0);
        assert_eq!(collapsed.examples, ["2"]);
        let superseded = check(&outcome.report, "superseded_versions_dropped");
        assert!(superseded.passed);
        assert_eq!(superseded.value, 0.0);
        assert!(check(&outcome.report, "unique_id").passed);

        // Recorded with the other checks.
        let lines = reports(&f, "appeals").await;
        assert_eq!(lines.len(), 5, "{lines:?}");
        let recorded = lines
            .iter()
            .find(|l| l["check"]["check"] == "duplicate_records_collapsed")
            .unwrap();
        assert_eq!(recorded["check"]["value"], 1.0);
        assert_eq!(recorded["check"]["examples"], serde_json::json!(["2"]));
        assert_eq!(recorded["passed"], true);
    }

    #[tokio::test]
    async fn two_versions_of_an_id_keep_the_later_last_updated_then_the_later_page() {
        let f = fixture();
        // Stored out of page order, as a retried page would be.
        let pages = [
            RawPage::ok(
                3,
                vec![appeal_version(
                    6,
                    Some("2026-11-20 08:00:00"),
                    "6 on page 3",
                )],
            ),
            RawPage::ok(
                1,
                vec![
                    appeal_version(5, Some("2026-11-20 12:00:00"), "5 new"),
                    appeal_version(6, Some("2026-11-20 08:00:00"), "6 on page 1"),
                    appeal_version(7, Some("2026-11-19 17:00:00"), "7 dated"),
                    appeal(8),
                ],
            ),
            RawPage::ok(
                2,
                vec![
                    appeal_version(5, Some("2026-11-20 09:00:00"), "5 old"),
                    appeal_version(7, None, "7 undated"),
                ],
            ),
        ];
        let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        let outcome = f.stage.parse(&message).await.unwrap();
        assert!(outcome.report.passed(), "{:?}", outcome.report);

        let batch = parsed_rows(&f, "appeals").await.unwrap();
        let kept: Vec<_> = column(&batch, "id")
            .iter()
            .zip(column(&batch, "reference").iter())
            .map(|(id, reference)| (id.unwrap(), reference.unwrap()))
            .collect();
        assert_eq!(
            kept,
            [
                ("6", "6 on page 3"),
                ("5", "5 new"),
                ("7", "7 dated"),
                ("8", "A/8")
            ]
        );
        assert_eq!(pages_of(&batch), [3, 1, 1, 1]);

        let superseded = check(&outcome.report, "superseded_versions_dropped");
        assert_eq!(superseded.value, 3.0);
        assert_eq!(superseded.examples, ["6", "5", "7"]);
        assert!(superseded.passed);
        assert_eq!(
            check(&outcome.report, "duplicate_records_collapsed").value,
            0.0
        );
    }

    #[tokio::test]
    async fn the_duplicate_rule_does_not_depend_on_the_batch_size() {
        let pages = [
            RawPage::ok(
                1,
                vec![appeal(1), appeal(2), appeal_version(3, None, "old")],
            ),
            RawPage::ok(2, vec![appeal(2), appeal(3), appeal(4)]),
            RawPage::ok(3, vec![appeal(1), appeal_version(4, None, "older")]),
        ];
        let mut results = Vec::new();
        for f in [fixture_with(ParseSettings { batch_rows: 1 }), fixture()] {
            let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
                .await
                .unwrap();
            let outcome = f.stage.parse(&message).await.unwrap();
            let counts = (
                check(&outcome.report, "duplicate_records_collapsed").value,
                check(&outcome.report, "superseded_versions_dropped").value,
            );
            results.push((parsed_rows(&f, "appeals").await.unwrap(), counts));
        }
        assert_eq!(results[0], results[1]);
        let (batch, counts) = &results[0];
        assert_eq!(counts, &(2.0, 2.0));
        assert_eq!(
            column(batch, "id").iter().collect::<Vec<_>>(),
            [Some("2"), Some("3"), Some("4"), Some("1")]
        );
        assert_eq!(pages_of(batch), [2, 2, 2, 3]);
    }

    #[tokio::test]
    async fn a_failed_gate_publishes_nothing_and_keeps_the_last_good_partition() {
        let f = fixture();
        let good = publish_raw(
            &f.platform,
            &table("appeals"),
            date(),
            &[RawPage::ok(1, vec![appeal(1), appeal(2)])],
        )
        .await
        .unwrap();
        let published = f.stage.parse(&good).await.unwrap().published;

        // The same day re-ingested, now with a record without an id (and id 2 twice, which
        // is not a failure: one row is kept).
        let pages = [
            RawPage::ok(1, vec![appeal(1), appeal(2)]),
            RawPage::ok(2, vec![appeal(2), r#"{"reference":"A/?"}"#.into()]),
        ];
        let bad = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        let err = f.stage.parse(&bad).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("appeals parsed import_date=20261121: data-quality gate failed"),
            "{text}"
        );
        assert!(text.contains("missing_id = 1 (threshold 0)"), "{text}");
        assert!(!text.contains("unique_id"), "{text}");
        assert!(matches!(err.into_failure(), Failure::Permanent(_)));

        let partition = f
            .platform
            .layout
            .partition(&table("appeals"), Layer::Parsed, date());
        let now = published_files(&f.platform, &partition)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            now.location, published.location,
            "the last good partition stays"
        );
        assert_eq!(parsed_rows(&f, "appeals").await.unwrap().num_rows(), 2);
        let files = f
            .platform
            .storage
            .list(&partition.bucket, &partition.key_prefix())
            .await
            .unwrap();
        assert!(
            files.iter().all(|o| o.key.contains(&published.run_id)),
            "failed run discarded: {files:?}"
        );

        // Both runs recorded their results, the failed one with its figures.
        let lines = reports(&f, "appeals").await;
        assert_eq!(lines.len(), 10, "five checks per run");
        let failed: Vec<_> = lines.iter().filter(|l| l["passed"] == false).collect();
        assert_eq!(failed.len(), 5);
        let missing = failed
            .iter()
            .find(|l| l["check"]["check"] == "missing_id")
            .unwrap();
        assert_eq!(missing["check"]["value"], 1.0);
        assert_eq!(missing["partition_date"], "20261121");
        assert_eq!(missing["stage"], "parse");
        let collapsed = failed
            .iter()
            .find(|l| l["check"]["check"] == "duplicate_records_collapsed")
            .unwrap();
        assert_eq!(collapsed["check"]["value"], 1.0);
        assert_eq!(collapsed["check"]["passed"], true);
    }

    #[tokio::test]
    async fn completeness_of_the_configured_column_gates_the_partition() {
        let f = fixture();
        let record = |id: u32, reference: Option<&str>| {
            let mut object = serde_json::json!({"id": id.to_string(), "last_updated": null});
            if let Some(reference) = reference {
                object["application_reference_number"] = reference.into();
            }
            object.to_string()
        };
        // 98 of 100 records have a reference: below 99 %.
        let records: Vec<String> = (0..100)
            .map(|i| record(i, (i >= 2).then_some("2026/0001")))
            .collect();
        let message = publish_raw(
            &f.platform,
            &table("applications"),
            date(),
            &[RawPage::ok(1, records)],
        )
        .await
        .unwrap();
        let err = f.stage.parse(&message).await.unwrap_err().to_string();
        assert!(
            err.contains("completeness_application_reference_number = 0.98 (threshold 0.99)"),
            "{err}"
        );
        // 99 of 100 pass.
        let records: Vec<String> = (0..100)
            .map(|i| record(i, (i >= 1).then_some("2026/0001")))
            .collect();
        let message = publish_raw(
            &f.platform,
            &table("applications"),
            date(),
            &[RawPage::ok(1, records)],
        )
        .await
        .unwrap();
        f.stage.parse(&message).await.unwrap();
    }

    #[tokio::test]
    async fn a_quiet_day_publishes_an_empty_partition() {
        let f = fixture();
        for pages in [vec![], vec![RawPage::failed(1, 202, "no results")]] {
            let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
                .await
                .unwrap();
            let outcome = f.stage.parse(&message).await.unwrap();
            assert_eq!(outcome.published.rows, 0);
            assert_eq!(outcome.field_columns, 0);
            assert!(outcome.report.passed(), "{:?}", outcome.report);
            let partition = f
                .platform
                .layout
                .partition(&table("appeals"), Layer::Parsed, date());
            assert!(
                published_files(&f.platform, &partition)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }

    #[tokio::test]
    async fn a_record_that_is_not_an_object_names_table_partition_page_and_row() {
        let f = fixture();
        let pages = [
            RawPage::ok(1, vec![appeal(1)]),
            RawPage::ok(2, vec![appeal(2), appeal(3), "[1,2]".into()]),
        ];
        let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        let err = f.stage.parse(&message).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "appeals raw import_date=20261121, page 2, row 3: the record is a JSON array, not an object"
        );
        assert!(!err.is_transient());
        let partition = f
            .platform
            .layout
            .partition(&table("appeals"), Layer::Parsed, date());
        assert!(
            published_files(&f.platform, &partition)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn unusable_field_names_are_an_error_naming_the_field() {
        let f = fixture();
        let pages = [RawPage::ok(1, vec![r#"{"id":"1","bad name":"x"}"#.into()])];
        let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        let err = f.stage.parse(&message).await.unwrap_err().to_string();
        assert!(
            err.starts_with("appeals raw import_date=20261121: column \"bad name\""),
            "{err}"
        );
    }

    #[tokio::test]
    async fn messages_for_other_layers_or_missing_partitions_are_refused() {
        let f = fixture();
        let message = publish_raw(&f.platform, &table("appeals"), date(), &[])
            .await
            .unwrap();
        let mut wrong = message.clone();
        wrong.layer = Layer::Parsed;
        let err = f.stage.parse(&wrong).await.unwrap_err().to_string();
        assert!(
            err.contains("reads raw partitions, but the message names the parsed layer of appeals"),
            "{err}"
        );

        let mut other_day = message.clone();
        other_day.partition.insert("import_day".into(), "22".into());
        other_day
            .partition
            .insert("import_date".into(), "20261122".into());
        let err = f.stage.parse(&other_day).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "appeals raw import_date=20261122 is not published in the catalog (a replayed message for a partition that was removed?)"
        );
        assert!(matches!(err.into_failure(), Failure::Permanent(_)));
    }

    #[tokio::test]
    async fn the_handler_answers_with_the_next_message_and_knows_the_configured_tables() {
        let f = fixture();
        assert!(f.stage.is_known_table(&table("applications")));
        assert!(!f.stage.is_known_table(&table("wards")));
        assert_eq!(f.stage.stage(), "parse");
        let message = publish_raw(
            &f.platform,
            &table("appeals"),
            date(),
            &[RawPage::ok(1, vec![appeal(1)])],
        )
        .await
        .unwrap();
        let next = f.stage.handle(message).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].layer, Layer::Parsed);
    }
}
