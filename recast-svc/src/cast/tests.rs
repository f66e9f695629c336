use super::*;
use arrow::array::Date32Array;
use arrow::datatypes::{Date32Type, TimestampMicrosecondType};
use chrono::{NaiveDate, NaiveDateTime};

fn text(values: &[Option<&str>]) -> StringArray {
    values.iter().copied().collect()
}

/// Casts each value alone and returns what it became, rendered by `show`. A null from a
/// value that is not blank is counted as a failure, and nothing else is.
fn each<T: PartialEq + std::fmt::Debug + Clone>(
    to: ColumnType,
    cases: &[(&str, Option<T>)],
    show: impl Fn(&ArrayRef) -> Option<T>,
) {
    let cases: Vec<(&str, Option<T>, bool)> = cases
        .iter()
        .map(|(input, expected)| {
            let failure = expected.is_none() && !input.trim().is_empty();
            (*input, expected.clone(), failure)
        })
        .collect();
    each_counted(to, &cases, show);
}

/// As [`each`], with whether each value counts as not clean given.
fn each_counted<T: PartialEq + std::fmt::Debug>(
    to: ColumnType,
    cases: &[(&str, Option<T>, bool)],
    show: impl Fn(&ArrayRef) -> Option<T>,
) {
    for (input, expected, counted) in cases {
        let cast = cast_text(&text(&[Some(input)]), to).unwrap();
        assert_eq!(&show(&cast.array), expected, "{input:?} as {}", to.name());
        assert_eq!(
            cast.failures,
            usize::from(*counted),
            "{input:?} failure count"
        );
        assert_eq!(
            cast.examples.len(),
            usize::from(*counted),
            "{input:?} examples"
        );
    }
}

fn value_of<A: Array + 'static, T>(f: impl Fn(&A) -> T) -> impl Fn(&ArrayRef) -> Option<T> {
    move |array| {
        let typed = array.as_any().downcast_ref::<A>().unwrap();
        typed.is_valid(0).then(|| f(typed))
    }
}

/// Spark's words, trimmed, in any case; nothing else (Arrow's kernel would take `tr`,
/// `on`, `off`).
#[test]
fn booleans_accept_exactly_sparks_words() {
    each(
        ColumnType::Boolean,
        &[
            ("t", Some(true)),
            ("T", Some(true)),
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("True", Some(true)),
            ("y", Some(true)),
            ("Y", Some(true)),
            ("1", Some(true)),
            ("yes", Some(true)),
            ("YES", Some(true)),
            (" yes ", Some(true)),
            ("\tYeS\n", Some(true)),
            ("f", Some(false)),
            ("F", Some(false)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("n", Some(false)),
            ("N", Some(false)),
            ("0", Some(false)),
            ("no", Some(false)),
            ("No", Some(false)),
            (" nO ", Some(false)),
            ("", None),
            ("   ", None),
            ("on", None),
            ("off", None),
            ("tr", None),
            ("fals", None),
            ("ye", None),
            ("2", None),
            ("-1", None),
            ("01", None),
            ("1.0", None),
            ("yes please", None),
        ],
        value_of(|a: &BooleanArray| a.value(0)),
    );
}

#[test]
fn integers_take_digits_with_a_sign_and_surrounding_spaces() {
    each(
        ColumnType::Integer,
        &[
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("+3", Some(3)),
            ("0", Some(0)),
            ("007", Some(7)),
            (" 12 ", Some(12)),
            ("\t12\n", Some(12)),
            ("2147483647", Some(i32::MAX)),
            ("-2147483648", Some(i32::MIN)),
            ("2147483648", None),
            ("-2147483649", None),
            ("1,000", None),
            ("1e3", None),
            ("12abc", None),
            ("12.5.1", None),
            ("12.e3", None),
            ("12. 5", None),
            ("1 000", None),
            ("0x1F", None),
            ("+", None),
            ("-", None),
            ("abc", None),
            ("", None),
            (" ", None),
        ],
        value_of(|a: &Int32Array| a.value(0)),
    );
    each(
        ColumnType::Long,
        &[
            ("5300000001", Some(5_300_000_001i64)),
            (" -9223372036854775808", Some(i64::MIN)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("99999999999999999999999", None),
            ("533 100", None),
        ],
        value_of(|a: &Int64Array| a.value(0)),
    );
}

/// Spark truncates a fraction toward zero; the value is counted as not clean when the
/// fraction had a digit other than 0, or the text had no digit at all.
#[test]
fn integers_truncate_a_fraction_as_spark_does_and_count_it() {
    each_counted(
        ColumnType::Integer,
        &[
            ("12.7", Some(12), true),
            ("-3.9", Some(-3), true),
            ("12.0", Some(12), false),
            ("12.000", Some(12), false),
            ("12.", Some(12), false),
            ("-0.0", Some(0), false),
            ("+1.5", Some(1), true),
            (".5", Some(0), true),
            ("-.5", Some(0), true),
            ("0.001", Some(0), true),
            (".0", Some(0), false),
            (".", Some(0), true),
            ("-.", Some(0), true),
            (" 7.25 ", Some(7), true),
            ("2147483647.9", Some(i32::MAX), true),
            ("-2147483648.9", Some(i32::MIN), true),
            ("2147483648.0", None, true),
            ("12.7x", None, true),
        ],
        value_of(|a: &Int32Array| a.value(0)),
    );
    each_counted(
        ColumnType::Long,
        &[
            ("5300000001.99", Some(5_300_000_001i64), true),
            ("-9223372036854775808.5", Some(i64::MIN), true),
            ("9223372036854775808.0", None, true),
        ],
        value_of(|a: &Int64Array| a.value(0)),
    );
    // A column: the truncated values and the nulls are counted and exemplified in row
    // order; the clean ones are not.
    let values = text(&[
        Some("1"),
        Some("2.5"),
        Some("x"),
        Some("3.0"),
        None,
        Some("-4.75"),
    ]);
    let cast = cast_text(&values, ColumnType::Integer).unwrap();
    let ints = cast.array.as_primitive::<arrow::datatypes::Int32Type>();
    assert_eq!(
        ints.iter().collect::<Vec<_>>(),
        [Some(1), Some(2), None, Some(3), None, Some(-4)]
    );
    assert_eq!(cast.failures, 3);
    assert_eq!(cast.examples, ["2.5", "x", "-4.75"]);
}

#[test]
fn parse_integer_reads_as_sparks_to_long() {
    let read = |s: &str| parse_integer(s).map(|p| (p.value, p.clean));
    assert_eq!(read("12.7"), Some((12, false)));
    assert_eq!(read("-12.7"), Some((-12, false)));
    assert_eq!(read("12"), Some((12, true)));
    assert_eq!(read("."), Some((0, false)));
    assert_eq!(read("+"), None);
    assert_eq!(read(""), None);
    assert_eq!(read("1.2.3"), None);
    assert_eq!(read("-9223372036854775808"), Some((i64::MIN, true)));
    assert_eq!(read("9223372036854775808"), None);
}

/// `float` and `double` alike: 64-bit doubles, read as Spark's `DoubleType` cast reads.
#[test]
fn floats_and_doubles_take_decimal_numbers_as_doubles() {
    for to in [ColumnType::Double, ColumnType::Float] {
        assert_eq!(to.data_type(), arrow::datatypes::DataType::Float64);
        each(
            to,
            &[
                ("1.5", Some(1.5)),
                ("-0.25", Some(-0.25)),
                ("42", Some(42.0)),
                (".5", Some(0.5)),
                ("5.", Some(5.0)),
                ("+.5", Some(0.5)),
                ("2e3", Some(2000.0)),
                ("1.5E-2", Some(0.015)),
                ("1e+2", Some(100.0)),
                (" 3.75 ", Some(3.75)),
                // More digits than a float holds: the double, not a float's rounding.
                ("0.1", Some(0.1)),
                ("16777217", Some(16_777_217.0)),
                // Java's suffixes, which Spark's cast takes.
                ("1.5d", Some(1.5)),
                ("2f", Some(2.0)),
                ("2.5D", Some(2.5)),
                ("1e3F", Some(1000.0)),
                ("inf", Some(f64::INFINITY)),
                ("+Infinity", Some(f64::INFINITY)),
                ("INF", Some(f64::INFINITY)),
                ("-inf", Some(f64::NEG_INFINITY)),
                ("-Infinity", Some(f64::NEG_INFINITY)),
                ("1,5", None),
                ("£5", None),
                ("1.2.3", None),
                (".", None),
                ("e5", None),
                ("1e", None),
                ("1dd", None),
                ("d", None),
                ("infd", None),
                ("five", None),
                ("", None),
            ],
            value_of(|a: &Float64Array| a.value(0)),
        );
        for nan in ["NaN", "nan", "NAN", "+NaN", "-NaN"] {
            let cast = cast_text(&text(&[Some(nan)]), to).unwrap();
            let value = cast.array.as_primitive::<arrow::datatypes::Float64Type>();
            assert!(value.value(0).is_nan(), "{nan}");
            assert_eq!(cast.failures, 0);
        }
        for not_nan in ["+nan", "-nan", "nan1"] {
            let cast = cast_text(&text(&[Some(not_nan)]), to).unwrap();
            assert!(cast.array.is_null(0), "{not_nan}");
        }
    }
}

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

#[test]
fn timestamps_take_space_or_t_with_optional_fraction() {
    let micros = |a: &ArrayRef| {
        let typed = a.as_primitive::<TimestampMicrosecondType>();
        typed.is_valid(0).then(|| typed.value(0))
    };
    let us = |s: &str| Some(at(s).and_utc().timestamp_micros());
    each(
        ColumnType::Timestamp,
        &[
            ("2026-11-21 10:15:00", us("2026-11-21 10:15:00")),
            ("2026-11-21T10:15:00", us("2026-11-21 10:15:00")),
            ("2026-11-21 10:15:00.5", us("2026-11-21 10:15:00.5")),
            (
                "2026-11-21 10:15:00.123456",
                us("2026-11-21 10:15:00.123456"),
            ),
            (
                "2026-11-21T10:15:00.123456789",
                us("2026-11-21 10:15:00.123456"),
            ),
            (" 2026-11-21 10:15:00 ", us("2026-11-21 10:15:00")),
            // Summer time is not shifted: the wall-clock time is stored as it reads.
            ("2026-06-21 23:30:00", us("2026-06-21 23:30:00")),
            ("2026-11-21", us("2026-11-21 00:00:00")),
            // A zone names an instant: London's wall-clock time then. In winter London is
            // on UTC, so `Z` reads as written.
            ("2026-11-21T10:15:00Z", us("2026-11-21 10:15:00")),
            ("2026-11-21T10:15:00+01:00", us("2026-11-21 09:15:00")),
            ("2026-11-21 10:15:00z", us("2026-11-21 10:15:00")),
            // In summer London is an hour ahead of UTC.
            ("2026-07-01T11:00:00Z", us("2026-07-01 12:00:00")),
            ("2026-07-01 11:00:00Z", us("2026-07-01 12:00:00")),
            ("2026-07-01T11:00:00+01:00", us("2026-07-01 11:00:00")),
            ("2026-07-01T11:00:00+0100", us("2026-07-01 11:00:00")),
            ("2026-07-01T06:00:00-05:00", us("2026-07-01 12:00:00")),
            ("2026-07-01T23:30:00Z", us("2026-07-02 00:30:00")),
            (
                " 2026-07-01T11:00:00.123456Z ",
                us("2026-07-01 12:00:00.123456"),
            ),
            (
                "2026-07-01T11:00:00.123456789Z",
                us("2026-07-01 12:00:00.123456"),
            ),
            // The change of the clocks: 01:30Z on 29 March 2026 is 02:30 BST.
            ("2026-03-29T00:30:00Z", us("2026-03-29 00:30:00")),
            ("2026-03-29T01:30:00Z", us("2026-03-29 02:30:00")),
            ("2026-07-01 11:00:00 +01:00", us("2026-07-01 11:00:00")),
            // Zoned forms parse_london_timestamp does not read are failures, not UTC.
            ("2026-07-01T11:00:00 Europe/London", None),
            ("2026-07-01T11:00:00 BST", None),
            ("2026-07-01Z", None),
            ("0000-00-00 00:00:00", None),
            ("2026-13-01 00:00:00", None),
            ("2026-02-30 10:00:00", None),
            ("21/11/2026 10:15", None),
            ("yesterday", None),
            ("", None),
        ],
        micros,
    );
}

#[test]
fn dates_take_iso_dates() {
    let day = |s: &str| {
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        Some(Date32Type::from_naive_date(date))
    };
    each(
        ColumnType::Date,
        &[
            ("2026-11-21", day("2026-11-21")),
            (" 2026-11-21", day("2026-11-21")),
            ("20261121", day("2026-11-21")),
            ("2026-11-21 10:15:00", day("2026-11-21")),
            // A timestamp with a zone: the London date of the instant.
            ("2026-07-01T23:30:00Z", day("2026-07-02")),
            ("2026-07-01T22:59:59Z", day("2026-07-01")),
            ("2026-12-01T23:30:00Z", day("2026-12-01")),
            ("2026-07-02T00:30:00+02:00", day("2026-07-01")),
            ("2026-02-30", None),
            ("21/11/2026", None),
            ("0000-00-00", None),
            ("", None),
        ],
        value_of(|a: &Date32Array| a.value(0)),
    );
}

#[test]
fn failures_are_counted_with_examples_and_nulls_are_not_failures() {
    let values = text(&[
        Some("1"),
        None,
        Some(""),
        Some("x"),
        Some("2"),
        Some("1,000"),
        Some("y"),
        Some("z"),
        Some(&"long ".repeat(20)),
    ]);
    let cast = cast_text(&values, ColumnType::Integer).unwrap();
    assert_eq!(cast.array.len(), 9);
    assert_eq!(cast.array.null_count(), 7);
    assert_eq!(cast.failures, 5);
    assert_eq!(cast.examples, ["x", "1,000", "y"]);
    let long = cast_text(&text(&[Some(&"long ".repeat(20))]), ColumnType::Integer).unwrap();
    assert_eq!(long.examples[0].chars().count(), MAX_EXAMPLE_CHARS + 3);
}

#[test]
fn zoned_values_are_rewritten_alongside_plain_ones_and_examples_keep_the_sent_text() {
    let values = text(&[
        Some("2026-07-01 11:00:00"),
        Some("2026-07-01T11:00:00Z"),
        None,
        Some(" 2026-07-01T11:00:00 Europe/London"),
        Some("2026-06-30"),
        Some("junk"),
    ]);
    let cast = cast_text(&values, ColumnType::Timestamp).unwrap();
    let typed = cast.array.as_primitive::<TimestampMicrosecondType>();
    let micros = |s: &str| at(s).and_utc().timestamp_micros();
    assert_eq!(typed.value(0), micros("2026-07-01 11:00:00"), "as read");
    assert_eq!(typed.value(1), micros("2026-07-01 12:00:00"), "converted");
    assert_eq!(typed.value(4), micros("2026-06-30 00:00:00"));
    assert!(typed.is_null(2) && typed.is_null(3) && typed.is_null(5));
    assert_eq!(cast.failures, 2);
    assert_eq!(cast.examples, ["2026-07-01T11:00:00 Europe/London", "junk"]);

    // Plain Tascomi text takes the fast path: no rewritten copy.
    let plain = text(&[Some("2026-07-01 11:00:00"), Some("2026-07-01T11:00:00.5")]);
    assert!(to_london(&plain, ColumnType::Timestamp).is_none());
    assert!(is_plain("20261121"));
    assert!(!is_plain("2026-07-01T11:00:00Z"));
    assert!(!is_plain("2026-07-01T11:00:00-05:00"));
    assert!(!is_plain("2026-07-01 11:00:00 11"));
}

#[test]
fn a_column_that_is_not_text_is_an_error() {
    let numbers = Int32Array::from(vec![1]);
    let err = cast_text(&numbers, ColumnType::Integer).unwrap_err();
    assert!(err.to_string().contains("expected a text column"), "{err}");
}
