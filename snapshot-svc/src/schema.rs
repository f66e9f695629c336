//! The snapshot's schema: the union of the previous snapshot's and the increments' columns, and
//! the one rule for a column whose type changed.
//!
//! A changed type is accepted only when every value of the old type is exactly representable in
//! the new one (a widening): integers to a wider integer, `Float32` to `Float64`, 8/16/32-bit
//! integers to `Float64`, a column of nulls to anything. Anything else, including any type to
//! text, stops the merge with a [`SchemaError`] naming the column and both types:
//! casting a typed column to text would silently change what every analyst query compares, and
//! a dictionary change of that kind is a rebuild, decided by a person (docs/snapshot.md).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

/// A column whose type changed in a way that cannot be cast safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "column {column} is {earlier_type} in {earlier} but {later_type} in {later}, and {later_type} does not hold every {earlier_type} value (nor the reverse): no safe cast"
)]
pub struct SchemaError {
    pub column: String,
    /// Where the first type was seen (`the previous snapshot`, `increment import_date=...`).
    pub earlier: String,
    pub earlier_type: String,
    pub later: String,
    pub later_type: String,
}

/// The type both `a` and `b` cast to without loss, if there is one.
pub fn widen(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    if a == b {
        return Some(a.clone());
    }
    let rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    match (a, b) {
        (Null, other) | (other, Null) => Some(other.clone()),
        _ if rank(a).is_some() && rank(b).is_some() => Some(if rank(a) > rank(b) {
            a.clone()
        } else {
            b.clone()
        }),
        (Int8 | Int16 | Int32 | Float32, Float64) | (Float64, Int8 | Int16 | Int32 | Float32) => {
            Some(Float64)
        }
        _ => None,
    }
}

/// Builds the union of schemas, in order of arrival: the columns of the first schema, then
/// each new column where it first appears. Every field is nullable (old rows get nulls in new
/// columns; new rows get nulls in columns the increment no longer has).
#[derive(Debug, Default)]
pub struct SchemaUnion {
    fields: Vec<Field>,
    /// Where each field's current type was first seen, for errors.
    origins: Vec<String>,
}

impl SchemaUnion {
    /// Adds a schema's columns; `origin` names it in errors.
    pub fn add(&mut self, schema: &Schema, origin: &str) -> Result<(), SchemaError> {
        for field in schema.fields() {
            self.add_column(field.name(), field.data_type(), origin)?;
        }
        Ok(())
    }

    pub fn add_column(
        &mut self,
        name: &str,
        data_type: &DataType,
        origin: &str,
    ) -> Result<(), SchemaError> {
        match self.fields.iter().position(|f| f.name() == name) {
            None => {
                self.fields.push(Field::new(name, data_type.clone(), true));
                self.origins.push(origin.to_owned());
            }
            Some(i) => {
                let existing = self.fields[i].data_type();
                let widened = widen(existing, data_type).ok_or_else(|| SchemaError {
                    column: name.to_owned(),
                    earlier: self.origins[i].clone(),
                    earlier_type: existing.to_string(),
                    later: origin.to_owned(),
                    later_type: data_type.to_string(),
                })?;
                if &widened != existing {
                    self.fields[i] = Field::new(name, widened, true);
                    self.origins[i] = origin.to_owned();
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn finish(self) -> SchemaRef {
        Arc::new(Schema::new(self.fields))
    }
}

/// True when a file written with `schema` can stand unchanged in a partition of `target`:
/// the same column names and types in the same order (nullability and metadata aside).
pub fn same_columns(schema: &Schema, target: &Schema) -> bool {
    schema.fields().len() == target.fields().len()
        && schema
            .fields()
            .iter()
            .zip(target.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
}

/// Reshapes a batch to `target`: columns matched by name and cast to the target type (only
/// widenings, checked by [`SchemaUnion`]), missing columns as nulls, and `constants` (name,
/// value) as text columns that replace any column of that name.
pub fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    constants: &[(&str, &str)],
) -> Result<RecordBatch, ArrowError> {
    let rows = batch.num_rows();
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = target
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef, ArrowError> {
            if let Some((_, value)) = constants.iter().find(|(name, _)| name == field.name()) {
                let text: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                    value, rows,
                )));
                return cast_with_options(&text, field.data_type(), &options);
            }
            match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
                Some(column) => cast_with_options(column, field.data_type(), &options),
                None => Ok(new_null_array(field.data_type(), rows)),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int32Array};
    use arrow::datatypes::Int64Type;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn new_columns_are_appended_in_order_of_arrival() {
        let mut union = SchemaUnion::default();
        union
            .add(
                &schema(&[("id", DataType::Int32), ("a", DataType::Utf8)]),
                "the previous snapshot",
            )
            .unwrap();
        union
            .add(
                &schema(&[("b", DataType::Utf8), ("id", DataType::Int32)]),
                "increment 1",
            )
            .unwrap();
        let names: Vec<_> = union
            .finish()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "a", "b"]);
    }

    #[test]
    fn widenings_are_safe_and_text_is_not() {
        assert_eq!(
            widen(&DataType::Int32, &DataType::Int64),
            Some(DataType::Int64)
        );
        assert_eq!(
            widen(&DataType::Int64, &DataType::Int32),
            Some(DataType::Int64)
        );
        assert_eq!(
            widen(&DataType::Float32, &DataType::Float64),
            Some(DataType::Float64)
        );
        assert_eq!(
            widen(&DataType::Int32, &DataType::Float64),
            Some(DataType::Float64)
        );
        assert_eq!(
            widen(&DataType::Null, &DataType::Utf8),
            Some(DataType::Utf8)
        );
        assert_eq!(
            widen(&DataType::Int64, &DataType::Float64),
            None,
            "2^53+1 is lost"
        );
        assert_eq!(widen(&DataType::Int32, &DataType::Utf8), None);
        assert_eq!(widen(&DataType::Utf8, &DataType::Int32), None);
        assert_eq!(widen(&DataType::Date32, &DataType::Utf8), None);
    }

    #[test]
    fn a_changed_type_names_the_column_and_both_types() {
        let mut union = SchemaUnion::default();
        union
            .add(&schema(&[("id", DataType::Int32)]), "the previous snapshot")
            .unwrap();
        let err = union
            .add(
                &schema(&[("id", DataType::Utf8)]),
                "increment import_date=20261121",
            )
            .unwrap_err();
        assert_eq!(err.column, "id");
        let text = err.to_string();
        let expected = "column id is Int32 in the previous snapshot but Utf8 in increment import_date=20261121";
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn conform_casts_fills_and_adds_constants() {
        let target = Arc::new(schema(&[
            ("id", DataType::Int64),
            ("new", DataType::Utf8),
            ("import_date", DataType::Utf8),
        ]));
        let batch = RecordBatch::try_new(
            Arc::new(schema(&[("id", DataType::Int32)])),
            vec![Arc::new(Int32Array::from(vec![1, 2]))],
        )
        .unwrap();
        let out = conform(&batch, &target, &[("import_date", "20261121")]).unwrap();
        assert_eq!(out.schema(), target);
        assert_eq!(out.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(out.column(1).null_count(), 2);
        assert_eq!(out.column(2).as_string::<i32>().value(1), "20261121");
        assert!(same_columns(&out.schema(), &target));
        assert!(!same_columns(&batch.schema(), &target));
    }
}
