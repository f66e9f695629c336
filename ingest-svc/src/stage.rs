//! The ingest stage: an [`IngestRequest`] in, one published raw partition and a
//! [`PartitionReady`] out.
//!
//! - **full** (asked for, or no earlier base full load, see [`crate::state`]): every page of the
//!   table;
//! - **incremental**: one `last_updated=YYYY-MM-DD` query per London day not yet fetched
//!   completely, from the base full load up to yesterday, capped at `max_lookback_days` (days
//!   cut off are named in a warning and recorded); plus every day from the request's `since`,
//!   uncapped; plus the pages of the base full load still outstanding (query "all records",
//!   page N), so a full load with a failed page is never followed by another full load;
//! - **retry-failed**: exactly the pages that failed in the latest import, merged into that
//!   import's partition (rows of the retried pages replaced, never doubled).
//!
//! Every query is checked for paging drift ([`crate::drift`]): when the distinct records received
//! fall short of the announced count, or the count changed between pages, the query is fetched
//! again (at most [`MAX_REQUERIES`] times) and only records not received yet are written; still
//! short, the query is recorded as a failed page (whole query) for the next night or a retry.
//!
//! Pages are written to the partition as they arrive (memory holds a few pages and 8 bytes per
//! record id of the current query, never the table). The partition is published (replacing any
//! earlier run of the same day) before the state is written, and the state before the next
//! message is sent, so a crash at any point leaves a message that is handled again with the same
//! result. At the end of each import the counts go out as metrics ([`common::metrics::emit`]).

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
use crate::client::{ClientSettings, FetchError, PageKind, PageResponse, Query, TascomiClient};
pub use crate::drift::MAX_REQUERIES;
use crate::drift::{Tally, Verdict};
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

/// What one ingest did. The counts are those of this run (a retry-failed run: of the pages it
/// fetched again) and are also emitted as metrics.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub partition: PartitionRef,
    /// The mode the run took (an incremental request without an earlier full load runs full).
    pub mode: IngestMode,
    /// The kind of import the partition holds (for a retry-failed run, the repaired import's).
    pub import_kind: ImportKind,
    /// `None` when a retry-failed run found nothing to retry and re-announced the partition.
    pub published: Option<Published>,
    pub days: Vec<NaiveDate>,
    pub days_cut: Vec<NaiveDate>,
    /// Of `days`, those fetched again because the request's `since` asked for them.
    pub days_refetched: Vec<NaiveDate>,
    /// Pages of the base full load fetched by this incremental run (they had failed).
    pub full_pages: Vec<u32>,
    pub pages_fetched: u32,
    pub records_written: u64,
    pub records_skipped_today: u64,
    /// Records kept although their `last_updated` is after the run's today.
    pub records_future_dated: u64,
    /// Queries fetched again because their pages did not add up (paging drift).
    pub requeries: u32,
    /// Records first received in a re-query.
    pub records_recovered_by_requery: u64,
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
    future_dated: u64,
    requeries: u32,
    recovered: u64,
    failed: Vec<FailedPage>,
}

/// What an import fetches, once planned.
struct Fetches {
    kind: ImportKind,
    queries: Vec<Query>,
    days: Vec<NaiveDate>,
    cut: Vec<NaiveDate>,
    refetched: Vec<NaiveDate>,
    full_pages: Vec<u32>,
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
            _ => table_state.plan_incremental(today, self.max_lookback_days, request.since),
        };
        let fetches = self.fetches(request, plan);
        let partition = self.platform.layout.partition(table, Layer::Raw, today);
        let mut run = self.start_run(table, partition.clone(), today);
        let result = async {
            if !fetches.full_pages.is_empty() {
                let pages = fetches
                    .full_pages
                    .iter()
                    .map(|p| (Query::All, *p))
                    .collect();
                run.fetch_pages(pages, None, Pass::Pages).await?;
            }
            for query in &fetches.queries {
                run.fetch_query(*query).await?;
            }
            Ok(())
        }
        .await;
        if let Err(err) = result {
            run.abandon().await;
            return Err(err);
        }
        let kind = fetches.kind;
        let mode = match kind {
            ImportKind::Full => IngestMode::Full,
            ImportKind::Incremental => IngestMode::Incremental,
        };
        let (published, run) = run.publish(request, mode, kind).await?;
        let mut record = ImportRecord {
            import_date: today,
            kind,
            run_id: published.run_id.clone(),
            location: published.location.clone(),
            finished_at: Utc::now(),
            days_requested: fetches.days.clone(),
            days_completed: Vec::new(),
            days_cut: fetches.cut.clone(),
            days_refetched: fetches.refetched.clone(),
            full_pages_requested: fetches.full_pages.clone(),
            full_pages_outstanding: Vec::new(),
            records_written: run.written,
            records_skipped_today: run.skipped_today,
            records_future_dated: run.future_dated,
            requeries: run.requeries,
            records_recovered_by_requery: run.recovered,
            failed_pages: run.failed.clone(),
        };
        record.settle();
        if !record.full_pages_outstanding.is_empty() {
            tracing::warn!(
                pages = ?record.full_pages_outstanding,
                "pages of the full load are still outstanding: the next incremental run fetches them (or send retry-failed now)"
            );
        }
        table_state.record(record);
        state::save(&self.platform.storage, bucket, &table_state).await?;
        Ok(self.outcome(request, partition, mode, kind, published, fetches, run))
    }

    /// The queries and pages of a plan, logged.
    fn fetches(&self, request: &IngestRequest, plan: Plan) -> Fetches {
        match plan {
            Plan::Full { reason } => {
                if let Some(since) = request.since {
                    tracing::warn!(since = %since, reason = %reason, "since is ignored: there is no full load to build on, so this run is a full load");
                }
                tracing::info!(reason = %reason, "full load");
                Fetches {
                    kind: ImportKind::Full,
                    queries: vec![Query::All],
                    days: Vec::new(),
                    cut: Vec::new(),
                    refetched: Vec::new(),
                    full_pages: Vec::new(),
                }
            }
            Plan::Incremental {
                days,
                cut,
                base,
                full_pages,
                refetched,
            } => {
                if !cut.is_empty() {
                    tracing::warn!(
                        metric = "tascomi_ingest_days_cut",
                        days_cut = cut.len(),
                        days = %state::describe_days(&cut),
                        max_lookback_days = self.max_lookback_days,
                        "lookback cap cuts days off: their updates are not fetched; run a full load to fill the gap"
                    );
                }
                if let Some(since) = request.since {
                    tracing::info!(
                        since = %since,
                        refetched = %state::describe_days(&refetched),
                        requested_by = %request.requested_by,
                        "since asked for: fetching every day from it again, whatever earlier imports fetched, not capped by the lookback"
                    );
                }
                if !full_pages.is_empty() {
                    tracing::info!(
                        base = %base,
                        pages = ?full_pages,
                        "fetching the pages of the base full load that failed"
                    );
                }
                tracing::info!(
                    base = %base,
                    days = days.len(),
                    fetch = %state::describe_days(&days),
                    "incremental load"
                );
                Fetches {
                    kind: ImportKind::Incremental,
                    queries: days.iter().map(|d| Query::UpdatedOn(*d)).collect(),
                    days,
                    cut,
                    refetched,
                    full_pages,
                }
            }
        }
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
            emit_metrics(table, &RunTotals::default(), 0);
            return Ok(IngestOutcome {
                partition,
                mode,
                import_kind: latest.kind,
                published: None,
                days: Vec::new(),
                days_cut: Vec::new(),
                days_refetched: Vec::new(),
                full_pages: Vec::new(),
                pages_fetched: 0,
                records_written: 0,
                records_skipped_today: 0,
                records_future_dated: 0,
                requeries: 0,
                records_recovered_by_requery: 0,
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
            run.fetch_pages(pages.iter().copied().collect(), None, Pass::Pages)
                .await
                .map(drop)
        }
        .await;
        if let Err(err) = result {
            run.abandon().await;
            return Err(err);
        }
        let (published, run) = run.publish(request, mode, latest.kind).await?;
        let mut record = latest.clone();
        record.run_id = published.run_id.clone();
        record.location = published.location.clone();
        record.finished_at = Utc::now();
        record.records_written = published.rows - run.failed.len() as u64;
        // Counts of the pages fetched again are added (those of the rows they replace are not
        // known any more): a retried page's "today" and future-dated records count per fetch.
        record.records_skipped_today += run.skipped_today;
        record.records_future_dated += run.future_dated;
        record.requeries += run.requeries;
        record.records_recovered_by_requery += run.recovered;
        record.failed_pages = run.failed.clone();
        record.settle();
        let kind = record.kind;
        table_state.record(record);
        state::save(&self.platform.storage, bucket, &table_state).await?;
        let fetches = Fetches {
            kind,
            queries: Vec::new(),
            days: Vec::new(),
            cut: Vec::new(),
            refetched: Vec::new(),
            full_pages: Vec::new(),
        };
        Ok(self.outcome(request, partition, mode, kind, published, fetches, run))
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
            future_dated: 0,
            requeries: 0,
            recovered: 0,
            failed: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        request: &IngestRequest,
        partition: PartitionRef,
        mode: IngestMode,
        import_kind: ImportKind,
        published: Published,
        fetches: Fetches,
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
                "pages failed after retries: recorded in the partition; the next night fetches them again (days, pages of a full load), or send a retry-failed request now"
            );
        }
        if run.future_dated > 0 {
            tracing::warn!(
                partition = %partition,
                records_future_dated = run.future_dated,
                "records whose last_updated is after today: kept"
            );
        }
        tracing::info!(
            partition = %partition,
            mode = ?mode,
            import_kind = ?import_kind,
            pages = run.pages_fetched,
            records = run.written,
            skipped_today = run.skipped_today,
            future_dated = run.future_dated,
            requeries = run.requeries,
            recovered_by_requery = run.recovered,
            failed_pages = run.failed.len(),
            "raw partition published"
        );
        emit_metrics(&request.table, &run, fetches.cut.len());
        IngestOutcome {
            partition,
            mode,
            import_kind,
            published: Some(published),
            days: fetches.days,
            days_cut: fetches.cut,
            days_refetched: fetches.refetched,
            full_pages: fetches.full_pages,
            pages_fetched: run.pages_fetched,
            records_written: run.written,
            records_skipped_today: run.skipped_today,
            records_future_dated: run.future_dated,
            requeries: run.requeries,
            records_recovered_by_requery: run.recovered,
            failed_pages: run.failed,
            ready,
        }
    }
}

/// The counts of one import as metrics (zeros included, so an alarm always has data).
fn emit_metrics(table: &TableName, run: &RunTotals, days_cut: usize) {
    common::metrics::emit(
        "ingest",
        table.as_str(),
        &[
            ("FailedPages", run.failed.len() as u64),
            ("Requeries", u64::from(run.requeries)),
            ("RecordsRecoveredByRequery", run.recovered),
            ("DaysCut", days_cut as u64),
            ("FutureDatedRecords", run.future_dated),
            ("RecordsWritten", run.written),
        ],
    );
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

/// How the pages fetched are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The first pass over a query: every record written and tallied; a page that fails is
    /// recorded.
    First,
    /// A re-query after drift: only records not received yet are written; a page that fails is
    /// not recorded (the drift check that follows says whether anything is still missing).
    Requery,
    /// Single pages fetched again (failed pages of an earlier import): written whole, a failure
    /// recorded, no drift check.
    Pages,
}

impl Run<'_> {
    /// Fetches every page of a query: page 1 (the count request, which also counts the pages),
    /// then the rest, a few at a time, written in page order as they arrive; then checks that
    /// the records add up and repairs drift ([`Run::repair_drift`]). A failed count request is
    /// recorded as a whole-query failed page.
    async fn fetch_query(&mut self, query: Query) -> Result<(), IngestError> {
        let client = self.stage.client.clone();
        let page = match client
            .fetch_page(self.table, query, 1, PageKind::Count)
            .await
        {
            Ok(page) => page,
            Err(err) => return self.write_failure(query, 1, err, true).await,
        };
        let pages = page.page_count();
        if let Some(err) = too_many_pages(self.table, query, pages) {
            return Err(err);
        }
        tracing::debug!(query = %query, pages, records = page.total_results, "query counted");
        let mut tally = Tally::new(page.total_results.unwrap_or(0));
        let failed_before = self.failed.len();
        self.write_page(1, page, Some(&mut tally), Pass::First)
            .await?;
        self.fetch_pages(query_pages(query, pages), Some(&mut tally), Pass::First)
            .await?;
        if self.failed.len() > failed_before {
            // The failed pages' records are missing anyway; a retry fetches those pages.
            tracing::info!(query = %query, "pages of this query failed: the drift check is skipped for it");
            return Ok(());
        }
        self.repair_drift(query, &mut tally).await
    }

    /// After a query's last page: when the distinct records received fall short of the count
    /// announced, or the count changed between pages, fetches the query again (at most
    /// [`MAX_REQUERIES`] times) and writes only the records not received yet. Still short after
    /// that: one whole-query failed page saying so, which the next night or a retry-failed run
    /// fetches again.
    async fn repair_drift(&mut self, query: Query, tally: &mut Tally) -> Result<(), IngestError> {
        let client = self.stage.client.clone();
        loop {
            let missing = match tally.verdict() {
                Verdict::Clean => break,
                Verdict::Drift { missing } => missing,
            };
            let received = tally.distinct();
            if tally.requeries >= MAX_REQUERIES {
                if missing == 0 {
                    tracing::warn!(query = %query, announced = tally.announced, received, requeries = tally.requeries, "the count kept changing between pages, but every announced record arrived");
                    break;
                }
                let error = format!(
                    "drift: {missing} of {} records missing after {} re-queries (table {}, query {query}): the API served some records twice and others never",
                    tally.announced, tally.requeries, self.table
                );
                tracing::error!(query = %query, announced = tally.announced, received, missing, "{error}; recorded as a failed query for the next night or a retry-failed run");
                let url = client.page_url(self.table, query, 1);
                self.record_failure(query, 1, url, None, error, true)
                    .await?;
                break;
            }
            tracing::warn!(
                query = %query,
                announced = tally.announced,
                received,
                missing,
                count_changed = tally.count_changed,
                requery = tally.requeries + 1,
                max_requeries = MAX_REQUERIES,
                "paging drift: the pages did not add up to the announced count; fetching the query again"
            );
            match client
                .fetch_page(self.table, query, 1, PageKind::Count)
                .await
            {
                Ok(page) => {
                    let pages = page.page_count();
                    if let Some(err) = too_many_pages(self.table, query, pages) {
                        return Err(err);
                    }
                    tally.start_requery(page.total_results.unwrap_or(0));
                    self.write_page(1, page, Some(tally), Pass::Requery).await?;
                    self.fetch_pages(query_pages(query, pages), Some(tally), Pass::Requery)
                        .await?;
                }
                Err(auth @ FetchError::Authentication { .. }) => {
                    return Err(IngestError::Authentication(auth));
                }
                Err(err) => {
                    tracing::warn!(query = %query, error = %err, "the re-query's count request failed");
                    let changed = tally.count_changed;
                    tally.start_requery(tally.announced);
                    tally.count_changed = changed;
                }
            }
        }
        if tally.requeries > 0 {
            tracing::info!(
                query = %query,
                requeries = tally.requeries,
                recovered = tally.recovered,
                "paging drift: records recovered by re-querying"
            );
        }
        self.requeries += tally.requeries;
        self.recovered += tally.recovered;
        Ok(())
    }

    /// Fetches the given pages (pages inside a count), a few at a time, writing each in order.
    async fn fetch_pages(
        &mut self,
        pages: Vec<(Query, u32)>,
        mut tally: Option<&mut Tally>,
        pass: Pass,
    ) -> Result<(), IngestError> {
        let client = self.stage.client.clone();
        let table = self.table.clone();
        let in_flight = client.settings().max_concurrent_requests.max(1);
        let mut results = futures::stream::iter(pages)
            .map(|(query, page)| {
                let client = client.clone();
                let table = table.clone();
                async move {
                    let result = client
                        .fetch_page(&table, query, page, PageKind::Inside)
                        .await;
                    (query, page, result)
                }
            })
            .buffered(in_flight);
        while let Some((query, page, result)) = results.next().await {
            match (result, pass) {
                (Ok(response), _) => {
                    self.write_page(page, response, tally.as_deref_mut(), pass)
                        .await?
                }
                (Err(auth @ FetchError::Authentication { .. }), _) => {
                    return Err(IngestError::Authentication(auth));
                }
                (Err(err), Pass::Requery) => {
                    tracing::warn!(query = %query, page, error = %err, "a page of the re-query failed");
                }
                (Err(err), Pass::First | Pass::Pages) => {
                    self.write_failure(query, page, err, false).await?
                }
            }
        }
        Ok(())
    }

    async fn write_page(
        &mut self,
        page: u32,
        mut response: PageResponse,
        tally: Option<&mut Tally>,
        pass: Pass,
    ) -> Result<(), IngestError> {
        if let Some(tally) = tally {
            tally.note_count(response.total_results);
            match pass {
                Pass::Requery => tally.keep_new(&mut response.records),
                Pass::First | Pass::Pages => tally.note_all(&response.records),
            }
        }
        self.pages_fetched += 1;
        if pass == Pass::Requery && response.records.is_empty() {
            return Ok(());
        }
        let (batch, rows) = self
            .rows
            .page(page, &response.url, response.status, response.records)
            .map_err(|source| IngestError::Rows {
                table: self.table.to_string(),
                page,
                source,
            })?;
        self.written += rows.written;
        self.skipped_today += rows.skipped_today;
        self.future_dated += rows.future_dated;
        self.writer.write(&batch).await?;
        Ok(())
    }

    /// Records a page that failed after retries: one row and a failed page in the state. An
    /// authentication failure is no page's failure: the run stops.
    async fn write_failure(
        &mut self,
        query: Query,
        page: u32,
        err: FetchError,
        whole_query: bool,
    ) -> Result<(), IngestError> {
        let error = err.to_string();
        match err {
            FetchError::Failed { url, status, .. } => {
                self.record_failure(query, page, url, status, error, whole_query)
                    .await
            }
            auth @ FetchError::Authentication { .. } => Err(IngestError::Authentication(auth)),
        }
    }

    async fn record_failure(
        &mut self,
        query: Query,
        page: u32,
        url: String,
        status: Option<u16>,
        error: String,
        whole_query: bool,
    ) -> Result<(), IngestError> {
        tracing::warn!(
            query = %query,
            page,
            url = %url,
            status = status.map(i64::from).unwrap_or(-1),
            whole_query,
            error = %error,
            "page failed: recorded"
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
            whole_query,
        });
        self.writer.write(&batch).await?;
        Ok(())
    }
}

/// Pages 2 to `pages` of a query (page 1 is its count request).
fn query_pages(query: Query, pages: u32) -> Vec<(Query, u32)> {
    (2..=pages).map(|page| (query, page)).collect()
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
    ///
    /// Partition parameters: `mode` (how this run fetched: full, incremental, retry-failed),
    /// `import_kind` (`full` or `incremental`: what the partition holds, kept by a retry-failed
    /// rewrite; snapshot-svc reads it to know a first snapshot comes from a full load), who asked,
    /// and the run's counts.
    async fn publish(
        self,
        request: &IngestRequest,
        mode: IngestMode,
        import_kind: ImportKind,
    ) -> Result<(Published, RunTotals), IngestError> {
        let totals = RunTotals {
            pages_fetched: self.pages_fetched,
            written: self.written,
            skipped_today: self.skipped_today,
            future_dated: self.future_dated,
            requeries: self.requeries,
            recovered: self.recovered,
            failed: self.failed,
        };
        let staged = self.writer.finish().await?;
        let parameters = BTreeMap::from([
            ("mode".to_owned(), mode_name(mode).to_owned()),
            (
                IMPORT_KIND_PARAMETER.to_owned(),
                import_kind_name(import_kind).to_owned(),
            ),
            ("requeries".to_owned(), totals.requeries.to_string()),
            (
                "records_future_dated".to_owned(),
                totals.future_dated.to_string(),
            ),
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
#[derive(Debug, Clone, Default)]
struct RunTotals {
    pages_fetched: u32,
    written: u64,
    skipped_today: u64,
    future_dated: u64,
    requeries: u32,
    recovered: u64,
    failed: Vec<FailedPage>,
}

/// The catalog partition parameter that says what kind of import a raw partition holds:
/// `full` or `incremental` ([`import_kind_name`]).
pub const IMPORT_KIND_PARAMETER: &str = "import_kind";

fn mode_name(mode: IngestMode) -> &'static str {
    match mode {
        IngestMode::Full => "full",
        IngestMode::Incremental => "incremental",
        IngestMode::RetryFailed => "retry-failed",
    }
}

/// The value of [`IMPORT_KIND_PARAMETER`].
pub fn import_kind_name(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Full => "full",
        ImportKind::Incremental => "incremental",
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
