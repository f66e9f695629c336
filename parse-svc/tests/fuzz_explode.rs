//! Fuzzing the record explode with property tests: any text given as a record is exploded or
//! refused with a `RecordError`, never a panic, and both passes agree on what they refuse; an
//! object of strings comes back as its own row, field by field.
//!
//! The regular run tries 256 cases per property with a fixed seed; a longer run:
//! `PROPTEST_CASES=20000 cargo test -p parse-svc --test fuzz_explode` (add
//! `PROPTEST_RNG_SEED=<n>` to explore other inputs).

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, ArrayRef, AsArray};
use parse_svc::explode::{Exploder, RecordError, collect_fields};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Map, Value};

/// The environment's `PROPTEST_*` settings, with a fixed seed unless `PROPTEST_RNG_SEED` is set,
/// and no regression files written into the repository.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7a5c_0903);
    }
    config.failure_persistence = None;
    config
}

/// Field names: Tascomi's kind, and anything at all.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,12}",
        ".{0,8}",
        prop::sample::select(vec!["id", "last_updated", "", "\"", "\\", "../x", "a b"])
            .prop_map(str::to_owned),
    ]
}

/// Finite floats only (JSON has no others), without rejecting cases.
fn finite_f64() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON value that is neither null nor a string.
fn other_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        prop::collection::vec(arb_json(), 0..5).prop_map(Value::Array),
        prop::collection::vec((name(), arb_json()), 0..5)
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
    ]
}

/// Text given as a record: arbitrary characters, arbitrary JSON, JSON with a field repeated,
/// and JSON cut short or with a byte changed.
fn record_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        arb_json().prop_map(|v| v.to_string()),
        (name(), arb_json(), arb_json()).prop_map(|(n, a, b)| format!(
            "{{{}:{a},{}:{b}}}",
            Value::from(n.clone()),
            Value::from(n)
        )),
        (arb_json(), any::<usize>(), any::<u8>()).prop_map(|(v, at, byte)| {
            let mut bytes = v.to_string().into_bytes();
            let at = at % bytes.len();
            if byte % 2 == 0 {
                bytes.truncate(at);
            } else {
                bytes[at] = byte;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }),
    ]
}

/// An object whose values are strings (as the API sends them) or null, with distinct names.
fn string_record() -> impl Strategy<Value = BTreeMap<String, Option<String>>> {
    prop::collection::btree_map(name(), prop::option::weighted(0.8, ".{0,16}"), 0..12)
}

fn to_json(record: &BTreeMap<String, Option<String>>, order: &[usize]) -> String {
    let entries: Vec<_> = record.iter().collect();
    let object: Map<String, Value> = order
        .iter()
        .map(|&i| entries[i])
        .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::from)))
        .collect();
    Value::Object(object).to_string()
}

fn cell(columns: &[ArrayRef], column: usize, row: usize) -> Option<String> {
    let column = columns[column].as_string::<i32>();
    column.is_valid(row).then(|| column.value(row).to_owned())
}

proptest! {
    #![proptest_config(config())]

    /// Pass 1 and pass 2 never panic and agree: a record pass 1 takes is one row in pass 2,
    /// unless it has a field twice; a record pass 1 refuses, pass 2 refuses too.
    #[test]
    fn any_record_text_is_exploded_or_refused(text in record_text()) {
        let mut fields = BTreeSet::new();
        let collected = collect_fields(&text, &mut fields);
        let mut exploder = Exploder::new(fields.iter().cloned());
        let pushed = exploder.push(&text);
        match (&collected, &pushed) {
            (Ok(()), Ok(())) => {
                let columns = exploder.finish();
                prop_assert_eq!(columns.len(), fields.len());
                prop_assert!(columns.iter().all(|c| c.len() == 1));
            }
            (Ok(()), Err(RecordError::DuplicateField(name))) => {
                prop_assert!(fields.contains(name));
            }
            // Known: pass 1 skips numbers without converting them, pass 2 re-parses a nested
            // object or array, so a number beyond f64 (`[1e309]`) is refused in pass 2 only: a
            // clear error naming page and row, never a panic. ingest-svc never stores such a
            // record (it parses every page into serde_json values, which refuse the number).
            (Ok(()), Err(RecordError::Malformed(reason)))
                if reason.starts_with("number out of range") => {}
            (Err(first), Err(second)) => {
                prop_assert!(!first.to_string().is_empty());
                prop_assert_eq!(
                    std::mem::discriminant(first),
                    std::mem::discriminant(second),
                    "{:?} / {:?}", first, second
                );
            }
            _ => prop_assert!(false, "pass 1 {collected:?}, pass 2 {pushed:?} for {text:?}"),
        }
    }

    /// Records of strings round-trip: every field's value is its cell, every other cell null,
    /// whatever the order of the fields in each record.
    #[test]
    fn string_records_round_trip(
        records in prop::collection::vec(
            string_record().prop_flat_map(|r| {
                let order = Just((0..r.len()).collect::<Vec<_>>()).prop_shuffle();
                (Just(r), order)
            }),
            1..8,
        ),
    ) {
        let texts: Vec<String> = records.iter().map(|(r, order)| to_json(r, order)).collect();
        let mut fields = BTreeSet::new();
        for text in &texts {
            collect_fields(text, &mut fields).unwrap();
        }
        let expected: BTreeSet<String> = records.iter().flat_map(|(r, _)| r.keys().cloned()).collect();
        prop_assert_eq!(&fields, &expected);
        let names: Vec<String> = fields.into_iter().collect();
        let mut exploder = Exploder::new(names.clone());
        for text in &texts {
            exploder.push(text).unwrap();
        }
        let columns = exploder.finish();
        for (row, (record, _)) in records.iter().enumerate() {
            for (column, name) in names.iter().enumerate() {
                let expected = record.get(name).cloned().flatten();
                prop_assert_eq!(cell(&columns, column, row), expected, "{} of row {}", name, row);
            }
        }
    }

    /// Any other JSON value becomes its compact JSON text: a number or boolean exactly as sent,
    /// a nested object or array the same JSON. (A float nested in an object or array is
    /// re-parsed by serde_json's default parser, which is not correctly rounded: its last digit
    /// may change, so nested floats are compared to within a few units in the last place.)
    #[test]
    fn other_values_become_their_json_text(value in other_value()) {
        let text = format!("{{\"v\":{value}}}");
        let mut exploder = Exploder::new(["v".to_string()]);
        exploder.push(&text).unwrap();
        let cell = cell(&exploder.finish(), 0, 0).unwrap();
        if value.is_array() || value.is_object() {
            let back: Value = serde_json::from_str(&cell).unwrap();
            prop_assert!(same_json(&back, &value), "{} became {}", value, cell);
        } else {
            prop_assert_eq!(cell, value.to_string());
        }
    }
}

/// JSON equality, with floats equal to within 1e-15 relative (and 1e-300 absolute, for
/// subnormal numbers, whose precision is less).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs()) + 1e-300
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same_json(x, y))
        }
        _ => a == b,
    }
}
