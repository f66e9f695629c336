//! Where everything lives: zones, layers, table and partition naming (the brief's table layout),
//! in one place. London-date helpers, because Tascomi's "today" is a London day.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Europe::London;
use serde::{Deserialize, Serialize};

/// A Tascomi resource name, e.g. `applications`.
///
/// Only plain identifiers (`[a-z][a-z0-9_]*`, at most 128 characters) are accepted: a table name
/// becomes part of S3 keys, Glue names and queries, so anything else is rejected before it reaches
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TableName(String);

/// A name that is not a plain identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} {name:?} is not a plain identifier (lowercase letters, digits and '_', starting with a letter, at most 128 characters)"
)]
pub struct InvalidName {
    pub what: &'static str,
    pub name: String,
}

/// True when `name` is a plain lowercase identifier, safe in a key, a Glue name or a query.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 128
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Checks a column name that came from data (an API field): the same rule as table names, except
/// that a leading digit or underscore is allowed, as Tascomi has such fields.
pub fn check_column_name(name: &str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '_'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what: "column",
            name: name.to_owned(),
        })
    }
}

impl TableName {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        if is_plain_identifier(&name) {
            Ok(Self(name))
        } else {
            Err(InvalidName {
                what: "table",
                name,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TableName {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TableName> for String {
    fn from(value: TableName) -> Self {
        value.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TableName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The two buckets of the data lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    Raw,
    Refined,
}

/// The four layers a table has, one per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// ingest-svc: the API records as JSON text.
    Raw,
    /// parse-svc: one text column per field.
    Parsed,
    /// recast-svc: typed columns.
    Increment,
    /// snapshot-svc: the full de-duplicated table.
    Snapshot,
}

pub const IMPORT_PARTITION_KEYS: [&str; 4] =
    ["import_year", "import_month", "import_day", "import_date"];
pub const SNAPSHOT_PARTITION_KEYS: [&str; 4] = [
    "snapshot_year",
    "snapshot_month",
    "snapshot_day",
    "snapshot_date",
];

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Raw, Layer::Parsed, Layer::Increment, Layer::Snapshot];

    pub fn zone(self) -> Zone {
        match self {
            Layer::Raw | Layer::Parsed => Zone::Raw,
            Layer::Increment | Layer::Snapshot => Zone::Refined,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layer::Raw => "raw",
            Layer::Parsed => "parsed",
            Layer::Increment => "increment",
            Layer::Snapshot => "snapshot",
        }
    }

    /// The key prefix of a table's data in its zone's bucket, ending in `/`.
    pub fn table_prefix(self, table: &TableName) -> String {
        let folder = match self {
            Layer::Raw => "api-responses",
            Layer::Parsed => "parsed",
            Layer::Increment => "increment",
            Layer::Snapshot => "snapshot",
        };
        format!("planning/tascomi/{folder}/{table}/")
    }

    /// The table's name in the Glue Data Catalog (its database is [`Layout::database`]).
    pub fn catalog_table(self, table: &TableName) -> String {
        match self {
            Layer::Raw => format!("api_response_{table}"),
            Layer::Parsed | Layer::Snapshot => table.to_string(),
            Layer::Increment => format!("increment_{table}"),
        }
    }

    pub fn partition_keys(self) -> [&'static str; 4] {
        match self {
            Layer::Snapshot => SNAPSHOT_PARTITION_KEYS,
            _ => IMPORT_PARTITION_KEYS,
        }
    }

    /// The layer this layer's stage feeds, if any.
    pub fn next(self) -> Option<Layer> {
        match self {
            Layer::Raw => Some(Layer::Parsed),
            Layer::Parsed => Some(Layer::Increment),
            Layer::Increment => Some(Layer::Snapshot),
            Layer::Snapshot => None,
        }
    }

    /// The layer whose partitions a stage reads (`None` for ingest, which reads the API).
    pub fn upstream(self) -> Option<Layer> {
        match self {
            Layer::Raw => None,
            Layer::Parsed => Some(Layer::Raw),
            Layer::Increment => Some(Layer::Parsed),
            Layer::Snapshot => Some(Layer::Increment),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Layer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layer::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown layer {s:?} (raw, parsed, increment, snapshot)"))
    }
}

/// Bucket names and the Glue database prefix of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub raw_bucket: String,
    pub refined_bucket: String,
    /// `<prefix>` in `<prefix>-tascomi-raw-zone`.
    pub database_prefix: String,
}

impl Layout {
    pub fn bucket(&self, zone: Zone) -> &str {
        match zone {
            Zone::Raw => &self.raw_bucket,
            Zone::Refined => &self.refined_bucket,
        }
    }

    pub fn database(&self, zone: Zone) -> String {
        match zone {
            Zone::Raw => format!("{}-tascomi-raw-zone", self.database_prefix),
            Zone::Refined => format!("{}-tascomi-refined-zone", self.database_prefix),
        }
    }

    /// Where one partition of one layer lives: bucket, key prefix (ending in `/`), catalog names.
    pub fn partition(&self, table: &TableName, layer: Layer, date: NaiveDate) -> PartitionRef {
        PartitionRef {
            table: table.clone(),
            layer,
            date,
            bucket: self.bucket(layer.zone()).to_owned(),
            database: self.database(layer.zone()),
            catalog_table: layer.catalog_table(table),
        }
    }

    /// The `s3://bucket/prefix/` of a layer's table.
    pub fn table_location(&self, table: &TableName, layer: Layer) -> String {
        format!(
            "s3://{}/{}",
            self.bucket(layer.zone()),
            layer.table_prefix(table)
        )
    }
}

/// One partition of one layer of one table, named as the brief names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRef {
    pub table: TableName,
    pub layer: Layer,
    /// The import date (snapshot date for the snapshot layer).
    pub date: NaiveDate,
    pub bucket: String,
    pub database: String,
    pub catalog_table: String,
}

impl PartitionRef {
    /// Partition values in the order of [`Layer::partition_keys`]: `2026`, `11`, `21`, `20261121`.
    pub fn values(&self) -> Vec<String> {
        partition_values(self.date)
    }

    /// The Hive-style key prefix of the partition, ending in `/`.
    pub fn key_prefix(&self) -> String {
        let mut prefix = self.layer.table_prefix(&self.table);
        for (key, value) in self.layer.partition_keys().iter().zip(self.values()) {
            prefix.push_str(&format!("{key}={value}/"));
        }
        prefix
    }

    /// `table/layer/import_date=...`, for logs and errors.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}={}",
            self.table,
            self.layer,
            self.layer.partition_keys()[3],
            date_value(self.date)
        )
    }
}

impl fmt::Display for PartitionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The four partition values of a date: year, zero-padded month and day, and `YYYYMMDD`.
pub fn partition_values(date: NaiveDate) -> Vec<String> {
    vec![
        date.format("%Y").to_string(),
        date.format("%m").to_string(),
        date.format("%d").to_string(),
        date_value(date),
    ]
}

/// `YYYYMMDD`, the value of `import_date` and `snapshot_date`.
pub fn date_value(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// Parses `YYYYMMDD` (a partition value) or `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y%m%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d"))
        .ok()
}

/// The London calendar date of an instant.
pub fn london_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&London).date_naive()
}

/// Today in London.
pub fn london_today() -> NaiveDate {
    london_date(Utc::now())
}

/// The instant a London day starts (midnight, or the first instant after it on a day the clocks
/// change at midnight).
pub fn london_day_start(date: NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone as _;
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    London
        .from_local_datetime(&midnight)
        .earliest()
        .unwrap_or_else(|| London.from_utc_datetime(&midnight))
        .with_timezone(&Utc)
}

/// A Tascomi timestamp as London wall-clock time, the one reading every stage uses.
///
/// Accepts `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, each with an optional fraction of up
/// to nine digits, as Tascomi sends them: London wall-clock already, returned as read. The same
/// followed by a zone (`Z`, `+01:00`, `+0100`, `-05:00`) is the instant it names, converted to
/// London wall-clock (so `2026-07-01T11:00:00Z` is `2026-07-01 12:00:00`, British Summer
/// Time). `None` for anything else, a bare date included.
pub fn parse_london_timestamp(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Some(wall) = wall_clock(text) {
        return Some(wall);
    }
    let zoned = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix('z'))
        .map(|rest| format!("{rest}+00:00"));
    let zoned = zoned.as_deref().unwrap_or(text);
    WALL_CLOCK_FORMATS
        .iter()
        .flat_map(|f| [format!("{f}%:z"), format!("{f}%z")])
        .find_map(|f| DateTime::parse_from_str(zoned, &f).ok())
        .map(|at| at.with_timezone(&London).naive_local())
}

const WALL_CLOCK_FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

fn wall_clock(text: &str) -> Option<NaiveDateTime> {
    WALL_CLOCK_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_london_day_starts_at_london_midnight() {
        let summer = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(
            london_day_start(summer).to_rfc3339(),
            "2026-06-30T23:00:00+00:00"
        );
        let winter = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(
            london_day_start(winter).to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
    }

    #[test]
    fn timestamps_with_a_zone_become_london_wall_clock() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        // As Tascomi sends them: already London wall-clock.
        assert_eq!(
            parse_london_timestamp("2026-07-01 11:00:00"),
            Some(at("2026-07-01 11:00:00"))
        );
        assert_eq!(
            parse_london_timestamp("2026-07-01T11:00:00.25"),
            Some(at("2026-07-01 11:00:00.25"))
        );
        // UTC in summer is an hour behind London; in winter the same.
        assert_eq!(
            parse_london_timestamp("2026-07-01T11:00:00Z"),
            Some(at("2026-07-01 12:00:00"))
        );
        assert_eq!(
            parse_london_timestamp("2026-12-01 23:30:00Z"),
            Some(at("2026-12-01 23:30:00"))
        );
        assert_eq!(
            parse_london_timestamp("2026-07-01 23:30:00+00:00"),
            Some(at("2026-07-02 00:30:00"))
        );
        assert_eq!(
            parse_london_timestamp("2026-07-01T09:00:00-0500"),
            Some(at("2026-07-01 15:00:00"))
        );
        for junk in [
            "2026-07-01",
            "",
            "21/11/2026 10:00:00",
            "2026-07-01 11:00:00 UTC",
        ] {
            assert_eq!(parse_london_timestamp(junk), None, "{junk}");
        }
    }

    fn applications() -> TableName {
        TableName::new("applications").unwrap()
    }

    fn layout() -> Layout {
        Layout {
            raw_bucket: "raw".into(),
            refined_bucket: "refined".into(),
            database_prefix: "hackney".into(),
        }
    }

    #[test]
    fn names_follow_the_brief() {
        let t = applications();
        let l = layout();
        let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let raw = l.partition(&t, Layer::Raw, date);
        assert_eq!(raw.bucket, "raw");
        assert_eq!(raw.database, "hackney-tascomi-raw-zone");
        assert_eq!(raw.catalog_table, "api_response_applications");
        assert_eq!(
            raw.key_prefix(),
            "planning/tascomi/api-responses/applications/import_year=2026/import_month=11/import_day=21/import_date=20261121/"
        );
        let parsed = l.partition(&t, Layer::Parsed, date);
        assert_eq!(parsed.catalog_table, "applications");
        assert_eq!(parsed.database, "hackney-tascomi-raw-zone");
        let inc = l.partition(&t, Layer::Increment, date);
        assert_eq!(inc.catalog_table, "increment_applications");
        assert_eq!(inc.database, "hackney-tascomi-refined-zone");
        assert_eq!(inc.bucket, "refined");
        let snap = l.partition(&t, Layer::Snapshot, date);
        assert_eq!(snap.catalog_table, "applications");
        assert!(snap.key_prefix().starts_with(
            "planning/tascomi/snapshot/applications/snapshot_year=2026/snapshot_month=11/"
        ));
    }

    #[test]
    fn partition_values_are_zero_padded_strings() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
        assert_eq!(partition_values(date), ["2026", "03", "05", "20260305"]);
        assert_eq!(parse_date("20260305"), Some(date));
        assert_eq!(parse_date("2026-03-05"), Some(date));
        assert_eq!(parse_date("2026-13-05"), None);
    }

    #[test]
    fn table_names_must_be_plain_identifiers() {
        assert!(TableName::new("public_consultations").is_ok());
        for bad in [
            "",
            "Applications",
            "../etc",
            "a b",
            "a;drop",
            "1abc",
            "a/b",
            "a-b",
        ] {
            let err = TableName::new(bad).unwrap_err();
            assert!(err.to_string().contains("not a plain identifier"), "{bad}");
        }
        assert!(check_column_name("_1st_field").is_ok());
        assert!(check_column_name("x\"; drop").is_err());
    }

    #[test]
    fn london_date_follows_british_summer_time() {
        // 23:30 UTC on 21 June is 00:30 BST on 22 June.
        let at = "2026-06-21T23:30:00Z".parse().unwrap();
        assert_eq!(
            london_date(at),
            NaiveDate::from_ymd_opt(2026, 6, 22).unwrap()
        );
        // In winter London is UTC.
        let at = "2026-11-21T23:30:00Z".parse().unwrap();
        assert_eq!(
            london_date(at),
            NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
        );
    }

    #[test]
    fn layers_chain_in_order() {
        assert_eq!(Layer::Raw.next(), Some(Layer::Parsed));
        assert_eq!(Layer::Snapshot.next(), None);
        assert_eq!(Layer::Snapshot.upstream(), Some(Layer::Increment));
        assert_eq!("increment".parse::<Layer>().unwrap(), Layer::Increment);
        assert!("bogus".parse::<Layer>().is_err());
    }
}
