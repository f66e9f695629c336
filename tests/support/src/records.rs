//! Synthetic records shaped like Tascomi's.
//!
//! Records are JSON objects whose values are strings or null, with `id` and `last_updated`
//! (`YYYY-MM-DD HH:MM:SS`), as the API sends them; a [`RecordShape`] built from the column-type
//! dictionary gives each typed column a value of its type, so the whole pipeline can be driven
//! with the production dictionary's tables (752 fields for `applications`).

use std::collections::BTreeMap;

use common::dictionary::{ColumnType, ColumnTypes};
use serde_json::{Map, Value};

/// The fields of a synthetic table's records, and what kind of value each gets.
#[derive(Debug, Clone)]
pub struct RecordShape {
    fields: Vec<(String, Option<ColumnType>)>,
    /// Fields never left null (the id, `last_updated`, a completeness column).
    required: Vec<String>,
}

impl RecordShape {
    /// `id`, `last_updated` and `required`, the dictionary's columns for `table`, and text
    /// fields `field_NNN` until there are `total_fields` fields, in a fixed shuffled order (the
    /// API's order is not alphabetical). `required` fields are never null (say, the table's
    /// completeness column).
    pub fn from_dictionary(
        dictionary: &ColumnTypes,
        table: &str,
        total_fields: usize,
        required: &[&str],
    ) -> Self {
        let mut fields: BTreeMap<String, Option<ColumnType>> = dictionary
            .columns(table)
            .map(|(c, t)| (c.to_owned(), Some(t)))
            .collect();
        fields
            .entry("id".into())
            .or_insert(Some(ColumnType::Integer));
        fields
            .entry("last_updated".into())
            .or_insert(Some(ColumnType::Timestamp));
        for field in required {
            fields.entry((*field).to_owned()).or_insert(None);
        }
        let mut n = 0;
        while fields.len() < total_fields {
            fields.entry(format!("field_{n:03}")).or_insert(None);
            n += 1;
        }
        let mut fields: Vec<_> = fields.into_iter().collect();
        // A deterministic shuffle: reverse every other chunk of seven.
        for (i, chunk) in fields.chunks_mut(7).enumerate() {
            if i % 2 == 1 {
                chunk.reverse();
            }
        }
        let mut required: Vec<String> = required.iter().map(|f| (*f).to_owned()).collect();
        required.extend(["id".to_owned(), "last_updated".to_owned()]);
        Self { fields, required }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, Option<ColumnType>)> {
        self.fields.iter().map(|(n, t)| (n.as_str(), *t))
    }

    /// The record with this id, as the API sends it: every value a string or null.
    pub fn record(&self, id: u64) -> String {
        let mut object = Map::new();
        for (column, (name, column_type)) in self.fields.iter().enumerate() {
            let value = if name == "id" {
                Value::String(id.to_string())
            } else if !self.required.contains(name) && (id as usize + column).is_multiple_of(5) {
                Value::Null
            } else {
                Value::String(sample_value(name, *column_type, id, column))
            };
            object.insert(name.clone(), value);
        }
        Value::Object(object).to_string()
    }

    /// Records `first_id..first_id + count`.
    pub fn records(&self, first_id: u64, count: usize) -> Vec<String> {
        (first_id..first_id + count as u64)
            .map(|id| self.record(id))
            .collect()
    }
}

/// A valid text for a value of `column_type` that varies with the row and column.
fn sample_value(name: &str, column_type: Option<ColumnType>, id: u64, column: usize) -> String {
    let k = id as usize + column;
    match column_type {
        Some(ColumnType::Integer) => (k % 100_000).to_string(),
        Some(ColumnType::Long) => (5_300_000_000u64 + id).to_string(),
        Some(ColumnType::Float) => format!("{}.5", k % 1000),
        Some(ColumnType::Double) => format!("{}.25", k % 100_000),
        Some(ColumnType::Boolean) => {
            ["t", "f", "true", "false", "1", "0", "Yes", "no"][k % 8].into()
        }
        Some(ColumnType::Timestamp) => format!(
            "2026-{:02}-{:02} {:02}:{:02}:{:02}",
            k % 12 + 1,
            k % 28 + 1,
            k % 24,
            k % 60,
            id % 60
        ),
        Some(ColumnType::Date) => format!("2026-{:02}-{:02}", k % 12 + 1, k % 28 + 1),
        None => format!("{name} of record {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_give_typed_fields_valid_text() {
        let dictionary = ColumnTypes::parse(
            r#"[{"integer": {"t": ["n"]}, "boolean": {"t": ["b"]}, "timestamp": {"t": ["at"]}}]"#,
            "test",
        )
        .unwrap();
        let shape = RecordShape::from_dictionary(&dictionary, "t", 10, &["reference"]);
        assert_eq!(shape.len(), 10);
        let record: Map<String, Value> = serde_json::from_str(&shape.record(7)).unwrap();
        assert_eq!(record["id"], "7");
        assert!(record.values().all(|v| v.is_string() || v.is_null()));
        for id in 0..20 {
            let record: Map<String, Value> = serde_json::from_str(&shape.record(id)).unwrap();
            assert!(record["reference"].is_string());
            assert!(
                record["last_updated"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-")
            );
        }
    }
}
