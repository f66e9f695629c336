//! Settings: service settings from the environment, read through an injected map; the pipeline
//! file that lists the tables.
//!
//! A bad value stops the service at start-up with a [`ConfigError`] naming the variable (or the
//! pipeline file's line). Secrets are held in [`Secret`], which never prints its value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use crate::layout::{Layout, TableName, is_plain_identifier};

mod location;

pub use location::{COLUMN_TYPE_DICTIONARY_VARIABLE, ConfigLocation, DictionarySource};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {variable} is required")]
    Missing { variable: String },
    #[error("environment variable {variable}={value:?} is invalid: {reason}")]
    Invalid {
        variable: String,
        value: String,
        reason: String,
    },
    #[error("pipeline file {path}: {message}")]
    Pipeline { path: String, message: String },
    #[error(
        "the column-type dictionary is not set: set {variable} to its path or s3://bucket/key URI, or column_type_dictionary in the pipeline file"
    )]
    NoDictionary { variable: &'static str },
    #[error("{location} (from {setting}) cannot be read: {message}")]
    Unreadable {
        setting: String,
        location: String,
        message: String,
    },
}

/// The environment a service reads its settings from: the process environment in production, a
/// map in tests (so tests never touch the process environment).
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show names only.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value, or `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::Missing {
                variable: name.to_owned(),
            })
    }

    /// Parses the variable, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|err: T::Err| ConfigError::Invalid {
                variable: name.to_owned(),
                value: value.to_owned(),
                reason: err.to_string(),
            }),
        }
    }

    /// Parses the variable, or returns `default` when it is unset; a value outside `range` is an
    /// error naming the variable and the range.
    pub fn parse_in_range<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value = self.parse_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                variable: name.to_owned(),
                value: value.to_string(),
                reason: format!("must be between {} and {}", range.start(), range.end()),
            })
        }
    }

    /// A duration in whole seconds (the variable's name says so: `..._SECS`).
    pub fn secs_or(&self, name: &str, default_secs: u64) -> Result<Duration, ConfigError> {
        self.parse_or(name, default_secs).map(Duration::from_secs)
    }

    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(|v| Secret::new(v.to_owned()))
    }
}

/// A secret value (an API key). `Debug` and `Display` never show it; read it with
/// [`Secret::expose`] only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Bucket and database names from `TASCOMI_RAW_BUCKET`, `TASCOMI_REFINED_BUCKET` and
/// `TASCOMI_DATABASE_PREFIX`.
pub fn layout_from_env(env: &Env) -> Result<Layout, ConfigError> {
    Ok(Layout {
        raw_bucket: env.required("TASCOMI_RAW_BUCKET")?,
        refined_bucket: env.required("TASCOMI_REFINED_BUCKET")?,
        database_prefix: env.required("TASCOMI_DATABASE_PREFIX")?,
    })
}

/// How often a table is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Every night.
    Daily,
    /// Sundays (static lookup tables).
    Weekly,
}

/// One table of the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    pub name: TableName,
    pub schedule: Schedule,
    /// The column whose completeness the data-quality gate checks (default `id`).
    pub completeness_column: String,
    /// Skip recasting: the increment keeps the parsed text columns.
    pub keep_as_text: bool,
    /// This table's override of [`PipelineFile::row_count_drop_threshold`], if any.
    pub row_count_drop_threshold: Option<Fraction>,
}

impl TableConfig {
    /// A table the pipeline file does not name: daily, completeness column `id`.
    pub fn with_defaults(name: TableName) -> Self {
        Self {
            name,
            schedule: Schedule::Daily,
            completeness_column: "id".into(),
            keep_as_text: false,
            row_count_drop_threshold: None,
        }
    }
}

pub const DEFAULT_MAX_LOOKBACK_DAYS: u32 = 60;

/// By default a snapshot may not hold fewer rows than the previous one: a merge never removes
/// rows, so any drop means data went missing.
pub const DEFAULT_ROW_COUNT_DROP_THRESHOLD: Fraction = Fraction(0.0);

/// A share between 0 and 1 inclusive (0.05 = 5 %). Checked when read, so never NaN: that is
/// what makes it `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Fraction(f64);

impl Eq for Fraction {}

impl Fraction {
    /// `Err` (saying why) unless `value` is a number from 0 to 1.
    pub fn new(value: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("{value} is not a share between 0 and 1"))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The pipeline file: the tables, their schedules and overrides. The same YAML is read by
/// Terraform (`yamldecode`) to generate the schedules, so adding a table is one line:
///
/// ```yaml
/// column_type_dictionary: column-type-dictionary.json   # optional: relative to this file, or s3://bucket/key
/// max_lookback_days: 60
/// row_count_drop_threshold: 0.0                       # optional; the default
/// tables:
///   appeals: daily
///   applications: { schedule: daily, completeness_column: application_reference_number }
///   asset_constraints: { schedule: daily, keep_as_text: true }
///   wards: { schedule: weekly, row_count_drop_threshold: 0.1 }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineFile {
    /// Where the column-type dictionary is (a relative path resolved against the pipeline
    /// file's folder, or an S3 object). `TASCOMI_COLUMN_TYPE_DICTIONARY` overrides it; the
    /// deployments set that variable and leave this unset (see [`DictionarySource`]).
    pub column_type_dictionary: Option<ConfigLocation>,
    pub max_lookback_days: u32,
    /// The share of the previous snapshot's rows a new snapshot may lose and still pass the
    /// snapshot's data-quality gate (check `row_count_change`): 0 (the default) fails any drop,
    /// 0.1 lets a snapshot hold 10 % fewer rows than its base. A table may override it.
    pub row_count_drop_threshold: Fraction,
    pub tables: Vec<TableConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipelineFile {
    #[serde(default)]
    column_type_dictionary: Option<ConfigLocation>,
    #[serde(default = "default_lookback")]
    max_lookback_days: u32,
    #[serde(default)]
    row_count_drop_threshold: Option<f64>,
    tables: OrderedEntries,
}

fn default_lookback() -> u32 {
    DEFAULT_MAX_LOOKBACK_DAYS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTableSettings {
    schedule: Schedule,
    #[serde(default)]
    completeness_column: Option<String>,
    #[serde(default)]
    keep_as_text: bool,
    #[serde(default)]
    row_count_drop_threshold: Option<f64>,
}

/// A table's entry: `daily`, `weekly`, or a map of settings.
struct RawTableEntry(RawTableSettings);

impl<'de> Deserialize<'de> for RawTableEntry {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RawTableEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`daily`, `weekly`, or a map with `schedule`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTableEntry, E> {
                let schedule = Schedule::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(RawTableEntry(RawTableSettings {
                    schedule,
                    completeness_column: None,
                    keep_as_text: false,
                    row_count_drop_threshold: None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTableEntry, A::Error> {
                RawTableSettings::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawTableEntry)
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// The `tables` map in file order, duplicates kept so they can be reported.
struct OrderedEntries(Vec<(String, RawTableEntry)>);

impl<'de> Deserialize<'de> for OrderedEntries {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = OrderedEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of table name to schedule")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, RawTableEntry>()? {
                    entries.push(entry);
                }
                Ok(OrderedEntries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The 1-based line on which `table` is a key of the `tables` map, `occurrence` counting from 0.
fn line_of_table(text: &str, table: &str, occurrence: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let trimmed = line.trim_start();
            line.len() > trimmed.len()
                && trimmed
                    .strip_prefix(table)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .nth(occurrence)
        .map(|(i, _)| i + 1)
}

impl PipelineFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Pipeline {
            path: path.display().to_string(),
            message: err.to_string(),
        })?;
        let mut file = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.column_type_dictionary = file
            .column_type_dictionary
            .map(|location| location.relative_to(base));
        Ok(file)
    }

    /// Parses the YAML text; `origin` names it in errors. Malformed YAML, an unknown key, a
    /// duplicate table or a table name that is not a plain identifier is an error naming the line.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError::Pipeline {
            path: origin.to_owned(),
            message,
        };
        // serde_norway's messages carry "at line L column C".
        let raw: RawPipelineFile =
            serde_norway::from_str(text).map_err(|e| error(e.to_string()))?;
        let threshold = |value: f64, whose: &str| {
            Fraction::new(value).map_err(|reason| {
                format!("row_count_drop_threshold{whose}: {reason} (the share of the previous snapshot's rows a snapshot may lose: 0 = none, 0.05 = 5 %)")
            })
        };
        let row_count_drop_threshold = match raw.row_count_drop_threshold {
            None => DEFAULT_ROW_COUNT_DROP_THRESHOLD,
            Some(value) => threshold(value, "").map_err(error)?,
        };
        let mut seen = BTreeSet::new();
        let mut tables = Vec::new();
        for (name, RawTableEntry(settings)) in raw.tables.0 {
            let line =
                |n| line_of_table(text, &name, n).map_or(String::new(), |l| format!("line {l}: "));
            let table =
                TableName::new(name.clone()).map_err(|e| error(format!("{}{e}", line(0))))?;
            if !seen.insert(name.clone()) {
                return Err(error(format!("{}table {name} is listed twice", line(1))));
            }
            let completeness_column = settings.completeness_column.unwrap_or_else(|| "id".into());
            if !is_plain_identifier(&completeness_column) {
                return Err(error(format!(
                    "{}completeness_column {completeness_column:?} of {name} is not a plain identifier",
                    line(0)
                )));
            }
            let table_threshold = settings
                .row_count_drop_threshold
                .map(|value| threshold(value, &format!(" of {name}")))
                .transpose()
                .map_err(|message| error(format!("{}{message}", line(0))))?;
            tables.push(TableConfig {
                name: table,
                schedule: settings.schedule,
                completeness_column,
                keep_as_text: settings.keep_as_text,
                row_count_drop_threshold: table_threshold,
            });
        }
        Ok(Self {
            column_type_dictionary: raw.column_type_dictionary,
            max_lookback_days: raw.max_lookback_days,
            row_count_drop_threshold,
            tables,
        })
    }

    /// The share of the previous snapshot's rows `table`'s snapshot may lose: the table's
    /// override, else the file's `row_count_drop_threshold`, else 0.
    pub fn row_count_drop_threshold(&self, table: &TableName) -> Fraction {
        self.table(table)
            .and_then(|t| t.row_count_drop_threshold)
            .unwrap_or(self.row_count_drop_threshold)
    }

    pub fn table(&self, name: &TableName) -> Option<&TableConfig> {
        self.tables.iter().find(|t| &t.name == name)
    }

    /// The table's settings, or the defaults for a table the file does not name.
    pub fn table_or_default(&self, name: &TableName) -> TableConfig {
        self.table(name)
            .cloned()
            .unwrap_or_else(|| TableConfig::with_defaults(name.clone()))
    }

    pub fn contains(&self, name: &TableName) -> bool {
        self.table(name).is_some()
    }
}

#[cfg(test)]
mod tests;
