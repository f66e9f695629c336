//! The ingest stage: an [`IngestRequest`] in, one published raw partition and a
//! [`PartitionReady`] out.
//!
//! - **full** (asked for, or no earlier base full load, see [`crate::state`]): every page of the
//!   table;
//! - **incremental**: one `last_updated=YYYY-MM-DD` query per London day not yet fetched
//!   completely, from the base full load up to yesterday, capped at `max_lookback_days` (days
//!   cut off are named in a warning and recorded); plus every day from the request's `since`,
//!   uncapped; plus the pages of the base full load still outstanding (query "all records",
//!   page N), so a full load with a failed page is never followed by another full load
//!   (`stage/plan.rs`);
//! - **retry-failed**: exactly the pages that failed in the latest import, merged into that
//!   import's partition (rows of the retried pages replaced, never doubled) (`stage/retry.rs`).
//!
//! Every query is checked for paging drift ([`crate::drift`]): when the distinct records received
//! fall short of the announced count, or the count changed between pages, the query is fetched
//! again (at most [`MAX_REQUERIES`] times) and only records not received yet are written; still
//! short, the query is recorded as a failed page (whole query) for the next night or a retry
//! (`stage/run.rs`, which also publishes).
//!
//! Pages are written to the partition as they arrive (memory holds a few pages and 8 bytes per
//! record id of the current query, never the table). The partition is published (replacing any
//! earlier run of the same day) before the state is written, and the state before the next
//! message is sent, so a crash at any point leaves a message that is handled again with the same
//! result. At the end of each import the counts go out as metrics ([`common::metrics::emit`]).

mod plan;
mod retry;
mod run;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use common::TableName;
use common::config::{Env, PipelineFile};
use common::failure::{Outcome, handled};
use common::layout::{Layer, PartitionRef, london_today};
use common::messages::{IngestMode, IngestRequest, PartitionReady};
use common::platform::Platform;
use common::publish::Published;
use common::runner::{Failure, Handler};
use tracing::Instrument;

use crate::auth::Credentials;
use crate::client::{Query, TascomiClient};
pub use crate::drift::MAX_REQUERIES;
use crate::error::IngestError;
use crate::keys::KeySource;
use crate::settings::IngestSettings;
use crate::state::{self, FailedPage, ImportKind, ImportRecord, Plan};
use plan::Fetches;
pub use run::{IMPORT_KIND_PARAMETER, import_kind_name};
use run::{Pass, RunTotals};

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

    /// Handles one request. `Done` means the partition is published and the state recorded;
    /// `UpToDate` that there was nothing to do (a retry-failed request for a table without any
    /// recorded import), with the reason.
    pub async fn ingest(
        &self,
        request: &IngestRequest,
    ) -> Result<Outcome<IngestOutcome>, IngestError> {
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
                IngestMode::Full | IngestMode::Incremental => {
                    self.import(request, today).await.map(Outcome::Done)
                }
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
        let kind = fetches.kind;
        let mode = match kind {
            ImportKind::Full => IngestMode::Full,
            ImportKind::Incremental => IngestMode::Incremental,
        };
        let (published, run) = run.finish(result, request, mode, kind).await?;
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
        Ok(self.outcome(request, partition, mode, published, fetches, run))
    }

    /// The outcome of a run that published `published`, logged and emitted as metrics.
    fn outcome(
        &self,
        request: &IngestRequest,
        partition: PartitionRef,
        mode: IngestMode,
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
            import_kind = ?fetches.kind,
            pages = run.pages_fetched,
            records = run.written,
            skipped_today = run.skipped_today,
            future_dated = run.future_dated,
            requeries = run.requeries,
            recovered_by_requery = run.recovered,
            failed_pages = run.failed.len(),
            "raw partition published"
        );
        IngestOutcome::reported(
            &request.table,
            partition,
            mode,
            Some(published),
            fetches,
            run,
            ready,
        )
    }
}

impl IngestOutcome {
    /// The outcome of a run, its counts emitted as metrics (zeros included, so an alarm always
    /// has data).
    fn reported(
        table: &TableName,
        partition: PartitionRef,
        mode: IngestMode,
        published: Option<Published>,
        fetches: Fetches,
        run: RunTotals,
        ready: PartitionReady,
    ) -> Self {
        common::metrics::emit(
            "ingest",
            table.as_str(),
            &[
                ("FailedPages", run.failed.len() as u64),
                ("Requeries", u64::from(run.requeries)),
                ("RecordsRecoveredByRequery", run.recovered),
                ("DaysCut", fetches.cut.len() as u64),
                ("FutureDatedRecords", run.future_dated),
                ("RecordsWritten", run.written),
            ],
        );
        Self {
            partition,
            mode,
            import_kind: fetches.kind,
            published,
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

#[async_trait]
impl Handler for IngestStage {
    type Message = IngestRequest;

    fn stage(&self) -> &'static str {
        common::stage::Stage::Ingest.name()
    }

    fn is_known_table(&self, table: &TableName) -> bool {
        self.pipeline.contains(table)
    }

    async fn handle(&self, message: IngestRequest) -> Result<Vec<PartitionReady>, Failure> {
        handled(self.ingest(&message).await).map(|outcome| vec![outcome.ready])
    }
}
