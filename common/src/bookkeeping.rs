//! The bookkeeping columns every layer carries: where each row came from and when it was
//! imported. ingest-svc writes them into the raw layer ([`crate::raw`]); parse-svc copies them
//! into the parsed layer with the types below; recast-svc keeps them as they are.

use arrow::datatypes::{DataType, Field, TimeUnit};

pub const PAGE_NUMBER: &str = "page_number";
pub const URL: &str = "import_api_url_requested";
pub const STATUS: &str = "import_api_status_code";
pub const EXCEPTION: &str = "import_exception_thrown";
pub const IMPORT_DATETIME: &str = "import_datetime";
pub const IMPORT_TIMESTAMP: &str = "import_timestamp";

/// The bookkeeping columns, in the order the parsed layer writes them, with their types. A raw
/// file whose column has another type is cast to this one (so a time zone on `import_datetime`
/// cannot change the parsed schema from one day to the next).
pub const BOOKKEEPING: [(&str, BookkeepingType); 6] = [
    (PAGE_NUMBER, BookkeepingType::Int32),
    (URL, BookkeepingType::Utf8),
    (STATUS, BookkeepingType::Int32),
    (EXCEPTION, BookkeepingType::Utf8),
    (IMPORT_DATETIME, BookkeepingType::TimestampMicros),
    (IMPORT_TIMESTAMP, BookkeepingType::Utf8),
];

/// The types the bookkeeping columns have (a `const`-friendly stand-in for [`DataType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookkeepingType {
    Int32,
    Utf8,
    /// Microseconds, no time zone.
    TimestampMicros,
}

impl BookkeepingType {
    pub fn data_type(self) -> DataType {
        match self {
            BookkeepingType::Int32 => DataType::Int32,
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
}
