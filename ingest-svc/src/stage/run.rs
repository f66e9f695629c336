//! One run's pages, as they are fetched and written: every page of a query with its drift check
//! and re-queries, single pages fetched again, failed pages recorded; then the partition
//! published with its parameters.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use common::TableName;
use common::layout::PartitionRef;
use common::messages::{IngestMode, IngestRequest};
use common::publish::{PartitionWriter, Published, new_run_id};
use futures::StreamExt;

use super::IngestStage;
use crate::client::{FetchError, PageKind, PageResponse, Query};
use crate::drift::{MAX_REQUERIES, Tally, Verdict};
use crate::error::{IngestError, too_many_pages};
use crate::raw::RowBuilder;
use crate::state::{FailedPage, ImportKind};

/// The pages of one run, as they are fetched and written.
pub(super) struct Run<'a> {
    pub stage: &'a IngestStage,
    pub table: &'a TableName,
    pub writer: PartitionWriter,
    pub rows: RowBuilder,
    totals: RunTotals,
}

/// A run's counts (once its writer is closed, all that is left of it).
#[derive(Debug, Clone, Default)]
pub(super) struct RunTotals {
    pub pages_fetched: u32,
    pub written: u64,
    pub skipped_today: u64,
    pub future_dated: u64,
    pub requeries: u32,
    pub recovered: u64,
    pub failed: Vec<FailedPage>,
}

impl IngestStage {
    /// A run writing `partition`, whose rows skip the records updated on `today`.
    pub(super) fn start_run<'a>(
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
            totals: RunTotals::default(),
        }
    }
}

/// How the pages fetched are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
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
    pub async fn fetch_query(&mut self, query: Query) -> Result<(), IngestError> {
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
        let failed_before = self.totals.failed.len();
        self.write_page(1, page, Some(&mut tally), Pass::First)
            .await?;
        self.fetch_pages(query_pages(query, pages), Some(&mut tally), Pass::First)
            .await?;
        if self.totals.failed.len() > failed_before {
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
        self.totals.requeries += tally.requeries;
        self.totals.recovered += tally.recovered;
        Ok(())
    }

    /// Fetches the given pages (pages inside a count), a few at a time, writing each in order.
    pub async fn fetch_pages(
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
        self.totals.pages_fetched += 1;
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
        self.totals.written += rows.written;
        self.totals.skipped_today += rows.skipped_today;
        self.totals.future_dated += rows.future_dated;
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
        self.totals.failed.push(FailedPage {
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

    /// Deletes what this run wrote: it publishes nothing.
    async fn abandon(self) {
        self.writer.abandon().await;
    }

    /// Publishes the run, or, when `fetched` says its fetching failed, deletes what it wrote
    /// and returns that error.
    pub async fn finish(
        self,
        fetched: Result<(), IngestError>,
        request: &IngestRequest,
        mode: IngestMode,
        import_kind: ImportKind,
    ) -> Result<(Published, RunTotals), IngestError> {
        match fetched {
            Ok(()) => self.publish(request, mode, import_kind).await,
            Err(err) => {
                self.abandon().await;
                Err(err)
            }
        }
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
        let totals = self.totals;
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

/// Pages 2 to `pages` of a query (page 1 is its count request).
fn query_pages(query: Query, pages: u32) -> Vec<(Query, u32)> {
    (2..=pages).map(|page| (query, page)).collect()
}
