//! Parsed partitions written directly, the input of recast-svc's tests: what parse-svc makes of
//! a raw partition, without running it.
//!
//! parse-svc's tests check that the two agree (`parse-svc/tests/production_tables.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::{cast, filter};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use common::bookkeeping::{BOOKKEEPING, OK_STATUS, STATUS, bookkeeping_fields};
use common::layout::{Layer, TableName};
use common::messages::PartitionReady;
use common::platform::Platform;
use serde_json::value::RawValue;

use crate::publish::publish_batches;
use crate::raw::{RawPage, imported_at, raw_batch};

/// A parsed partition as published, with what parse-svc's outcome would say of it.
#[derive(Debug, Clone)]
pub struct ParsedPartition {
    /// The message for recast-svc.
    pub next: PartitionReady,
    /// Rows written.
    pub rows: u64,
    /// Text columns made from record fields (the bookkeeping columns not counted).
    pub field_columns: usize,
}

/// Writes and publishes the parsed partition of `table` for `date` that parse-svc makes of the
/// raw `pages` (as [`crate::publish_raw`] would store them).
///
/// As parse-svc: the rows of pages with status `"200"` and a record, in order; one nullable text
/// column per record field, in byte order, then the bookkeeping columns of the row's page; a
/// string's text, `null` as null, any other value as its JSON text. Unlike parse-svc it keeps
/// every record, so give each id once, and it checks neither field names nor data quality.
pub async fn publish_parsed(
    platform: &Platform,
    table: &TableName,
    date: NaiveDate,
    pages: &[RawPage],
) -> anyhow::Result<ParsedPartition> {
    let raw = raw_batch(table, pages, imported_at(date));
    let statuses = raw
        .column_by_name(STATUS)
        .context("no status column")?
        .as_string::<i32>();
    let records = raw
        .column_by_name(table.as_str())
        .context("no record column")?
        .as_string::<i32>();
    let keep: arrow::array::BooleanArray = (0..raw.num_rows())
        .map(|i| {
            let ok = statuses.is_valid(i) && statuses.value(i) == OK_STATUS;
            Some(ok && records.is_valid(i))
        })
        .collect();
    let records = filter(records, &keep)?;
    let records = records.as_string::<i32>();

    let mut parsed: Vec<BTreeMap<String, Box<RawValue>>> = Vec::new();
    for record in records.iter().flatten() {
        parsed.push(serde_json::from_str(record).context("a record is not a JSON object")?);
    }
    let fields: BTreeSet<&str> = parsed
        .iter()
        .flat_map(|r| r.keys())
        .map(String::as_str)
        .collect();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len() + BOOKKEEPING.len());
    for field in &fields {
        let texts = parsed
            .iter()
            .map(|record| {
                record
                    .get(*field)
                    .map(|value| value_text(value))
                    .transpose()
            })
            .collect::<anyhow::Result<Vec<Option<Option<String>>>>>()?;
        let column: StringArray = texts.into_iter().map(Option::flatten).collect();
        columns.push(Arc::new(column));
    }
    for (name, t) in BOOKKEEPING {
        let column = raw.column_by_name(name).context("no bookkeeping column")?;
        columns.push(cast(&filter(column, &keep)?, &t.data_type())?);
    }
    let schema = Arc::new(Schema::new(
        fields
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, true))
            .chain(bookkeeping_fields())
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;

    let partition = platform.layout.partition(table, Layer::Parsed, date);
    let (published, next) = publish_batches(platform, &partition, schema, [batch]).await?;
    Ok(ParsedPartition {
        next,
        rows: published.rows,
        field_columns: fields.len(),
    })
}

/// A record value as parse-svc writes it: a string's text, `None` for null, the JSON text of
/// anything else (objects and arrays compacted).
fn value_text(value: &RawValue) -> anyhow::Result<Option<String>> {
    let text = value.get();
    Ok(match text.as_bytes().first() {
        Some(b'"') => Some(serde_json::from_str::<String>(text)?),
        Some(b'n') => None,
        Some(b'{' | b'[') => Some(serde_json::from_str::<serde_json::Value>(text)?.to_string()),
        _ => Some(text.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::read_published;

    #[tokio::test]
    async fn ok_records_become_sorted_text_columns_then_bookkeeping() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let table = TableName::new("appeals").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let pages = [
            RawPage::ok(1, vec![r#"{"id":"1","b":null,"a":{"x": [1, 2]}}"#.into()]),
            RawPage::failed(2, 500, "internal server error"),
            RawPage::ok(3, vec![r#"{"id":"2","n":12.50}"#.into()]),
        ];
        let parsed = publish_parsed(&platform, &table, date, &pages)
            .await
            .unwrap();
        assert_eq!((parsed.rows, parsed.field_columns), (2, 4));
        assert_eq!(parsed.next.layer, Layer::Parsed);

        let partition = platform.layout.partition(&table, Layer::Parsed, date);
        let batches = read_published(&platform, &partition)
            .await
            .unwrap()
            .unwrap();
        let batch = &batches[0];
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(&names[..4], ["a", "b", "id", "n"]);
        assert_eq!(names.len(), 4 + BOOKKEEPING.len());
        let text = |name: &str, row: usize| {
            let column = batch.column_by_name(name).unwrap().as_string::<i32>();
            column.is_valid(row).then(|| column.value(row).to_owned())
        };
        assert_eq!(text("a", 0).as_deref(), Some(r#"{"x":[1,2]}"#));
        assert_eq!(text("b", 0), None);
        assert_eq!(text("n", 1).as_deref(), Some("12.50"));
        let pages = batch
            .column_by_name("page_number")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(pages.values().to_vec(), [1, 3]);
        assert_eq!(text("import_api_status_code", 1).as_deref(), Some("200"));
    }

    #[tokio::test]
    async fn no_records_publish_an_empty_partition() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let table = TableName::new("appeals").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let parsed = publish_parsed(&platform, &table, date, &[]).await.unwrap();
        assert_eq!((parsed.rows, parsed.field_columns), (0, 0));
        let partition = platform.layout.partition(&table, Layer::Parsed, date);
        let batches = read_published(&platform, &partition)
            .await
            .unwrap()
            .unwrap();
        assert!(batches.is_empty());
    }
}
