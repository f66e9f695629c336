//! retry-failed: the pages that failed in the latest import fetched again and merged into that
//! import's partition, whose other rows are copied ([`common::source`]) so that a page is
//! replaced, never doubled.

use std::collections::BTreeSet;

use arrow::array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray};
use chrono::{NaiveDate, Utc};
use common::failure::Outcome;
use common::layout::Layer;
use common::messages::{IngestMode, IngestRequest, PartitionReady};
use common::raw::{PAGE_NUMBER, URL};
use common::source::{PartitionReader, PublishedFiles, published_files};

use super::plan::Fetches;
use super::run::{Pass, Run, RunTotals};
use super::{IngestOutcome, IngestStage};
use crate::client::Query;
use crate::error::IngestError;
use crate::state;

/// Rows read at a time when an earlier partition is copied.
const COPY_BATCH_ROWS: usize = 512;

impl IngestStage {
    /// Fetches the failed pages of the table's latest import again into that import's
    /// partition. `UpToDate` when the table has no recorded import.
    pub(super) async fn retry_failed(
        &self,
        request: &IngestRequest,
    ) -> Result<Outcome<IngestOutcome>, IngestError> {
        let table = &request.table;
        let bucket = &self.platform.layout.raw_bucket;
        let mut table_state = state::load(&self.platform.storage, bucket, table).await?;
        let Some(latest) = table_state.latest().cloned() else {
            return Ok(Outcome::UpToDate(format!(
                "table {table} has no recorded import"
            )));
        };
        let partition = self
            .platform
            .layout
            .partition(table, Layer::Raw, latest.import_date);
        let Some(current) = published_files(&self.platform, &partition).await? else {
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
                current.run_id.unwrap_or_else(|| latest.run_id.clone()),
                request.as_of,
            );
            return Ok(Outcome::Done(IngestOutcome::reported(
                table,
                partition,
                mode,
                None,
                Fetches::none(latest.kind),
                RunTotals::default(),
                ready,
            )));
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
            run.copy_except(&current, &whole, &pages).await?;
            for query in &whole {
                run.fetch_query(*query).await?;
            }
            run.fetch_pages(pages.iter().copied().collect(), None, Pass::Pages)
                .await
        }
        .await;
        let (published, run) = run.finish(result, request, mode, latest.kind).await?;
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
        let fetches = Fetches::none(kind);
        Ok(Outcome::Done(self.outcome(
            request, partition, mode, published, fetches, run,
        )))
    }
}

impl Run<'_> {
    /// Copies the rows of the published partition `current`, except those of the queries and
    /// pages about to be fetched again (failed-page rows, or the rows of an earlier retry whose
    /// state was not recorded), so the merged partition never doubles a page.
    async fn copy_except(
        &mut self,
        current: &PublishedFiles,
        whole: &BTreeSet<Query>,
        pages: &BTreeSet<(Query, u32)>,
    ) -> Result<(), IngestError> {
        let partition = self.writer.partition().clone();
        let storage = self.stage.platform.storage.clone();
        let mut reader = PartitionReader::new(storage, &partition, current, COPY_BATCH_ROWS);
        while let Some((file, batch)) = reader.next_batch().await? {
            let foreign = |message: String| IngestError::ForeignFile {
                partition: partition.describe(),
                key: current.files[file].key.clone(),
                message,
            };
            // In the raw schema, cast from the types of an earlier partition if need be.
            let batch = common::raw::conform(&partition.table, &batch)
                .map_err(|e| foreign(e.to_string()))?;
            let keep = keep_mask(&batch, whole, pages).map_err(foreign)?;
            let kept = arrow::compute::filter_record_batch(&batch, &keep)
                .map_err(|e| foreign(e.to_string()))?;
            self.writer.write(&kept).await?;
        }
        Ok(())
    }
}

/// True for the rows to keep: those not of a query or page about to be fetched again.
fn keep_mask(
    batch: &RecordBatch,
    whole: &BTreeSet<Query>,
    pages: &BTreeSet<(Query, u32)>,
) -> Result<BooleanArray, String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or(format!("no column {name}"))
    };
    let page_numbers = column(PAGE_NUMBER)?
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or(format!("{PAGE_NUMBER} is not a bigint column"))?;
    let urls = column(URL)?
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or(format!("{URL} is not a text column"))?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let query = Query::of_url(if urls.is_null(i) { "" } else { urls.value(i) });
            let page = u32::try_from(page_numbers.value(i)).unwrap_or(0);
            Some(!(whole.contains(&query) || pages.contains(&(query, page))))
        })
        .collect())
}

fn query_of(day: Option<NaiveDate>) -> Query {
    day.map_or(Query::All, Query::UpdatedOn)
}
