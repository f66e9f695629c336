//! The one rule that decides which version of a record a snapshot keeps, when the increments it
//! applies hold several rows with the same id:
//! 1. the row with the latest `last_updated` wins; a null `last_updated` is older than any date;
//! 2. on a tie, the row from the latest import date wins;
//! 3. on a tie again (the same record delivered twice, e.g. by two pages of one import), the
//!    row read last wins, so identical leftovers collapse to one row.
//!
//! This module is the one place that builds the key encoders (ids and `last_updated` as byte
//! strings that compare like the values) and compares two versions. Both ways of applying the
//! rule use it: the held increment ([`crate::increment::Preparer`]) and the streamed first
//! snapshot ([`crate::increment::InOrderWinners`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, Row, RowConverter, Rows, SortField};
use chrono::NaiveDate;

use crate::error::{Result, SnapshotError};

/// The record id every Tascomi resource has.
pub const ID_COLUMN: &str = "id";
/// When a record last changed (`YYYY-MM-DD HH:MM:SS` text or a timestamp; may be null).
pub const LAST_UPDATED_COLUMN: &str = "last_updated";

/// Encodes values of one column as byte strings that compare like the values (Arrow's row
/// format), so ids of any type sort, hash and compare the same way everywhere in the merge.
/// A null encodes below every value.
#[derive(Debug)]
pub struct KeyEncoder {
    converter: RowConverter,
    data_type: DataType,
}

impl KeyEncoder {
    pub fn new(data_type: &DataType) -> Result<Self, ArrowError> {
        Ok(Self {
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])?,
            data_type: data_type.clone(),
        })
    }

    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// The keys of a column of this encoder's type.
    pub fn encode(&self, column: &ArrayRef) -> Result<Rows, ArrowError> {
        self.converter.convert_columns(std::slice::from_ref(column))
    }
}

/// The encoder of the ids of `table`'s snapshot, whose schema is `target`.
pub fn id_encoder(target: &Schema, table: &str) -> Result<KeyEncoder> {
    let field = target
        .field_with_name(ID_COLUMN)
        .map_err(|_| SnapshotError::MissingColumn {
            what: format!("the snapshot of {table}"),
            column: ID_COLUMN.into(),
        })?;
    KeyEncoder::new(field.data_type()).map_err(|source| SnapshotError::Arrow {
        what: format!("{table} ids"),
        source,
    })
}

/// The columns of `target` the rule reads (the id and `last_updated`), in `target`'s order:
/// enough to find the winners without reading the rest of the rows.
pub fn rule_columns(target: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .filter(|f| [ID_COLUMN, LAST_UPDATED_COLUMN].contains(&f.name().as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// The rule's columns in one schema, with their encoders: built once, applied batch by batch.
#[derive(Debug)]
pub struct WinnerRule {
    id_index: usize,
    ids: Arc<KeyEncoder>,
    /// Without a `last_updated` column, every row counts as undated.
    last_updated: Option<(usize, KeyEncoder)>,
}

impl WinnerRule {
    /// The rule over batches of `schema`; `ids` encodes its id column.
    pub fn new(
        schema: &Schema,
        id_column: &str,
        last_updated_column: &str,
        ids: Arc<KeyEncoder>,
    ) -> Result<Self, ArrowError> {
        let id_index = schema.index_of(id_column)?;
        let last_updated = match schema.index_of(last_updated_column) {
            Ok(i) => Some((i, KeyEncoder::new(schema.field(i).data_type())?)),
            Err(_) => None,
        };
        Ok(Self {
            id_index,
            ids,
            last_updated,
        })
    }

    /// The ids and versions of a batch's rows, encoded once for the batch.
    pub fn keys<'a>(&self, batch: &'a RecordBatch) -> Result<BatchKeys<'a>, ArrowError> {
        let id_column = batch.column(self.id_index);
        let ids = self.ids.encode(id_column)?;
        let last_updated = match &self.last_updated {
            Some((i, encoder)) => Some((encoder.encode(batch.column(*i))?, batch.column(*i))),
            None => None,
        };
        Ok(BatchKeys {
            id_column,
            ids,
            last_updated,
        })
    }
}

/// The encoded ids and `last_updated` values of one batch.
#[derive(Debug)]
pub struct BatchKeys<'a> {
    id_column: &'a ArrayRef,
    ids: Rows,
    last_updated: Option<(Rows, &'a ArrayRef)>,
}

impl BatchKeys<'_> {
    /// The id of `row`, or `None` when it has none (such a row cannot be merged; the
    /// data-quality gate counts it).
    pub fn id(&self, row: usize) -> Option<Row<'_>> {
        (!self.id_column.is_null(row)).then(|| self.ids.row(row))
    }

    /// The version of `row`, read from the increment imported on `import_date`.
    pub fn version(&self, row: usize, import_date: NaiveDate) -> Version<'_> {
        let last_updated = self
            .last_updated
            .as_ref()
            .filter(|(_, column)| !column.is_null(row))
            .map(|(rows, _)| rows.row(row));
        Version {
            last_updated,
            import_date,
        }
    }
}

/// What ranks the versions of one id: `last_updated` (a null below every value), then the import
/// date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version<'a> {
    last_updated: Option<Row<'a>>,
    import_date: NaiveDate,
}

impl Version<'_> {
    /// The rule: a version read after `held` replaces it unless `held` is newer (so on a full
    /// tie the row read last wins).
    pub fn replaces(&self, held: &Version<'_>) -> bool {
        *self >= *held
    }

    /// The version kept beyond its batch.
    pub fn owned(&self) -> HeldVersion {
        HeldVersion {
            last_updated: self.last_updated.map(|row| row.owned()),
            import_date: self.import_date,
        }
    }
}

/// The best version of an id found so far, kept across batches.
#[derive(Debug, Clone)]
pub struct HeldVersion {
    last_updated: Option<OwnedRow>,
    import_date: NaiveDate,
}

impl HeldVersion {
    pub fn version(&self) -> Version<'_> {
        Version {
            last_updated: self.last_updated.as_ref().map(OwnedRow::row),
            import_date: self.import_date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::Field;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn versions_rank_by_last_updated_then_import_date_and_a_tie_goes_to_the_later_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("last_updated", DataType::Utf8, true),
            Field::new("id", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("2026-11-20 10:00:00"),
                    Some("2026-11-19 10:00:00"),
                    None,
                    Some("2026-11-20 10:00:00"),
                ])),
                Arc::new(Int32Array::from(vec![Some(1), Some(1), None, Some(1)])),
            ],
        )
        .unwrap();
        let ids = Arc::new(KeyEncoder::new(&DataType::Int32).unwrap());
        let rule = WinnerRule::new(&schema, ID_COLUMN, LAST_UPDATED_COLUMN, ids).unwrap();
        let keys = rule.keys(&batch).unwrap();
        assert!(keys.id(2).is_none());
        assert_eq!(keys.id(0), keys.id(3));
        let newer = keys.version(0, day(20));
        let older = keys.version(1, day(21));
        let undated = keys.version(2, day(22));
        assert!(!older.replaces(&newer), "last_updated before import date");
        assert!(newer.replaces(&older));
        assert!(!undated.replaces(&older), "a null is older than any date");
        assert!(keys.version(3, day(20)).replaces(&newer), "a full tie");
        assert!(!keys.version(3, day(19)).replaces(&newer));
        assert!(keys.version(3, day(21)).replaces(&newer.owned().version()));
        assert_eq!(
            rule_columns(&Schema::new(vec![
                Field::new("value", DataType::Utf8, true),
                Field::new("id", DataType::Int32, true),
                Field::new("last_updated", DataType::Utf8, true),
            ]))
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
            ["id", "last_updated"]
        );
    }
}
