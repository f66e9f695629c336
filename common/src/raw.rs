//! The raw layer's columns: what ingest-svc writes and parse-svc reads, defined once.
//!
//! Columns, in order: `page_number` (64-bit int), `import_api_url_requested`,
//! `import_api_status_code` (text, `"200"`; null when there was no response),
//! `import_exception_thrown` (null when the page was fetched), `<table>` (the record's JSON; null
//! on a failed-page row), `import_datetime` (timestamp of the import, UTC, microseconds),
//! `import_timestamp` (the same instant in epoch seconds, as Python prints a float:
//! `1637460000.123456`). These are the types of the old Glue jobs' `api_response_<table>` tables
//! ([`crate::bookkeeping`]). The partition columns come from the path and the catalog, never the
//! files.
//!
//! Raw partitions written before these types (an `int` page number and status) are still read:
//! a reader casts each bookkeeping column to its type here ([`conform`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::layout::TableName;

pub use crate::bookkeeping::{
    EXCEPTION, IMPORT_DATETIME, IMPORT_TIMESTAMP, PAGE_NUMBER, STATUS, URL,
};

/// The raw schema of a table.
pub fn schema(table: &TableName) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(PAGE_NUMBER, DataType::Int64, false),
        Field::new(URL, DataType::Utf8, false),
        Field::new(STATUS, DataType::Utf8, true),
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

/// `batch`, a raw file's rows, in the raw schema of `table`: columns taken by name, each cast to
/// the schema's type when it has another (an `int` page number or status of an earlier raw
/// partition: the status `200` becomes `"200"`). `Err` names a missing column, a column the
/// schema does not have, or one that will not cast.
pub fn conform(table: &TableName, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = schema(table);
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    if let Some(extra) = batch
        .schema()
        .fields()
        .iter()
        .find(|f| schema.field_with_name(f.name()).is_err())
    {
        return Err(ArrowError::SchemaError(format!(
            "the raw file has a column {} that the raw schema of {table} does not have",
            extra.name()
        )));
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let found = batch.column_by_name(field.name()).ok_or_else(|| {
                ArrowError::SchemaError(format!("the raw file has no column {}", field.name()))
            })?;
            if found.data_type() == field.data_type() {
                return Ok(found.clone());
            }
            cast(found, field.data_type()).map_err(|e| {
                ArrowError::CastError(format!(
                    "column {} is {} in the raw file and cannot be {}: {e}",
                    field.name(),
                    found.data_type(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int32Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::Int64Type;

    #[test]
    fn the_record_column_is_named_after_the_table_and_follows_the_exception() {
        let table = TableName::new("appeals").unwrap();
        let expected = [
            ("page_number", DataType::Int64, false),
            ("import_api_url_requested", DataType::Utf8, false),
            ("import_api_status_code", DataType::Utf8, true),
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

    /// A raw file of the types we wrote before: `int` page number and status, columns in
    /// another order.
    #[test]
    fn an_earlier_raw_file_is_cast_to_the_raw_schema() {
        let table = TableName::new("appeals").unwrap();
        let old = Schema::new(vec![
            Field::new("appeals", DataType::Utf8, true),
            Field::new(PAGE_NUMBER, DataType::Int32, false),
            Field::new(URL, DataType::Utf8, false),
            Field::new(STATUS, DataType::Int32, true),
            Field::new(EXCEPTION, DataType::Utf8, true),
            Field::new(
                IMPORT_DATETIME,
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new(IMPORT_TIMESTAMP, DataType::Utf8, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(old),
            vec![
                Arc::new(StringArray::from(vec![Some("{}"), None])),
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["u1", "u2"])),
                Arc::new(Int32Array::from(vec![Some(200), None])),
                Arc::new(StringArray::from(vec![None, Some("timeout")])),
                Arc::new(TimestampMicrosecondArray::from(vec![0, 0])),
                Arc::new(StringArray::from(vec!["1637460000", "1637460000"])),
            ],
        )
        .unwrap();
        let conformed = conform(&table, &batch).unwrap();
        assert_eq!(conformed.schema(), schema(&table));
        let pages = conformed.column(0).as_primitive::<Int64Type>();
        assert_eq!(pages.values().to_vec(), [1, 2]);
        let statuses = conformed.column(2).as_string::<i32>();
        assert_eq!(statuses.value(0), "200");
        assert!(statuses.is_null(1));
        assert_eq!(conformed.column(4).as_string::<i32>().value(0), "{}");

        // A batch already in the schema is returned as it is; a missing column is named.
        assert_eq!(conform(&table, &conformed).unwrap(), conformed);
        let err = conform(&table, &batch.project(&[0, 1]).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("no column import_api_url_requested"),
            "{err}"
        );
        let mut fields = batch.schema().fields().to_vec();
        fields[0] = Arc::new(Field::new("other", DataType::Utf8, true));
        let foreign =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec()).unwrap();
        let err = conform(&table, &foreign).unwrap_err();
        assert!(err.to_string().contains("a column other that"), "{err}");
    }
}
