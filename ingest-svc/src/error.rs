//! Why an ingest published nothing, classed once ([`Transience`]) into what the runner does with
//! the message.
//!
//! A retry-failed request for a table without any recorded import is no error: the stage
//! answers [`common::failure::Outcome::UpToDate`], which the runner discards with its reason.

use common::TableName;
use common::failure::Transience;
use common::publish::PublishError;
use common::source::SourceError;

use crate::client::{FetchError, Query};
use crate::state::StateError;

/// Pages one query may have at most: ten times what production's largest table (documents,
/// about 5 million records) needs at 50 records a page. The page list is built from the API's
/// headers, so a broken or hostile header must not make it unbounded.
pub const MAX_PAGES_PER_QUERY: u32 = 1_000_000;

/// Why an ingest published nothing.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Authentication(FetchError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Finding or reading the published partition a retry-failed run merges its pages into.
    #[error("retry-failed, the latest import's partition: {0}")]
    Previous(#[from] SourceError),
    #[error(
        "the partition {partition} holds a file that is not a raw file of this table ({key}): {message}"
    )]
    ForeignFile {
        partition: String,
        key: String,
        message: String,
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
    #[error(
        "retry-failed for table {table}: the latest import's partition {partition} is not in the catalog"
    )]
    LatestNotPublished { table: String, partition: String },
}

impl Transience for IngestError {
    /// Storage and catalog trouble may go away; the keys, the API's answers and the data do not.
    fn is_transient(&self) -> bool {
        match self {
            IngestError::State(e) => e.is_transient(),
            IngestError::Publish(e) => e.is_transient(),
            IngestError::Previous(e) => e.is_transient(),
            IngestError::Authentication(_)
            | IngestError::ForeignFile { .. }
            | IngestError::Rows { .. }
            | IngestError::TooManyPages { .. }
            | IngestError::LatestNotPublished { .. } => false,
        }
    }
}

/// The error for a query whose headers claim more than [`MAX_PAGES_PER_QUERY`] pages.
pub(crate) fn too_many_pages(table: &TableName, query: Query, pages: u32) -> Option<IngestError> {
    (pages > MAX_PAGES_PER_QUERY).then(|| IngestError::TooManyPages {
        table: table.to_string(),
        query: format!("{query:?}"),
        pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::runner::Failure;

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
