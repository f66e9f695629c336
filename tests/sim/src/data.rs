//! The simulated tables: a deterministic history of creations and updates per table, and the
//! records it yields at any instant.
//!
//! Every value is a function of (seed, table, id, version, field): the same configuration always
//! gives the same records. Times are Europe/London wall-clock times, as Tascomi's are.
//!
//! History of a table: `initial_records` ids exist before `start` (their `last_updated` spread
//! over the year before, some null). From `start` on, each day creates `new_per_day` ids and
//! updates `updated_per_day` existing ones, `updated_twice_per_day` of them twice. Updates happen
//! after the run time (default 06:00); before it, only creations. So at the run time of day D
//! "today's" records exist (the run skips them), and every version dated before D is the
//! current version of its id: what a nightly pipeline holds after day D's run is exactly
//! [`Tables::snapshot`] of D.
//!
//! Two options give records as production has them now and then: `future_dated` initial records
//! whose `last_updated` is a hundred years after `start` (a date typed wrong; they exist from the
//! start, and a snapshot holds them), and `zulu_every`, one record version in that many whose
//! `last_updated` is sent as the same instant in UTC with a `Z` (`2026-07-05T23:30:00Z` for
//! 00:30 London time on 6 July), where Tascomi sends London wall-clock time.

use std::collections::BTreeMap;

use chrono::{Datelike as _, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike as _};
use common::dictionary::{ColumnType, ColumnTypes};
use serde_json::{Map, Value};

/// Width of the production `applications` resource.
pub const APPLICATIONS_WIDTH: usize = 752;
/// The field the ingest drops.
pub const IMAGE_FIELD: &str = "gis_map_image_base64";

/// How a table changes over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The first day with events; the initial records are older.
    pub start: NaiveDate,
    pub initial_records: u32,
    pub new_per_day: u32,
    pub updated_per_day: u32,
    /// Of the updated ids, how many are updated a second time later the same day.
    pub updated_twice_per_day: u32,
    /// One initial record in this many has a null `last_updated` (0: none).
    pub null_last_updated_every: u32,
    /// One record version in this many carries a `gis_map_image_base64` (0: none).
    pub image_every: u32,
    /// This many initial records (spread over the ids) have a `last_updated` a hundred years
    /// after `start`, after any clock's today in the tests; they are never updated.
    pub future_dated: u32,
    /// One record version in this many has its `last_updated` sent in UTC with a `Z` (0: none;
    /// 1: every one). The instant, and so its London day, is the same.
    pub zulu_every: u32,
    /// Updates happen after this London time of day; before it, only creations.
    pub run_time: NaiveTime,
}

impl Default for History {
    fn default() -> Self {
        Self {
            start: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default(),
            initial_records: 250,
            new_per_day: 5,
            updated_per_day: 8,
            updated_twice_per_day: 2,
            null_last_updated_every: 20,
            image_every: 10,
            future_dated: 0,
            zulu_every: 0,
            run_time: NaiveTime::from_hms_opt(6, 0, 0).unwrap_or_default(),
        }
    }
}

/// One version of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub id: u64,
    pub version: u32,
    pub last_updated: Option<NaiveDateTime>,
}

/// The deterministic generator behind every table.
#[derive(Debug, Clone)]
pub struct Tables {
    pub seed: u64,
    pub dictionary: ColumnTypes,
    /// Tables served beyond the dictionary's (with generic fields).
    pub extra_tables: Vec<String>,
    pub history: History,
    pub table_history: BTreeMap<String, History>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic 64-bit hash of a text (FNV-1a).
pub fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A deterministic 64-bit value from parts.
pub fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED, |h, p| splitmix(h ^ *p))
}

impl Tables {
    pub fn serves(&self, table: &str) -> bool {
        self.dictionary.has_table(table) || self.extra_tables.iter().any(|t| t == table)
    }

    pub fn history(&self, table: &str) -> &History {
        self.table_history.get(table).unwrap_or(&self.history)
    }

    fn h(&self, table: &str, parts: &[u64]) -> u64 {
        let mut all = vec![self.seed, text_hash(table)];
        all.extend_from_slice(parts);
        mix(&all)
    }

    /// The field names of a table's records, in the order the API sends them.
    pub fn fields(&self, table: &str) -> Vec<String> {
        fn push(name: &str, fields: &mut Vec<String>) {
            if !fields.iter().any(|f| f == name) {
                fields.push(name.to_owned());
            }
        }
        let mut fields: Vec<String> = vec!["id".into(), "last_updated".into()];
        let mut typed: Vec<&str> = self.dictionary.columns(table).map(|(c, _)| c).collect();
        typed.sort_unstable();
        for column in typed {
            push(column, &mut fields);
        }
        if table == "applications" {
            push("application_reference_number", &mut fields);
        }
        for column in ["reference", "description", "status_text"] {
            push(column, &mut fields);
        }
        push(IMAGE_FIELD, &mut fields);
        if table == "applications" {
            let mut n = 1;
            while fields.len() < APPLICATIONS_WIDTH {
                push(&format!("extra_text_field_{n:03}"), &mut fields);
                n += 1;
            }
        }
        fields
    }

    /// The events of one day, in time order: `(time, id, is_creation)`.
    fn day_events(&self, table: &str, day: NaiveDate) -> Vec<(NaiveDateTime, u64, bool)> {
        let history = self.history(table);
        if day < history.start {
            return Vec::new();
        }
        let k = (day - history.start).num_days() as u64;
        let first_new = u64::from(history.initial_records) + k * u64::from(history.new_per_day) + 1;
        let existing = first_new - 1;
        let run_secs = u64::from(history.run_time.num_seconds_from_midnight());
        let after_run = |h: u64| {
            let span = 86_400 - run_secs;
            day.and_time(history.run_time) + Duration::seconds((h % span.max(1)) as i64)
        };
        let day_key = day.num_days_from_ce() as u64;
        let mut events = Vec::new();
        for j in 0..u64::from(history.new_per_day) {
            let h = self.h(table, &[1, day_key, j]);
            // The first creation of the day happens before the run time: "today's" records
            // exist when the nightly run looks.
            let at = if j == 0 && run_secs > 0 {
                day.and_time(NaiveTime::MIN) + Duration::seconds((h % run_secs) as i64)
            } else {
                after_run(h)
            };
            events.push((at, first_new + j, true));
        }
        if existing > 0 {
            for j in 0..u64::from(history.updated_per_day) {
                let id = 1 + self.h(table, &[2, day_key, j]) % existing;
                if self.is_future_dated(table, id) {
                    // Future-dated records keep their date: never updated.
                    continue;
                }
                let first = after_run(self.h(table, &[3, day_key, j]));
                events.push((first, id, false));
                if j < u64::from(history.updated_twice_per_day) {
                    let end = day.and_time(NaiveTime::MIN) + Duration::days(1);
                    let room = (end - first).num_seconds().max(2) as u64;
                    let second = first
                        + Duration::seconds(
                            (1 + self.h(table, &[4, day_key, j]) % (room - 1)) as i64,
                        );
                    if second < end {
                        events.push((second, id, false));
                    }
                }
            }
        }
        events.sort();
        events
    }

    /// Whether initial record `id` is one of the `future_dated` ones: ids spread evenly.
    fn is_future_dated(&self, table: &str, id: u64) -> bool {
        let history = self.history(table);
        let (n, initial) = (
            u64::from(history.future_dated),
            u64::from(history.initial_records),
        );
        n > 0 && id <= initial && (id * n) % initial.max(1) < n
    }

    fn initial_last_updated(&self, table: &str, id: u64) -> Option<NaiveDateTime> {
        let history = self.history(table);
        let h = self.h(table, &[0, id]);
        if history.null_last_updated_every > 0
            && h.is_multiple_of(u64::from(history.null_last_updated_every))
        {
            return None;
        }
        let days_before = 1 + (h >> 8) % 365;
        let seconds = (h >> 20) % 86_400;
        Some(
            (history.start - Duration::days(days_before as i64)).and_time(NaiveTime::MIN)
                + Duration::seconds(seconds as i64),
        )
    }

    /// Every record's current version at the London wall-clock instant `at` (inclusive), by id.
    pub fn versions_at(&self, table: &str, at: NaiveDateTime) -> BTreeMap<u64, Version> {
        let history = self.history(table);
        let mut versions = BTreeMap::new();
        for id in 1..=u64::from(history.initial_records) {
            let last_updated = self.initial_last_updated(table, id);
            if last_updated.is_none_or(|t| t <= at) {
                let last_updated = if self.is_future_dated(table, id) {
                    // Created when the others were; dated a century on.
                    Some(
                        (history.start + Duration::days(36_525)).and_time(NaiveTime::MIN)
                            + Duration::seconds((id % 86_400) as i64),
                    )
                } else {
                    last_updated
                };
                versions.insert(
                    id,
                    Version {
                        id,
                        version: 0,
                        last_updated,
                    },
                );
            }
        }
        let mut day = history.start;
        while day <= at.date() {
            for (time, id, creation) in self.day_events(table, day) {
                if time > at {
                    break;
                }
                if creation {
                    versions.insert(
                        id,
                        Version {
                            id,
                            version: 0,
                            last_updated: Some(time),
                        },
                    );
                } else if let Some(v) = versions.get_mut(&id) {
                    v.version += 1;
                    v.last_updated = Some(time);
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        versions
    }

    /// What a table holds as of a day: per id, the latest version updated before that day
    /// (records with a null `last_updated` included), in id order.
    pub fn snapshot(&self, table: &str, as_of: NaiveDate) -> Vec<Map<String, Value>> {
        let before = as_of.and_time(NaiveTime::MIN) - Duration::seconds(1);
        self.versions_at(table, before)
            .values()
            .map(|v| self.record(table, v))
            .collect()
    }

    /// A record as the API sends it: every value a JSON string or null.
    pub fn record(&self, table: &str, v: &Version) -> Map<String, Value> {
        let history = self.history(table);
        let fields = self.fields(table);
        let mut record = Map::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            let h = self.h(table, &[5, v.id, u64::from(v.version), i as u64]);
            let value = match field.as_str() {
                "id" => Value::String(v.id.to_string()),
                "last_updated" => match v.last_updated {
                    Some(t) if self.is_zulu(table, v) => {
                        Value::String(london_to_utc(t).format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    }
                    Some(t) => Value::String(t.format("%Y-%m-%d %H:%M:%S").to_string()),
                    None => Value::Null,
                },
                IMAGE_FIELD => {
                    let every = u64::from(history.image_every);
                    if every > 0
                        && self
                            .h(table, &[6, v.id, u64::from(v.version)])
                            .is_multiple_of(every)
                    {
                        Value::String(image(h))
                    } else {
                        Value::Null
                    }
                }
                // Reference numbers, unless the dictionary types the field.
                name if name.contains("reference")
                    && self.dictionary.column_type(table, name).is_none() =>
                {
                    Value::String(format!("{}/{:05}/{}", 2020 + h % 7, v.id, name.len()))
                }
                name => match self.dictionary.column_type(table, name) {
                    _ if h.is_multiple_of(13) => Value::Null,
                    Some(t) => Value::String(typed_value(t, h)),
                    None => Value::String(text_value(table, name, v, h)),
                },
            };
            record.insert(field.clone(), value);
        }
        record
    }
}

impl Tables {
    /// Whether this version's `last_updated` is sent in UTC with a `Z`.
    fn is_zulu(&self, table: &str, v: &Version) -> bool {
        let every = u64::from(self.history(table).zulu_every);
        every > 0
            && self
                .h(table, &[8, v.id, u64::from(v.version)])
                .is_multiple_of(every)
    }
}

/// A London wall-clock time as UTC (the earlier instant when the clocks go back).
fn london_to_utc(local: NaiveDateTime) -> NaiveDateTime {
    use chrono::TimeZone as _;
    chrono_tz::Europe::London
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            chrono_tz::Europe::London
                .from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map_or(local, |t| t.naive_utc())
}

fn typed_value(t: ColumnType, h: u64) -> String {
    let h = h >> 4;
    match t {
        ColumnType::Integer => (h % 100_000).to_string(),
        ColumnType::Long => (h % 10_000_000_000).to_string(),
        ColumnType::Float | ColumnType::Double => format!("{}.{:02}", h % 10_000, (h >> 20) % 100),
        ColumnType::Boolean => if h.is_multiple_of(2) { "t" } else { "f" }.to_owned(),
        ColumnType::Timestamp => {
            let base = NaiveDate::from_ymd_opt(2015, 1, 1)
                .unwrap_or_default()
                .and_time(NaiveTime::MIN);
            (base + Duration::seconds((h % (11 * 365 * 86_400)) as i64))
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        }
        ColumnType::Date => {
            let base = NaiveDate::from_ymd_opt(2015, 1, 1).unwrap_or_default();
            (base + Duration::days((h % (11 * 365)) as i64))
                .format("%Y-%m-%d")
                .to_string()
        }
    }
}

fn text_value(table: &str, field: &str, v: &Version, h: u64) -> String {
    match h % 11 {
        // Text that tests escaping: quotes, a comma, a newline, non-ASCII.
        0 => format!("Line one of {field}\nLine \"two\", ünïcödé – £{} ½", v.id),
        1 => String::new(),
        _ => format!("{table} {field} {} v{}", v.id, v.version),
    }
}

/// A few kilobytes of valid base64, as the API's map images are.
fn image(h: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = h;
    (0..2048)
        .map(|_| {
            x = splitmix(x);
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Tables {
        let dictionary = ColumnTypes::parse(
            r#"[{"integer": {"appeals": ["id", "appeal_count"]}, "boolean": {"appeals": ["is_open"]}, "timestamp": {"appeals": ["last_updated", "date_received"]}}]"#,
            "test",
        )
        .unwrap();
        Tables {
            seed: 7,
            dictionary,
            extra_tables: vec!["applications".into()],
            history: History::default(),
            table_history: BTreeMap::new(),
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn records_are_deterministic_and_values_are_strings_or_null() {
        let t = tables();
        let a = t.snapshot("appeals", day(10));
        assert_eq!(a, t.snapshot("appeals", day(10)));
        assert_eq!(a.len(), 250 + 9 * 5);
        for record in &a {
            assert!(record.values().all(|v| v.is_string() || v.is_null()));
            assert!(record["id"].is_string());
        }
        assert!(a.iter().any(|r| r["last_updated"].is_null()));
        assert!(a.iter().any(|r| r[IMAGE_FIELD].is_string()));
        assert!(
            a.iter()
                .all(|r| r["is_open"].is_null() || r["is_open"] == "t" || r["is_open"] == "f")
        );
        let other = Tables {
            seed: 8,
            ..t.clone()
        };
        assert_ne!(a, other.snapshot("appeals", day(10)));
    }

    #[test]
    fn future_dated_records_exist_from_the_start_and_zulu_times_name_the_same_instant() {
        let mut t = tables();
        t.history.future_dated = 3;
        t.history.zulu_every = 1;
        t.history.start = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        t.history.run_time = NaiveTime::from_hms_opt(1, 0, 0).unwrap();
        let day6 = NaiveDate::from_ymd_opt(2026, 7, 6).unwrap();
        let at_run = day6.and_time(t.history.run_time);
        let current = t.versions_at("appeals", at_run);
        let future: Vec<_> = current
            .values()
            .filter(|v| v.last_updated.is_some_and(|lu| lu.date() > day6))
            .collect();
        assert_eq!(future.len(), 3);
        let snapshot = t.snapshot("appeals", day6);
        assert_eq!(
            snapshot
                .iter()
                .filter(|r| r["last_updated"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("2126")))
                .count(),
            3
        );
        // Today's creation happened before 01:00 London (BST): in UTC, the day before.
        let today: Vec<_> = current
            .values()
            .filter(|v| v.last_updated.is_some_and(|lu| lu.date() == day6))
            .collect();
        assert!(!today.is_empty());
        for v in today {
            let text = t.record("appeals", v)["last_updated"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                text.starts_with("2026-07-05T23:") && text.ends_with('Z'),
                "{text}"
            );
        }
    }

    #[test]
    fn applications_are_as_wide_as_production() {
        let t = tables();
        assert_eq!(t.fields("applications").len(), APPLICATIONS_WIDTH);
        assert!(
            t.fields("applications")
                .contains(&"application_reference_number".to_string())
        );
    }

    #[test]
    fn early_morning_brings_only_new_records_and_some_ids_change_twice_a_day() {
        let t = tables();
        let run = t.history("appeals").run_time;
        let mut twice = 0;
        for d in 1..=20 {
            let events = t.day_events("appeals", day(d));
            for (at, _, creation) in &events {
                if at.time() < run {
                    assert!(creation, "only creations before the run time");
                }
            }
            let mut per_id: BTreeMap<u64, u32> = BTreeMap::new();
            for (_, id, creation) in &events {
                if !creation {
                    *per_id.entry(*id).or_default() += 1;
                }
            }
            twice += per_id.values().filter(|n| **n >= 2).count();
        }
        assert!(twice > 0);
    }

    #[test]
    fn the_snapshot_is_the_latest_version_before_the_day() {
        let t = tables();
        let at_run = day(12).and_time(t.history.run_time);
        let current = t.versions_at("appeals", at_run);
        let snapshot = t.snapshot("appeals", day(12));
        // At the run time, every version dated before the day is current; the rest are today's.
        let before: Vec<_> = current
            .values()
            .filter(|v| v.last_updated.is_none_or(|lu| lu.date() < day(12)))
            .map(|v| t.record("appeals", v))
            .collect();
        assert_eq!(before, snapshot);
        assert!(
            current
                .values()
                .any(|v| v.last_updated.is_some_and(|lu| lu.date() == day(12)))
        );
    }
}
