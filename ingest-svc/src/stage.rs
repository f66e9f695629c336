//! The ingest stage: an [`IngestRequest`] in, one published raw partition and a
//! [`PartitionReady`] out.
//!
//! - **full** (asked for, or no earlier complete full load): every page of the table;
//! - **incremental**: one `last_updated=YYYY-MM-DD` query per London day not yet fetched
//!   completely, from the last complete full load up to yesterday, capped at
//!   `max_lookback_days` (days cut off are named in a warning and recorded);
//! - **retry-failed**: exactly the pages that failed in the latest import, merged into that
//!   import's partition (rows of the retried pages replaced, never doubled).
//!
//! Pages are written to the partition as they arrive (memory holds a few pages, never the table).
//! The partition is published (replacing any earlier run of the same day) before the state is
//! written, and the state before the next message is sent, so a crash at any point leaves a
//! message that is handled again with the same result.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, BooleanArray, Int32Array, RecordBatch, StringArray};
use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use common::TableName;
use common::config::{ConfigError, Env, PipelineFile};
use common::layout::{Layer, PartitionRef, london_today};
use common::messages::{IngestMode, IngestRequest, PartitionReady};
use common::parquet_io::{ParquetIoError, read_file};
use common::platform::Platform;
use common::publish::{PartitionWriter, PublishError, Published, new_run_id, published_partitions};
use common::runner::{Failure, Handler};
use common::storage::split_s3_uri;
use futures::{StreamExt, TryStreamExt};
use tracing::Instrument;

use crate::auth::Credentials;
use crate::client::{ClientSettings, FetchError, Query, TascomiClient};
use crate::keys::KeySource;
use crate::raw::{self, RowBuilder};
use crate::state::{self, FailedPage, ImportKind, ImportRecord, Plan, StateError};

/// Rows read at a time when an earlier partition is copied (retry-failed).
const COPY_BATCH_ROWS: usize = 512;

/// The stage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSettings {
    pub client: ClientSettings,
    /// Days an incremental run looks back at most: `TASCOMI_MAX_LOOKBACK_DAYS`, else the
    /// pipeline file's `max_lookback_days` (default 60).
    pub max_lookback_days: u32,
}

impl IngestSettings {
    /// The defaults, talking to `base_url` (the simulator's URL in tests and the local demo).
    pub fn new(base_url: &str) -> Self {
        Self {
            client: ClientSettings::new(base_url),
            max_lookback_days: common::config::DEFAULT_MAX_LOOKBACK_DAYS,
        }
    }

    pub fn from_env(env: &Env, pipeline: &PipelineFile) -> Result<Self, ConfigError> {
        let settings = Self {
            client: ClientSettings::from_env(env)?,
            max_lookback_days: env
                .parse_or("TASCOMI_MAX_LOOKBACK_DAYS", pipeline.max_lookback_days)?,
        };
        if settings.max_lookback_days == 0 {
            return Err(ConfigError::Invalid {
                variable: "TASCOMI_MAX_LOOKBACK_DAYS".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(settings)
    }
}

/// Why an ingest published nothing.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Authentication(FetchError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("reading the published partition {partition} to merge retried pages: {source}")]
    ReadPrevious {
        partition: String,
        #[source]
        source: ParquetIoError,
    },
    #[error(
        "the partition {partition} holds a file that is not a raw file of this table ({key}): {message}"
    )]
    ForeignFile {
        partition: String,
        key: String,
        message: String,
    },
    #[error("catalog of {partition}: {source}")]
    Catalog {
        partition: String,
        #[source]
        source: common::catalog::CatalogError,
    },
    #[error("building the rows of page {page} of table {table}: {source}")]
    Rows {
        table: String,
        page: u32,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error(
        "table {table}: the API's headers on page 1 of {query} claim {pages} pages, more than the {MAX_PAGES_PER_QUERY} a query may have: refused as a broken answer"
    )]
    TooManyPages {
        table: String,
        query: String,
        pages: u32,
    },
    #[error("retry-failed for table {table}: {reason}")]
    NothingToRetry { table: String, reason: String },
    #[error(
        "retry-failed for table {table}: the latest import's partition {partition} is not in the catalog"
    )]
    LatestNotPublished { table: String, partition: String },
}

impl IngestError {
    /// The one classification the runner acts on.
    pub fn into_failure(self) -> Failure {
        let transient = match &self {
            IngestError::State(e) => e.is_transient(),
            IngestError::Publish(e) => e.is_transient(),
            IngestError::ReadPrevious { source, .. } => source.is_transient(),
            IngestError::Catalog { source, .. } => source.is_transient(),
            IngestError::NothingToRetry { reason, .. } => return Failure::Discard(reason.clone()),
            IngestError::Authentication(_)
            | IngestError::ForeignFile { .. }
            | IngestError::Rows { .. }
            | IngestError::TooManyPages { .. }
            | IngestError::LatestNotPublished { .. } => false,
        };
        if transient {
            Failure::transient(self)
        } else {
            Failure::permanent(self)
        }
    }
}

/// What one ingest did.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub partition: PartitionRef,
    /// The mode the run took (an incremental request without an earlier full load runs full).
    pub mode: IngestMode,
    /// `None` when a retry-failed run found nothing to retry and re-announced the partition.
    pub published: Option<Published>,
    pub days: Vec<NaiveDate>,
    pub days_cut: Vec<NaiveDate>,
    pub pages_fetched: u32,
    pub records_written: u64,
    pub records_skipped_today: u64,
    pub failed_pages: Vec<FailedPage>,
    /// The message for parse-svc.
    pub ready: PartitionReady,
}

/// The ingest stage. Build it once per process: its client's concurrency limit is shared by
/// every table the process handles.
#[derive(Debug)]
pub struct IngestStage {
    platform: Platform,
    pipeline: PipelineFile,
    client: TascomiClient,
    max_lookback_days: u32,
}

/// The pages of one run, as they are fetched and written.
struct Run<'a> {
    stage: &'a IngestStage,
    table: &'a TableName,
    writer: PartitionWriter,
    rows: RowBuilder,
    pages_fetched: u32,
    written: u64,
    skipped_today: u64,
    failed: Vec<FailedPage>,
}

impl IngestStage {
    /// A stage on `platform`, talking to `settings.client.base_url` with `credentials`.
    pub fn new(
        platform: Platform,
        pipeline: PipelineFile,
        settings: IngestSettings,
        credentials: Credentials,
    ) -> anyhow::Result<Self> {
        let client = TascomiClient::new(settings.client, credentials)?;
        Ok(Self {
            platform,
            pipeline,
            client,
            max_lookback_days: settings.max_lookback_days,
        })
    }

    /// The service's stage: S3 and Glue, the pipeline file, the keys from the environment or
    /// Secrets Manager. Every resolved setting is logged, the keys never.
    pub async fn from_env(env: &Env, sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let pipeline = common::service::pipeline_from_env(env)?;
        let settings = IngestSettings::from_env(env, &pipeline)?;
        let platform = Platform::aws(sdk, env)?;
        let keys = KeySource::from_env(env)?;
        tracing::info!(
            settings = ?settings,
            keys = %keys.describe(),
            tables = pipeline.tables.len(),
            raw_bucket = %platform.layout.raw_bucket,
            "ingest settings"
        );
        let credentials = keys.load(sdk).await?;
        Self::new(platform, pipeline, settings, credentials)
    }

    pub fn client(&self) -> &TascomiClient {
        &self.client
    }

    /// Handles one request. `Ok` means the partition is published and the state recorded.
    pub async fn ingest(&self, request: &IngestRequest) -> Result<IngestOutcome, IngestError> {
        let today = request.as_of.unwrap_or_else(london_today);
        let span = tracing::info_span!(
            "ingest",
            table = %request.table,
            mode = ?request.mode,
            today = %today,
            requested_by = %request.requested_by,
        );
        async move {
            match request.mode {
                IngestMode::RetryFailed => self.retry_failed(request).await,
                IngestMode::Full | IngestMode::Incremental => self.import(request, today).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn import(
        &self,
        request: &IngestRequest,
        today: NaiveDate,
    ) -> Result<IngestOutcome, IngestError> {
        let table = &request.table;
        let bucket = &self.platform.layout.raw_bucket;
        let mut table_state = state::load(&self.platform.storage, bucket, table).await?;
        let plan = match request.mode {
            IngestMode::Full => Plan::Full {
                reason: "asked for".into(),
            },
            _ => table_state.plan_incremental(today, self.max_lookback_days),
        };
        let (kind, queries, days, cut) = match plan {
            Plan::Full { reason } => {
                tracing::info!(reason = %reason, "full load");
                (ImportKind::Full, vec![Query::All], Vec::new(), Vec::new())
            }
            Plan::Incremental { days, cut, since } => {
                if !cut.is_empty() {
                    tracing::warn!(
                        metric = "tascomi_ingest_days_cut",
                        days_cut = cut.len(),
                        days = %state::describe_days(&cut),
                        max_lookback_days = self.max_lookback_days,
                        "lookback cap cuts days off: their updates are not fetched; run a full load to fill the gap"
                    );
                }
                tracing::info!(
                    since = %since,
                    days = days.len(),
                    fetch = %state::describe_days(&days),
                    "incremental load"
                );
                let queries = days.iter().map(|d| Query::UpdatedOn(*d)).collect();
                (ImportKind::Incremental, queries, days, cut)
            }
        };
        let partition = self.platform.layout.partition(table, Layer::Raw, today);
        let mut run = self.start_run(table, partition.clone(), today);
        for query in queries {
            if let Err(err) = run.fetch_query(query).await {
                run.abandon().await;
                return Err(err);
            }
        }
        let mode = match kind {
            ImportKind::Full => IngestMode::Full,
            ImportKind::Incremental => IngestMode::Incremental,
        };
        let (published, run) = run.publish(request, mode).await?;
        let mut record = ImportRecord {
            import_date: today,
            kind,
            run_id: published.run_id.clone(),
            location: published.location.clone(),
            finished_at: Utc::now(),
            days_requested: days.clone(),
            days_completed: Vec::new(),
            days_cut: cut.clone(),
            records_written: run.written,
            records_skipped_today: run.skipped_today,
            failed_pages: run.failed.clone(),
        };
        record.settle_days();
        table_state.record(record);
        state::save(&self.platform.storage, bucket, &table_state).await?;
        Ok(self.outcome(request, partition, mode, published, days, cut, run))
    }

    async fn retry_failed(&self, request: &IngestRequest) -> Result<IngestOutcome, IngestError> {
        let table = &request.table;
        let bucket = &self.platform.layout.raw_bucket;
        let mut table_state = state::load(&self.platform.storage, bucket, table).await?;
        let Some(latest) = table_state.latest().cloned() else {
            return Err(IngestError::NothingToRetry {
                table: table.to_string(),
                reason: format!("table {table} has no recorded import"),
            });
        };
        let partition = self
            .platform
            .layout
            .partition(table, Layer::Raw, latest.import_date);
        let published = published_partitions(self.platform.catalog.as_ref(), &partition)
            .await
            .map_err(|source| IngestError::Catalog {
                partition: partition.describe(),
                source,
            })?;
        let Some((_, current)) = published
            .into_iter()
            .find(|(date, _)| *date == latest.import_date)
        else {
            return Err(IngestError::LatestNotPublished {
                table: table.to_string(),
                partition: partition.describe(),
            });
        };
        let mode = IngestMode::RetryFailed;
        if latest.failed_pages.is_empty() {
            // Already repaired (perhaps by an earlier delivery of this message): say so again,
            // which is harmless downstream, rather than drop a message that may not have gone.
            tracing::info!(partition = %partition, "no failed pages in the latest import: announcing its partition again");
            let ready = PartitionReady::new(
                &partition,
                current.location.clone(),
                current
                    .parameters
                    .get("run_id")
                    .cloned()
                    .unwrap_or_else(|| latest.run_id.clone()),
                request.as_of,
            );
            return Ok(IngestOutcome {
                partition,
                mode,
                published: None,
                days: Vec::new(),
                days_cut: Vec::new(),
                pages_fetched: 0,
                records_written: 0,
                records_skipped_today: 0,
                failed_pages: Vec::new(),
                ready,
            });
        }
        let whole: BTreeSet<Query> = latest
            .failed_pages
            .iter()
            .filter(|p| p.whole_query)
            .map(|p| query_of(p.day))
            .collect();
        let pages: BTreeSet<(Query, u32)> = latest
            .failed_pages
            .iter()
            .filter(|p| !whole.contains(&query_of(p.day)))
            .map(|p| (query_of(p.day), p.page_number))
            .collect();
        tracing::info!(
            partition = %partition,
            pages = pages.len(),
            whole_queries = whole.len(),
            "retrying the failed pages of the latest import"
        );
        // "Today" of the import being repaired, so the same records are skipped as then.
        let mut run = self.start_run(table, partition.clone(), latest.import_date);
        let result = async {
            run.copy_except(&current.location, &whole, &pages).await?;
            for query in &whole {
                run.fetch_query(*query).await?;
            }
            run.fetch_pages(pages.iter().copied().collect()).await
        }
        .await;
        if let Err(err) = result {
            run.abandon().await;
            return Err(err);
        }
        let (published, run) = run.publish(request, mode).await?;
        let mut record = latest.clone();
        record.run_id = published.run_id.clone();
        record.location = published.location.clone();
        record.finished_at = Utc::now();
        record.records_written = published.rows - run.failed.len() as u64;
        record.records_skipped_today += run.skipped_today;
        record.failed_pages = run.failed.clone();
        record.settle_days();
        table_state.record(record);
        state::save(&self.platform.storage, bucket, &table_state).await?;
        Ok(self.outcome(
            request,
            partition,
            mode,
            published,
            Vec::new(),
            Vec::new(),
            run,
        ))
    }

    fn start_run<'a>(
        &'a self,
        table: &'a TableName,
        partition: PartitionRef,
        today: NaiveDate,
    ) -> Run<'a> {
        let rows = RowBuilder::new(table, Utc::now(), today);
        let writer = PartitionWriter::new(
            self.platform.storage.clone(),
            partition,
            new_run_id(),
            rows.schema().clone(),
            self.platform.write_options,
        );
        Run {
            stage: self,
            table,
            writer,
            rows,
            pages_fetched: 0,
            written: 0,
            skipped_today: 0,
            failed: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        request: &IngestRequest,
        partition: PartitionRef,
        mode: IngestMode,
        published: Published,
        days: Vec<NaiveDate>,
        days_cut: Vec<NaiveDate>,
        run: RunTotals,
    ) -> IngestOutcome {
        let ready = PartitionReady::new(
            &partition,
            published.location.clone(),
            published.run_id.clone(),
            request.as_of,
        );
        if !run.failed.is_empty() {
            tracing::warn!(
                partition = %partition,
                failed_pages = run.failed.len(),
                "pages failed after retries: recorded in the partition; send a retry-failed request to fetch them"
            );
        }
        tracing::info!(
            partition = %partition,
            mode = ?mode,
            pages = run.pages_fetched,
            records = run.written,
            skipped_today = run.skipped_today,
            failed_pages = run.failed.len(),
            "raw partition published"
        );
        IngestOutcome {
            partition,
            mode,
            published: Some(published),
            days,
            days_cut,
            pages_fetched: run.pages_fetched,
            records_written: run.written,
            records_skipped_today: run.skipped_today,
            failed_pages: run.failed,
            ready,
        }
    }
}

/// Pages one query may have at most: ten times what production's largest table (documents,
/// about 5 million records) needs at 50 records a page. The page list is built from the API's
/// headers, so a broken or hostile header must not make it unbounded.
pub const MAX_PAGES_PER_QUERY: u32 = 1_000_000;

/// The error for a query whose headers claim more than [`MAX_PAGES_PER_QUERY`] pages.
fn too_many_pages(table: &TableName, query: Query, pages: u32) -> Option<IngestError> {
    (pages > MAX_PAGES_PER_QUERY).then(|| IngestError::TooManyPages {
        table: table.to_string(),
        query: format!("{query:?}"),
        pages,
    })
}

fn query_of(day: Option<NaiveDate>) -> Query {
    day.map_or(Query::All, Query::UpdatedOn)
}

impl Run<'_> {
    /// Fetches every page of a query: page 1 (which also counts the pages), then the rest, a
    /// few at a time, written in page order as they arrive.
    async fn fetch_query(&mut self, query: Query) -> Result<(), IngestError> {
        let client = &self.stage.client;
        let first = client.fetch_page(self.table, query, 1).await;
        let pages = match first {
            Ok(page) => {
                let count = page.page_count();
                if let Some(err) = too_many_pages(self.table, query, count) {
                    return Err(err);
                }
                tracing::debug!(query = ?query, pages = count, records = page.total_results, "query counted");
                self.write_page(1, page).await?;
                count
            }
            Err(err) => {
                self.write_failure(query, 1, err, true).await?;
                return Ok(());
            }
        };
        self.fetch_pages((2..=pages).map(|p| (query, p)).collect())
            .await
    }

    /// Fetches the given pages, a few at a time, writing each in order.
    async fn fetch_pages(&mut self, pages: Vec<(Query, u32)>) -> Result<(), IngestError> {
        let client = self.stage.client.clone();
        let table = self.table.clone();
        let in_flight = client.settings().max_concurrent_requests.max(1);
        let mut results = futures::stream::iter(pages)
            .map(|(query, page)| {
                let client = client.clone();
                let table = table.clone();
                async move { (query, page, client.fetch_page(&table, query, page).await) }
            })
            .buffered(in_flight);
        while let Some((query, page, result)) = results.next().await {
            match result {
                Ok(response) => self.write_page(page, response).await?,
                Err(err) => self.write_failure(query, page, err, false).await?,
            }
        }
        Ok(())
    }

    async fn write_page(
        &mut self,
        page: u32,
        response: crate::client::PageResponse,
    ) -> Result<(), IngestError> {
        let (batch, rows) = self
            .rows
            .page(page, &response.url, response.status, response.records)
            .map_err(|source| IngestError::Rows {
                table: self.table.to_string(),
                page,
                source,
            })?;
        self.pages_fetched += 1;
        self.written += rows.written;
        self.skipped_today += rows.skipped_today;
        self.writer.write(&batch).await?;
        Ok(())
    }

    async fn write_failure(
        &mut self,
        query: Query,
        page: u32,
        err: FetchError,
        first_page: bool,
    ) -> Result<(), IngestError> {
        let error = err.to_string();
        let (url, status, message) = match err {
            FetchError::Failed {
                url,
                status,
                message,
                ..
            } => (url, status, message),
            auth @ FetchError::Authentication { .. } => {
                return Err(IngestError::Authentication(auth));
            }
        };
        tracing::warn!(
            page,
            url = %url,
            status = status.map(i64::from).unwrap_or(-1),
            error = %message,
            "page failed after retries: recorded"
        );
        let batch = self
            .rows
            .failed_page(page, &url, status, &error)
            .map_err(|source| IngestError::Rows {
                table: self.table.to_string(),
                page,
                source,
            })?;
        self.failed.push(FailedPage {
            day: query.day(),
            page_number: page,
            url,
            status_code: status,
            error,
            whole_query: first_page,
        });
        self.writer.write(&batch).await?;
        Ok(())
    }
}

impl Run<'_> {
    /// Copies the rows of the published partition at `location`, except those of the queries
    /// and pages about to be fetched again (failed-page rows, or the rows of an earlier retry
    /// whose state was not recorded), so the merged partition never doubles a page.
    async fn copy_except(
        &mut self,
        location: &str,
        whole: &BTreeSet<Query>,
        pages: &BTreeSet<(Query, u32)>,
    ) -> Result<(), IngestError> {
        let partition = self.writer.partition().describe();
        let Some((bucket, prefix)) = split_s3_uri(location) else {
            return Err(IngestError::ForeignFile {
                partition,
                key: location.to_owned(),
                message: "the catalog location is not an s3:// address".into(),
            });
        };
        let storage = self.stage.platform.storage.clone();
        let read_error = |source: ParquetIoError| IngestError::ReadPrevious {
            partition: partition.clone(),
            source,
        };
        let objects = storage
            .list(bucket, prefix)
            .await
            .map_err(|e| read_error(e.into()))?;
        let schema = self.rows.schema().clone();
        for object in objects.iter().filter(|o| o.key.ends_with(".parquet")) {
            let (_, batches) = read_file(storage.clone(), bucket, &object.key, COPY_BATCH_ROWS)
                .await
                .map_err(read_error)?;
            let mut batches = Box::pin(batches);
            while let Some(batch) = batches.try_next().await.map_err(read_error)? {
                let foreign = |message: String| IngestError::ForeignFile {
                    partition: partition.clone(),
                    key: object.key.clone(),
                    message,
                };
                let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(|e| foreign(e.to_string()))?;
                let keep = keep_mask(&batch, whole, pages).map_err(foreign)?;
                let kept = arrow::compute::filter_record_batch(&batch, &keep)
                    .map_err(|e| foreign(e.to_string()))?;
                self.writer.write(&kept).await?;
            }
        }
        Ok(())
    }

    /// Deletes what this run wrote: it publishes nothing.
    async fn abandon(self) {
        self.writer.abandon().await;
    }

    /// Publishes the partition (replacing any earlier run of it) and registers
    /// `api_response_<table>`.
    async fn publish(
        self,
        request: &IngestRequest,
        mode: IngestMode,
    ) -> Result<(Published, RunTotals), IngestError> {
        let totals = RunTotals {
            pages_fetched: self.pages_fetched,
            written: self.written,
            skipped_today: self.skipped_today,
            failed: self.failed,
        };
        let staged = self.writer.finish().await?;
        let parameters = BTreeMap::from([
            ("mode".to_owned(), mode_name(mode).to_owned()),
            ("requested_by".to_owned(), request.requested_by.clone()),
            ("pages_fetched".to_owned(), totals.pages_fetched.to_string()),
            ("failed_pages".to_owned(), totals.failed.len().to_string()),
            (
                "records_skipped_today".to_owned(),
                totals.skipped_today.to_string(),
            ),
        ]);
        let platform = &self.stage.platform;
        let published = staged
            .publish(
                platform.catalog.as_ref(),
                &platform.layout,
                parameters,
                platform.orphan_grace,
            )
            .await?;
        Ok((published, totals))
    }
}

/// A run's counts, once its writer is closed.
#[derive(Debug, Clone)]
struct RunTotals {
    pages_fetched: u32,
    written: u64,
    skipped_today: u64,
    failed: Vec<FailedPage>,
}

fn mode_name(mode: IngestMode) -> &'static str {
    match mode {
        IngestMode::Full => "full",
        IngestMode::Incremental => "incremental",
        IngestMode::RetryFailed => "retry-failed",
    }
}

/// True for the rows to keep: those not of a query or page about to be fetched again.
fn keep_mask(
    batch: &RecordBatch,
    whole: &BTreeSet<Query>,
    pages: &BTreeSet<(Query, u32)>,
) -> Result<BooleanArray, String> {
    let page_numbers = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int32Array>()
        .ok_or("page_number is not an int column")?;
    let urls = batch
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("import_api_url_requested is not a text column")?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let query = Query::of_url(if urls.is_null(i) { "" } else { urls.value(i) });
            let page = u32::try_from(page_numbers.value(i)).unwrap_or(0);
            Some(!(whole.contains(&query) || pages.contains(&(query, page))))
        })
        .collect())
}

#[async_trait]
impl Handler for IngestStage {
    type Message = IngestRequest;

    fn stage(&self) -> &'static str {
        "ingest"
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.pipeline.contains(table)
    }

    async fn handle(&self, message: IngestRequest) -> Result<Vec<PartitionReady>, Failure> {
        match self.ingest(&message).await {
            Ok(outcome) => Ok(vec![outcome.ready]),
            Err(err) => Err(err.into_failure()),
        }
    }
}

/// The raw layer's schema for a table (re-exported for tests and tools).
pub fn raw_schema(table: &TableName) -> arrow::datatypes::SchemaRef {
    raw::schema(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_count_beyond_the_limit_is_refused_naming_the_table() {
        let table = TableName::new("documents").unwrap();
        assert!(too_many_pages(&table, Query::All, MAX_PAGES_PER_QUERY).is_none());
        let err = too_many_pages(&table, Query::All, u32::MAX).unwrap();
        assert!(err.to_string().contains("table documents"), "{err}");
        assert!(err.to_string().contains(&u32::MAX.to_string()), "{err}");
        assert!(matches!(err.into_failure(), Failure::Permanent(_)));
    }
}
