//! The raw layer's columns: what ingest-svc writes and parse-svc reads, defined once.
//!
//! Columns, in order: `page_number` (int), `import_api_url_requested`, `import_api_status_code`
//! (int, null when there was no response), `import_exception_thrown` (null when the page was
//! fetched), `<table>` (the record's JSON; null on a failed-page row), `import_datetime`
//! (timestamp of the import, UTC, microseconds), `import_timestamp` (the same instant in epoch
//! seconds, as text). The partition columns come from the path and the catalog, never the files.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::layout::TableName;

pub use crate::bookkeeping::{
    EXCEPTION, IMPORT_DATETIME, IMPORT_TIMESTAMP, PAGE_NUMBER, STATUS, URL,
};

/// The raw schema of a table.
pub fn schema(table: &TableName) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(PAGE_NUMBER, DataType::Int32, false),
        Field::new(URL, DataType::Utf8, false),
        Field::new(STATUS, DataType::Int32, true),
        Field::new(EXCEPTION, DataType::Utf8, true),
        Field::new(table.as_str(), DataType::Utf8, true),
        Field::new(
            IMPORT_DATETIME,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new(IMPORT_TIMESTAMP, DataType::Utf8, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_column_is_named_after_the_table_and_follows_the_exception() {
        let table = TableName::new("appeals").unwrap();
        let expected = [
            ("page_number", DataType::Int32, false),
            ("import_api_url_requested", DataType::Utf8, false),
            ("import_api_status_code", DataType::Int32, true),
            ("import_exception_thrown", DataType::Utf8, true),
            ("appeals", DataType::Utf8, true),
            (
                "import_datetime",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            ("import_timestamp", DataType::Utf8, false),
        ];
        let schema = schema(&table);
        let found: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(found, expected);
    }
}
