//! Fuzzing the casts with property tests: for every dictionary type, any text becomes a value or
//! a null counted as a failure, never a panic; a valid value reads back as itself; an invalid
//! one is null and counted, with at most `MAX_EXAMPLES` examples. The casts are Spark's
//! non-ANSI ones: an integer's fraction is truncated (and counted when it was not all zeros),
//! `float` and `double` are both 64-bit doubles, booleans take Spark's words.
//!
//! The regular run tries 256 cases per property with a fixed seed; a longer run:
//! `PROPTEST_CASES=20000 cargo test -p recast-svc --test fuzz_cast` (add
//! `PROPTEST_RNG_SEED=<n>` to explore other inputs).

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use chrono::{NaiveDate, NaiveDateTime};
use common::dictionary::ColumnType;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use recast_svc::cast::{MAX_EXAMPLES, cast_text};

/// The environment's `PROPTEST_*` settings, with a fixed seed unless `PROPTEST_RNG_SEED` is set,
/// and no regression files written into the repository.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7a5c_0904);
    }
    config.failure_persistence = None;
    config
}

const TYPES: [ColumnType; 7] = [
    ColumnType::Integer,
    ColumnType::Long,
    ColumnType::Float,
    ColumnType::Double,
    ColumnType::Boolean,
    ColumnType::Timestamp,
    ColumnType::Date,
];

/// Text as the API might send it: anything, or something close to a value of some type.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "[ \t]{0,2}[-+]?[0-9]{0,25}([.,][0-9]{0,6})?([eE][-+]?[0-9]{1,4})?[ \t]{0,2}",
        "[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}([ T][0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3}(\\.[0-9]{0,12})?)?)?(Z|[-+][0-9]{2}:?[0-9]{2})?",
        "(?i)(t|f|true|false|yes|no|y|n|on|off|nan|inf|infinity|null|none)",
        "[\\PC\u{0}-\u{1f}\u{7f}-\u{9f}]{0,8}",
    ]
}

/// Finite floats, without rejecting cases.
fn finite_f64() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// True for text an integer cast reads but not cleanly (a model of Spark's rule, written
/// apart from the cast): an optional sign, digits, `.` and digits, where the fraction has a
/// digit other than 0 or there is no digit at all.
fn truncates(value: &str) -> bool {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let Some((whole, fraction)) = unsigned.split_once('.') else {
        return false;
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    digits(whole)
        && digits(fraction)
        && (fraction.bytes().any(|b| b != b'0') || (whole.is_empty() && fraction.is_empty()))
}

fn finite_f32() -> impl Strategy<Value = f32> {
    use prop::num::f32::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// A column of texts with nulls.
fn column() -> impl Strategy<Value = Vec<Option<String>>> {
    prop::collection::vec(prop::option::weighted(0.9, text()), 0..40)
}

fn strings(values: &[Option<String>]) -> StringArray {
    values.iter().map(|v| v.as_deref()).collect()
}

/// Whitespace around a value, which the cast trims.
fn padding() -> impl Strategy<Value = (String, String)> {
    ("[ \t\n]{0,2}", "[ \t\n]{0,2}")
}

/// Casts one value and returns the cast column and the failure count.
fn cast_one(value: &str, to: ColumnType) -> (std::sync::Arc<dyn Array>, usize) {
    let cast = cast_text(&StringArray::from(vec![value]), to).unwrap();
    (cast.array, cast.failures)
}

proptest! {
    #![proptest_config(config())]

    /// Any column casts to every type: same length, a null stays null, every present value
    /// that became null, or an integer whose fraction was truncated, is counted, and the
    /// examples are some of those values.
    #[test]
    fn any_text_casts_or_is_a_counted_null(values in column()) {
        let input = strings(&values);
        for to in TYPES {
            let cast = cast_text(&input, to).unwrap();
            prop_assert_eq!(cast.array.len(), input.len());
            prop_assert_eq!(cast.array.data_type(), &to.data_type());
            let integer = matches!(to, ColumnType::Integer | ColumnType::Long);
            let failed: Vec<&str> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_deref().map(|v| (i, v)))
                .filter(|(i, v)| {
                    let v = v.trim();
                    !v.is_empty() && (cast.array.is_null(*i) || (integer && truncates(v)))
                })
                .map(|(_, v)| v.trim())
                .collect();
            for (i, v) in values.iter().enumerate() {
                if v.as_deref().is_none_or(|v| v.trim().is_empty()) {
                    prop_assert!(cast.array.is_null(i), "{:?} as {} is null", v, to.name());
                }
            }
            prop_assert_eq!(cast.failures, failed.len(), "{} of {:?}", to.name(), values);
            prop_assert_eq!(cast.examples.len(), failed.len().min(MAX_EXAMPLES));
            for (example, value) in cast.examples.iter().zip(&failed) {
                let kept = example.strip_suffix("...").unwrap_or(example);
                prop_assert!(value.starts_with(kept), "{example:?} is from {value:?}");
            }
        }
    }

    #[test]
    fn integers_round_trip(n in any::<i32>(), long in any::<i64>(), plus in any::<bool>(),
                           (before, after) in padding()) {
        let sign = if plus && n >= 0 { "+" } else { "" };
        let (array, failures) = cast_one(&format!("{before}{sign}{n}{after}"), ColumnType::Integer);
        prop_assert_eq!(failures, 0);
        prop_assert_eq!(array.as_primitive::<Int32Type>().value(0), n);
        let (array, failures) = cast_one(&format!("{before}{long}{after}"), ColumnType::Long);
        prop_assert_eq!(failures, 0);
        prop_assert_eq!(array.as_primitive::<Int64Type>().value(0), long);
    }

    #[test]
    fn integers_out_of_range_are_counted_nulls(
        n in prop_oneof![i64::MIN..i64::from(i32::MIN), i64::from(i32::MAX) + 1..=i64::MAX],
    ) {
        let (array, failures) = cast_one(&n.to_string(), ColumnType::Integer);
        prop_assert!(array.is_null(0));
        prop_assert_eq!(failures, 1);
        // |n| >= 2^31, so this is beyond 2^61 * 1000 > i64::MAX.
        let huge = i128::from(n) * 1_000_000_000_000;
        let (array, failures) = cast_one(&huge.to_string(), ColumnType::Long);
        prop_assert!(array.is_null(0), "{huge} overflows a long");
        prop_assert_eq!(failures, 1);
    }

    /// Spark truncates toward zero: `n` followed by any fraction is `n`, counted when the
    /// fraction has a digit other than 0; beyond the type's range it is a counted null.
    #[test]
    fn integers_truncate_a_fraction(
        n in any::<i32>(),
        long in any::<i64>(),
        fraction in "[0-9]{0,12}",
        (before, after) in padding(),
    ) {
        let dropped = fraction.bytes().any(|b| b != b'0');
        let (array, failures) = cast_one(&format!("{before}{n}.{fraction}{after}"), ColumnType::Integer);
        prop_assert_eq!(array.as_primitive::<Int32Type>().value(0), n);
        prop_assert_eq!(failures, usize::from(dropped), "{}.{}", n, fraction);
        let (array, failures) = cast_one(&format!("{long}.{fraction}"), ColumnType::Long);
        prop_assert_eq!(array.as_primitive::<Int64Type>().value(0), long);
        prop_assert_eq!(failures, usize::from(dropped));
        // A long's value with a fraction, too large for an integer: null, counted once.
        if i64::from(i32::MIN) > long || long > i64::from(i32::MAX) {
            let (array, failures) = cast_one(&format!("{long}.{fraction}"), ColumnType::Integer);
            prop_assert!(array.is_null(0));
            prop_assert_eq!(failures, 1);
        }
    }

    /// `float` and `double` alike are doubles: any double's text reads back as itself (also
    /// with Java's `d` suffix, which Spark takes), and a float's text reads as the double
    /// nearest that text, not as the float.
    #[test]
    fn floats_round_trip_as_doubles(x in finite_f64(), y in finite_f32(), exponent in any::<bool>(),
                                    suffix in prop::sample::select(vec!["", "d", "D"]),
                                    (before, after) in padding()) {
        let text = if exponent { format!("{x:e}") } else { format!("{x}") };
        for to in [ColumnType::Double, ColumnType::Float] {
            let (array, failures) = cast_one(&format!("{before}{text}{suffix}{after}"), to);
            prop_assert_eq!(failures, 0, "{}", text);
            prop_assert_eq!(array.as_primitive::<Float64Type>().value(0), x, "{}", text);
        }
        let text = y.to_string();
        let (array, failures) = cast_one(&format!("{before}{text}{after}"), ColumnType::Float);
        prop_assert_eq!(failures, 0, "{}", y);
        let expected: f64 = text.parse().unwrap();
        prop_assert_eq!(array.as_primitive::<Float64Type>().value(0), expected);
    }

    #[test]
    fn booleans_round_trip_in_any_case(
        (word, value) in prop::sample::select(vec![
            ("t", true), ("true", true), ("y", true), ("yes", true), ("1", true),
            ("f", false), ("false", false), ("n", false), ("no", false), ("0", false),
        ]),
        upper in prop::collection::vec(any::<bool>(), 5),
        (before, after) in padding(),
    ) {
        let word: String = word
            .chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        let (array, failures) = cast_one(&format!("{before}{word}{after}"), ColumnType::Boolean);
        prop_assert_eq!(failures, 0);
        prop_assert_eq!(array.as_boolean().value(0), value);
    }

    #[test]
    fn dates_and_timestamps_round_trip(
        days in 0i64..3_287_000,
        micros in 0i64..86_400_000_000,
        t in any::<bool>(),
        (before, after) in padding(),
    ) {
        let date = NaiveDate::from_ymd_opt(1000, 1, 1).unwrap() + chrono::Duration::days(days);
        let at: NaiveDateTime = date.and_hms_opt(0, 0, 0).unwrap()
            + chrono::Duration::microseconds(micros);
        let separator = if t { "T" } else { " " };
        let text = at.format(&format!("%Y-%m-%d{separator}%H:%M:%S%.6f")).to_string();
        let (array, failures) = cast_one(&format!("{before}{text}{after}"), ColumnType::Timestamp);
        prop_assert_eq!(failures, 0, "{}", text);
        prop_assert_eq!(
            array.as_primitive::<TimestampMicrosecondType>().value(0),
            at.and_utc().timestamp_micros(),
            "{}", text
        );
        let (array, failures) = cast_one(&date.format("%Y-%m-%d").to_string(), ColumnType::Date);
        prop_assert_eq!(failures, 0);
        prop_assert_eq!(array.as_primitive::<Date32Type>().value(0), Date32Type::from_naive_date(date));
    }

    /// Text that is no value of any type (it has a letter no number, date or boolean word
    /// holds) is null and counted for every type, however it is mixed with valid values.
    #[test]
    fn invalid_values_become_counted_nulls(
        column in prop::collection::vec(
            prop_oneof![
                Just(None),
                "[ ]?x[a-z0-9 .:-]{0,10}".prop_map(Some),
                "[0-9]{1,3},[0-9]{3}".prop_map(Some),
            ],
            1..30,
        ),
    ) {
        let input = strings(&column);
        let invalid = column.iter().flatten().count();
        for to in TYPES {
            let cast = cast_text(&input, to).unwrap();
            prop_assert_eq!(cast.array.null_count(), column.len(), "{}", to.name());
            prop_assert_eq!(cast.failures, invalid, "{}", to.name());
        }
    }
}
