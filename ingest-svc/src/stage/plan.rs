//! What an import fetches: the queries and pages of a [`Plan`], logged.

use chrono::NaiveDate;
use common::messages::IngestRequest;

use super::IngestStage;
use crate::client::Query;
use crate::state::{self, ImportKind, Plan};

/// What an import fetches, once planned.
pub(super) struct Fetches {
    pub kind: ImportKind,
    pub queries: Vec<Query>,
    pub days: Vec<NaiveDate>,
    pub cut: Vec<NaiveDate>,
    pub refetched: Vec<NaiveDate>,
    pub full_pages: Vec<u32>,
}

impl Fetches {
    /// No query, no day: a retry-failed run, whose pages come from the import it repairs.
    pub fn none(kind: ImportKind) -> Self {
        Self {
            kind,
            queries: Vec::new(),
            days: Vec::new(),
            cut: Vec::new(),
            refetched: Vec::new(),
            full_pages: Vec::new(),
        }
    }
}

impl IngestStage {
    /// The queries and pages of a plan, logged.
    pub(super) fn fetches(&self, request: &IngestRequest, plan: Plan) -> Fetches {
        match plan {
            Plan::Full { reason } => {
                if let Some(since) = request.since {
                    tracing::warn!(since = %since, reason = %reason, "since is ignored: there is no full load to build on, so this run is a full load");
                }
                tracing::info!(reason = %reason, "full load");
                Fetches {
                    queries: vec![Query::All],
                    ..Fetches::none(ImportKind::Full)
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
}
