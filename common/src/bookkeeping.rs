//! The bookkeeping columns every layer carries: where each row came from and when it was
//! imported. ingest-svc writes them into the raw layer ([`crate::raw`]); parse-svc copies them
//! into the parsed layer with the types below; recast-svc keeps them as they are.
//!
//! The types are those of the tables the Glue jobs this pipeline replaces wrote (and their
//! crawlers declared), so our partitions can be published into those tables:
//!
//! | column | Arrow | Glue / Athena |
//! | --- | --- | --- |
//! | `page_number` | Int64 | bigint |
//! | `import_api_url_requested` | Utf8 | string |
//! | `import_api_status_code` | Utf8 (`"200"`; null when there was no response) | string |
//! | `import_exception_thrown` | Utf8 | string |
//! | `import_datetime` | Timestamp(µs), no zone | timestamp |
//! | `import_timestamp` | Utf8, the epoch seconds as Python prints a float ([`import_timestamp_text`]) | string |

use arrow::datatypes::{DataType, Field, TimeUnit};
use chrono::{DateTime, Utc};

pub const PAGE_NUMBER: &str = "page_number";
pub const URL: &str = "import_api_url_requested";
pub const STATUS: &str = "import_api_status_code";
pub const EXCEPTION: &str = "import_exception_thrown";
pub const IMPORT_DATETIME: &str = "import_datetime";
pub const IMPORT_TIMESTAMP: &str = "import_timestamp";

/// The status of a page whose records are kept, as the status column holds it (the old jobs and
/// the analysts' queries filter with `import_api_status_code = '200'`).
pub const OK_STATUS: &str = "200";

/// The bookkeeping columns, in the order the parsed layer writes them, with their types. A raw
/// file whose column has another type is cast to this one (so a time zone on `import_datetime`
/// cannot change the parsed schema from one day to the next, and the raw partitions we wrote
/// before these types, with an `int` page number and status, still parse).
pub const BOOKKEEPING: [(&str, BookkeepingType); 6] = [
    (PAGE_NUMBER, BookkeepingType::Int64),
    (URL, BookkeepingType::Utf8),
    (STATUS, BookkeepingType::Utf8),
    (EXCEPTION, BookkeepingType::Utf8),
    (IMPORT_DATETIME, BookkeepingType::TimestampMicros),
    (IMPORT_TIMESTAMP, BookkeepingType::Utf8),
];

/// The types the bookkeeping columns have (a `const`-friendly stand-in for [`DataType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookkeepingType {
    Int64,
    Utf8,
    /// Microseconds, no time zone.
    TimestampMicros,
}

impl BookkeepingType {
    pub fn data_type(self) -> DataType {
        match self {
            BookkeepingType::Int64 => DataType::Int64,
            BookkeepingType::Utf8 => DataType::Utf8,
            BookkeepingType::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

pub fn is_bookkeeping(name: &str) -> bool {
    BOOKKEEPING.iter().any(|(column, _)| *column == name)
}

/// The bookkeeping columns as nullable fields, in order.
pub fn bookkeeping_fields() -> Vec<Field> {
    BOOKKEEPING
        .iter()
        .map(|(name, t)| Field::new(*name, t.data_type(), true))
        .collect()
}

/// The status column's text for an HTTP status (`Some(200)` is `"200"`), null without a
/// response.
pub fn status_text(status: Option<u16>) -> Option<String> {
    status.map(|s| s.to_string())
}

/// `import_timestamp` of an import at `at`: the epoch seconds, microseconds included, as Python
/// prints that float (`str(at.timestamp())`), which is what the old jobs wrote:
/// `1637460000.123456`, `1637460000.5`, `1637460000.0`.
pub fn import_timestamp_text(at: DateTime<Utc>) -> String {
    // Exact below 2^53 µs (year 2255); the division is correctly rounded, as Python's.
    python_float_repr(at.timestamp_micros() as f64 / 1e6)
}

/// `repr(x)` of a Python float: the shortest text that reads back as `x`, with `.0` on a whole
/// number, and in scientific notation (`1e+16`, `1.5e-05`) when the decimal exponent is below
/// -4 or at least 16. Rust's `{:?}` makes the same digits and the same choice of notation; only
/// the exponent is written differently (`1e16`, `1.5e-5`).
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let text = format!("{x:?}");
    match text.split_once('e') {
        None => text,
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_schema_carries_every_bookkeeping_column_with_its_type() {
        let table = crate::TableName::new("appeals").unwrap();
        let raw = crate::raw::schema(&table);
        for (name, t) in BOOKKEEPING {
            let field = raw.field_with_name(name).unwrap();
            assert_eq!(field.data_type(), &t.data_type(), "{name}");
        }
        assert_eq!(raw.fields().len(), BOOKKEEPING.len() + 1);
        assert!(is_bookkeeping(IMPORT_TIMESTAMP));
        assert!(!is_bookkeeping("appeals"));
        assert!(bookkeeping_fields().iter().all(|f| f.is_nullable()));
    }

    /// The types of the old jobs' tables, as Glue names them.
    #[test]
    fn the_types_are_those_of_the_existing_glue_tables() {
        let glue: Vec<(&str, &str)> = bookkeeping_fields()
            .iter()
            .map(|f| {
                let name = BOOKKEEPING.iter().find(|(n, _)| n == f.name()).unwrap().0;
                (name, crate::catalog::hive_type(f.data_type()).unwrap())
            })
            .collect();
        assert_eq!(
            glue,
            [
                ("page_number", "bigint"),
                ("import_api_url_requested", "string"),
                ("import_api_status_code", "string"),
                ("import_exception_thrown", "string"),
                ("import_datetime", "timestamp"),
                ("import_timestamp", "string"),
            ]
        );
        assert_eq!(status_text(Some(200)).as_deref(), Some(OK_STATUS));
        assert_eq!(status_text(Some(500)).as_deref(), Some("500"));
        assert_eq!(status_text(None), None);
    }

    #[test]
    fn import_timestamp_is_printed_as_python_prints_the_float() {
        // 1637460000 is 2021-11-21T02:00:00Z. Each expected text is Python 3's
        // `str(datetime(...).timestamp())` of the same instant.
        for (instant, expected) in [
            ("2021-11-21T02:00:00Z", "1637460000.0"),
            ("2021-11-21T02:00:00.5Z", "1637460000.5"),
            ("2021-11-21T02:00:00.123456Z", "1637460000.123456"),
            ("2021-11-21T02:00:00.1Z", "1637460000.1"),
            ("2021-11-21T02:00:00.000001Z", "1637460000.000001"),
            ("2026-11-21T02:30:00.25Z", "1795228200.25"),
        ] {
            let at = instant.parse::<DateTime<Utc>>().unwrap();
            assert_eq!(import_timestamp_text(at), expected, "{instant}");
        }
        // Python's notation at the edges of `repr`.
        assert_eq!(python_float_repr(0.0), "0.0");
        assert_eq!(python_float_repr(-1.5), "-1.5");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(0.00001), "1e-05");
        assert_eq!(python_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(python_float_repr(1e15), "1000000000000000.0");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(
            python_float_repr(1.2345678901234568e17),
            "1.2345678901234568e+17"
        );
        assert_eq!(python_float_repr(1e100), "1e+100");
        assert_eq!(python_float_repr(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(python_float_repr(f64::INFINITY), "inf");
        assert_eq!(python_float_repr(f64::NAN), "nan");
    }
}
