//! JSON records to text columns: the two passes' per-record work, without I/O.
//!
//! A record must be a JSON object. Its values become text as follows:
//! - a JSON string: the string itself (escapes decoded);
//! - a number or a boolean: its JSON text as sent (`12.50` stays `12.50`, `true` is `true`);
//! - `null`: null;
//! - a nested object or array: its JSON text, compacted (`{"a":1}`).
//!
//! Fields are matched by exact name. A field the record lacks is null in that row.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Why one record could not be exploded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is a JSON {found}, not an object")]
    NotAnObject { found: &'static str },
    #[error("the record is not valid JSON: {0}")]
    Malformed(String),
    #[error("the record has the field {0:?} twice")]
    DuplicateField(String),
    /// Pass 2 met a field pass 1 did not see: the input changed between the passes.
    #[error("the record has the field {0:?}, which the first pass did not see")]
    UnknownField(String),
}

/// What kind of JSON value a text starts with, for the error on a record that is not an object.
fn json_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "boolean",
        Some(b'-' | b'0'..=b'9') => "number",
        _ => "value",
    }
}

fn malformed(err: serde_json::Error) -> RecordError {
    RecordError::Malformed(err.to_string())
}

/// Deserializes `text` (one whole JSON document) with `seed`, telling "not an object" apart
/// from "not JSON".
fn deserialize_record<'de, S>(text: &'de str, seed: S) -> Result<S::Value, RecordError>
where
    S: DeserializeSeed<'de>,
{
    if !text.trim_start().starts_with('{') {
        // Still report broken JSON as broken, whatever it starts with.
        return match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => Err(RecordError::NotAnObject {
                found: json_kind(text),
            }),
            Err(err) => Err(malformed(err)),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = seed.deserialize(&mut deserializer).map_err(malformed)?;
    deserializer.end().map_err(malformed)?;
    Ok(value)
}

/// A field name, borrowed from the input unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The field holding a record's id.
pub const ID_FIELD: &str = "id";
/// The field holding when a record was last updated (Tascomi's London wall-clock text, or null).
pub const LAST_UPDATED_FIELD: &str = "last_updated";

/// What pass 1 keeps of one record besides its field names: the values of [`ID_FIELD`] and
/// [`LAST_UPDATED_FIELD`] as pass 2 will write them (the same text as [`Exploder`] gives
/// their columns), `None` when the record lacks the field or it is null. Borrowed from the
/// record's text unless the value had escapes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordKey<'t> {
    pub id: Option<Cow<'t, str>>,
    pub last_updated: Option<Cow<'t, str>>,
}

/// Pass 1: adds the field names of one record to `fields`, reading past the values without
/// decoding them.
pub fn collect_fields(text: &str, fields: &mut BTreeSet<String>) -> Result<(), RecordError> {
    let mut collector = FieldCollector {
        fields: std::mem::take(fields),
        previous: Vec::new(),
    };
    let result = collector.add(text).map(drop);
    *fields = collector.fields;
    result
}

/// Pass 1 over many records: the union of their field names.
#[derive(Debug, Default)]
pub struct FieldCollector {
    fields: BTreeSet<String>,
    /// The previous record's field names in order: Tascomi sends its fields in the same order
    /// every time, so most names are matched by one comparison instead of a set lookup.
    previous: Vec<String>,
}

impl FieldCollector {
    /// Adds the field names of one record, reading past the values without decoding them,
    /// except those of its [`RecordKey`], which it returns.
    pub fn add<'t>(&mut self, text: &'t str) -> Result<RecordKey<'t>, RecordError> {
        deserialize_record(text, FieldNames(self))
    }

    /// The field names seen, in name order.
    pub fn into_fields(self) -> BTreeSet<String> {
        self.fields
    }
}

struct FieldNames<'s>(&'s mut FieldCollector);

impl<'de> DeserializeSeed<'de> for FieldNames<'_> {
    type Value = RecordKey<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RecordKey<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

/// Which part of the [`RecordKey`] a field is, if any.
#[derive(Clone, Copy)]
enum KeyPart {
    Id,
    LastUpdated,
}

impl<'de> Visitor<'de> for FieldNames<'_> {
    type Value = RecordKey<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordKey<'de>, A::Error> {
        let collector = self.0;
        let mut key = RecordKey::default();
        let mut position = 0;
        while let Some(Key(name)) = map.next_key::<Key>()? {
            let part = match name.as_ref() {
                ID_FIELD => Some(KeyPart::Id),
                LAST_UPDATED_FIELD => Some(KeyPart::LastUpdated),
                _ => None,
            };
            if collector.previous.get(position).map(String::as_str) != Some(name.as_ref()) {
                if !collector.fields.contains(name.as_ref()) {
                    collector.fields.insert(name.to_string());
                }
                match collector.previous.get_mut(position) {
                    Some(previous) => name.as_ref().clone_into(previous),
                    None => collector.previous.push(name.into_owned()),
                }
            }
            position += 1;
            // A field given twice keeps its last value here; pass 2 refuses such a record.
            match part {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(part) => {
                    let raw: &'de RawValue = map.next_value()?;
                    let text = value_text(raw).map_err(de::Error::custom)?;
                    match part {
                        KeyPart::Id => key.id = text,
                        KeyPart::LastUpdated => key.last_updated = text,
                    }
                }
            }
        }
        collector.previous.truncate(position);
        Ok(key)
    }
}

/// A record value as column text: see the module docs. `None` is null.
pub fn value_text(raw: &RawValue) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'"') if !text.contains('\\') => Some(Cow::Borrowed(&text[1..text.len() - 1])),
        Some(b'"') => Some(Cow::Owned(serde_json::from_str::<String>(text)?)),
        Some(b'n') => None,
        Some(b'{' | b'[') => Some(Cow::Owned(
            serde_json::from_str::<serde_json::Value>(text)?.to_string(),
        )),
        _ => Some(Cow::Borrowed(text)),
    })
}

/// Pass 2: explodes records into the columns of a fixed list of fields, one row per record.
///
/// After an error the exploder's columns are misaligned: drop it (the partition fails anyway).
#[derive(Debug)]
pub struct Exploder {
    names: Vec<String>,
    index: HashMap<String, usize>,
    builders: Vec<StringBuilder>,
    /// The record (counting from 1) that last set each column; 0 for none.
    set_by: Vec<u64>,
    records: u64,
    /// The column of the field at each position of the previous record: Tascomi sends its
    /// fields in the same order every time, so most names are matched by one comparison.
    previous_order: Vec<usize>,
    /// Why the record being pushed was refused, beyond what serde's errors can carry.
    refused: Option<RecordError>,
}

impl Exploder {
    /// An exploder for these fields, in this column order.
    pub fn new(fields: impl IntoIterator<Item = String>) -> Self {
        let names: Vec<String> = fields.into_iter().collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Self {
            builders: names.iter().map(|_| StringBuilder::new()).collect(),
            set_by: vec![0; names.len()],
            names,
            index,
            records: 0,
            previous_order: Vec::new(),
            refused: None,
        }
    }

    pub fn columns(&self) -> usize {
        self.names.len()
    }

    /// Appends one record as one row. `Err` for a record that is not a JSON object, has a
    /// field twice or has a field this exploder does not know.
    pub fn push(&mut self, text: &str) -> Result<(), RecordError> {
        self.records += 1;
        let result = deserialize_record(text, RecordSeed(self));
        if let Some(refused) = self.refused.take() {
            return Err(refused);
        }
        result?;
        let record = self.records;
        for (builder, set_by) in self.builders.iter_mut().zip(&self.set_by) {
            if *set_by != record {
                builder.append_null();
            }
        }
        Ok(())
    }

    /// The columns of the rows pushed since the last call, in field order; starts afresh.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect()
    }

    fn column_of(&mut self, position: usize, name: &str) -> Option<usize> {
        if let Some(&column) = self.previous_order.get(position)
            && self.names[column] == name
        {
            return Some(column);
        }
        let column = *self.index.get(name)?;
        if position < self.previous_order.len() {
            self.previous_order[position] = column;
        } else {
            self.previous_order.push(column);
        }
        Some(column)
    }
}

struct RecordSeed<'e>(&'e mut Exploder);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let exploder = self.0;
        let record = exploder.records;
        let mut position = 0;
        while let Some(Key(name)) = map.next_key::<Key>()? {
            let Some(column) = exploder.column_of(position, &name) else {
                exploder.refused = Some(RecordError::UnknownField(name.into_owned()));
                return Err(de::Error::custom("unknown field"));
            };
            position += 1;
            if exploder.set_by[column] == record {
                exploder.refused = Some(RecordError::DuplicateField(name.into_owned()));
                return Err(de::Error::custom("duplicate field"));
            }
            exploder.set_by[column] = record;
            let raw: &RawValue = map.next_value()?;
            match value_text(raw).map_err(de::Error::custom)? {
                Some(text) => exploder.builders[column].append_value(text),
                None => exploder.builders[column].append_null(),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn fields_of(records: &[&str]) -> Vec<String> {
        let mut fields = BTreeSet::new();
        for r in records {
            collect_fields(r, &mut fields).unwrap();
        }
        fields.into_iter().collect()
    }

    fn explode(records: &[&str]) -> (Vec<String>, Vec<ArrayRef>) {
        let fields = fields_of(records);
        let mut exploder = Exploder::new(fields.clone());
        for r in records {
            exploder.push(r).unwrap();
        }
        (fields, exploder.finish())
    }

    fn cell(columns: &[ArrayRef], fields: &[String], field: &str, row: usize) -> Option<String> {
        let i = fields.iter().position(|f| f == field).unwrap();
        let column = columns[i].as_string::<i32>();
        column.is_valid(row).then(|| column.value(row).to_owned())
    }

    #[test]
    fn the_union_of_fields_is_collected_in_order() {
        let fields = fields_of(&[r#"{"id":"1","b":"x"}"#, r#"{"a":null,"id":"2"}"#, "{}"]);
        assert_eq!(fields, ["a", "b", "id"]);
    }

    #[test]
    fn values_become_text_as_documented() {
        let record = r#"{"s":"plain","e":"tab\there \"q\" \u00e9","n":12.50,"i":-3,"t":true,
            "f":false,"z":null,"o":{"k": [1, "x"]},"a":[ ],"empty":""}"#;
        let (fields, columns) = explode(&[record]);
        let get = |f: &str| cell(&columns, &fields, f, 0);
        assert_eq!(get("s").as_deref(), Some("plain"));
        assert_eq!(get("e").as_deref(), Some("tab\there \"q\" é"));
        assert_eq!(get("n").as_deref(), Some("12.50"));
        assert_eq!(get("i").as_deref(), Some("-3"));
        assert_eq!(get("t").as_deref(), Some("true"));
        assert_eq!(get("f").as_deref(), Some("false"));
        assert_eq!(get("z"), None);
        assert_eq!(get("o").as_deref(), Some(r#"{"k":[1,"x"]}"#));
        assert_eq!(get("a").as_deref(), Some("[]"));
        assert_eq!(get("empty").as_deref(), Some(""));
    }

    #[test]
    fn absent_fields_are_null_and_rows_stay_aligned() {
        let records = [
            r#"{"id":"1","name":"a"}"#,
            r#"{"name":"b","id":"2","extra":"x"}"#,
            r#"{"id":"3"}"#,
        ];
        let (fields, columns) = explode(&records);
        assert!(columns.iter().all(|c| c.len() == 3));
        assert_eq!(cell(&columns, &fields, "extra", 0), None);
        assert_eq!(cell(&columns, &fields, "extra", 1).as_deref(), Some("x"));
        assert_eq!(cell(&columns, &fields, "name", 1).as_deref(), Some("b"));
        assert_eq!(cell(&columns, &fields, "id", 1).as_deref(), Some("2"));
        assert_eq!(cell(&columns, &fields, "name", 2), None);
    }

    #[test]
    fn pass_1_returns_id_and_last_updated_as_pass_2_writes_them() {
        let mut collector = FieldCollector::default();
        let records = [
            r#"{"id":"7","x":{"id":"nested"},"last_updated":"2026-11-20 10:00:00"}"#,
            r#"{"last_updated":null,"id":12}"#,
            r#"{"id":"é","other":"x"}"#,
        ];
        let keys: Vec<RecordKey> = records.iter().map(|r| collector.add(r).unwrap()).collect();
        assert_eq!(keys[0].id.as_deref(), Some("7"));
        assert_eq!(keys[0].last_updated.as_deref(), Some("2026-11-20 10:00:00"));
        assert_eq!(keys[1].id.as_deref(), Some("12"));
        assert_eq!(keys[1].last_updated, None);
        assert_eq!(keys[2].id.as_deref(), Some("e\u{301}"));
        assert_eq!(keys[2].last_updated, None);
        // The same text as the exploded columns.
        let (fields, columns) = explode(&records);
        for (row, key) in keys.iter().enumerate() {
            assert_eq!(
                cell(&columns, &fields, "id", row).as_deref(),
                key.id.as_deref()
            );
        }
    }

    #[test]
    fn escaped_field_names_match() {
        let (fields, columns) = explode(&[r#"{"na\u006de":"x"}"#, r#"{"name":"y"}"#]);
        assert_eq!(fields, ["name"]);
        assert_eq!(cell(&columns, &fields, "name", 0).as_deref(), Some("x"));
        assert_eq!(cell(&columns, &fields, "name", 1).as_deref(), Some("y"));
    }

    #[test]
    fn finish_starts_a_new_batch() {
        let mut exploder = Exploder::new(["id".to_string()]);
        exploder.push(r#"{"id":"1"}"#).unwrap();
        assert_eq!(exploder.finish()[0].len(), 1);
        exploder.push(r#"{"id":"2"}"#).unwrap();
        exploder.push(r#"{"id":"3"}"#).unwrap();
        let columns = exploder.finish();
        assert_eq!(columns[0].as_string::<i32>().value(1), "3");
    }

    #[test]
    fn records_that_are_not_objects_are_rejected_by_kind() {
        let mut fields = BTreeSet::new();
        let cases = [
            ("[1,2]", RecordError::NotAnObject { found: "array" }),
            ("\"text\"", RecordError::NotAnObject { found: "string" }),
            ("null", RecordError::NotAnObject { found: "null" }),
            (" 42", RecordError::NotAnObject { found: "number" }),
        ];
        for (text, expected) in cases {
            assert_eq!(
                collect_fields(text, &mut fields).unwrap_err(),
                expected,
                "{text}"
            );
            let mut exploder = Exploder::new(["id".to_string()]);
            assert_eq!(exploder.push(text).unwrap_err(), expected, "{text}");
        }
        assert!(fields.is_empty());
        for broken in [r#"{"id":"1""#, r#"{"id":"1"} trailing"#, "[1", ""] {
            let err = collect_fields(broken, &mut fields).unwrap_err();
            assert!(
                matches!(err, RecordError::Malformed(_)),
                "{broken}: {err:?}"
            );
        }
    }

    #[test]
    fn duplicate_and_unknown_fields_are_errors() {
        let mut exploder = Exploder::new(["id".to_string()]);
        assert_eq!(
            exploder.push(r#"{"id":"1","id":"2"}"#).unwrap_err(),
            RecordError::DuplicateField("id".into())
        );
        let mut exploder = Exploder::new(["id".to_string()]);
        assert_eq!(
            exploder.push(r#"{"id":"1","new":"2"}"#).unwrap_err(),
            RecordError::UnknownField("new".into())
        );
    }
}
