//! One row per id: which of an import's rows for one id the parsed layer keeps.
//!
//! The Tascomi API pages with offsets over a live table, so one import's raw partition can hold
//! the same record twice (served on two pages while rows moved) or two versions of one id
//! (updated between two page requests). The parsed layer keeps one row per id:
//!
//! 1. the row with the latest `last_updated`, read as London wall-clock time
//!    ([`parse_london_timestamp`]: Tascomi's own text as it reads, a value with a zone converted);
//!    a null `last_updated` is older than any other value, and a value that does not read as a
//!    timestamp is older than any that does (such values compare among themselves as text);
//! 2. on a tie, the row of the later page;
//! 3. on a tie again, the later row (storage order within the pass).
//!
//! Each row dropped is counted: as a `duplicate_records_collapsed` when its JSON text is the same
//! as the kept row's (a record served twice), otherwise as a `superseded_versions_dropped` (an
//! older version, or a different record with the same `last_updated` on an earlier page). Both
//! are informational checks (they always pass) with a few example ids. Rows without an id are
//! all kept: the gate's `missing_id` check fails them.
//!
//! Ids are compared as the gate's `unique_id` check compares them (text ids that Arrow reads as
//! 64-bit integers compare as numbers: `1` and `01` are one id), so that check can only fail
//! through a bug.
//!
//! Memory: pass 1 ([`Chooser`]) holds one hash-table entry per distinct id: the id (8 bytes for
//! an integer id) and a 16-byte `Candidate` (plus the `last_updated` text, only while the best
//! row's value does not read as a timestamp). [`Chooser::finish`] frees them: what pass 2 needs
//! ([`Selection`]) is only the contested ids and the positions of the rows dropped. Pass 2
//! fingerprints the text of contested rows only, to tell copies from versions.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use arrow::array::{Array, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use common::layout::parse_london_timestamp;
use common::quality::CheckResult;

/// The check counting rows dropped because the kept row has the same JSON text.
pub const DUPLICATES_COLLAPSED: &str = "duplicate_records_collapsed";
/// The check counting rows dropped because another version of their id was kept.
pub const VERSIONS_SUPERSEDED: &str = "superseded_versions_dropped";
/// How many example ids each check names.
pub const MAX_EXAMPLES: usize = 5;

/// The rank of a null (or absent) `last_updated`: older than everything.
const NULL_RANK: i64 = i64::MIN;
/// The rank of a `last_updated` that does not read as a timestamp: older than every timestamp
/// (the text decides between two such values). Readable values rank by their London wall-clock
/// microseconds, which never come near these two (chrono's dates stop at year -262143).
const UNREADABLE_RANK: i64 = i64::MIN + 1;

/// An id as the gate compares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Int(i64),
    Text(Box<str>),
}

impl IdKey {
    fn example(&self) -> String {
        match self {
            IdKey::Int(v) => v.to_string(),
            IdKey::Text(t) => t.to_string(),
        }
    }
}

/// The keys of a batch's ids (`None` for a missing id), read as
/// [`common::quality::QualityCheck`] reads the parsed `id` column: Arrow's cast to Int64 where
/// it succeeds, the text otherwise.
pub fn id_keys(ids: &[Option<&str>]) -> Vec<Option<IdKey>> {
    let texts = StringArray::from(ids.to_vec());
    let ints = cast(&texts, &DataType::Int64).ok();
    let ints = ints.as_ref().map(|a| a.as_primitive::<Int64Type>());
    ids.iter()
        .enumerate()
        .map(|(row, id)| {
            let id = (*id)?;
            Some(match ints.filter(|a| a.is_valid(row)) {
                Some(a) => IdKey::Int(a.value(row)),
                None => IdKey::Text(id.into()),
            })
        })
        .collect()
}

/// The best row so far for one id. `ordinal` numbers the pass's kept rows from 0 in storage
/// order, the same in both passes; it identifies the row.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    rank: i64,
    /// `i32::MIN` for a row without a page number (ordered first; never an identity).
    page: i32,
    ordinal: u32,
}

/// Pass 1: offered every kept row in storage order, chooses each id's row.
#[derive(Debug, Default)]
pub struct Chooser {
    ints: HashMap<i64, Candidate>,
    texts: HashMap<Box<str>, Candidate>,
    /// The `last_updated` text of the best rows whose value does not read as a timestamp.
    unreadable: HashMap<u32, Box<str>>,
    /// The ids offered more than once, each with its index in `contests`.
    contest_of: HashMap<IdKey, usize>,
    contests: Vec<IdKey>,
    /// The rows dropped so far: ordinal -> contest.
    dropped: HashMap<u32, usize>,
}

impl Chooser {
    /// Offers the row `ordinal` (counted over the pass, in storage order: every offer's ordinal
    /// is larger than the last) of `page`, whose id is `id` and whose `last_updated` text is
    /// `last_updated`.
    pub fn offer(
        &mut self,
        id: IdKey,
        last_updated: Option<&str>,
        page: Option<i32>,
        ordinal: u32,
    ) {
        let rank = match last_updated {
            None => NULL_RANK,
            Some(text) => parse_london_timestamp(text)
                .map_or(UNREADABLE_RANK, |at| at.and_utc().timestamp_micros()),
        };
        let offered = Candidate {
            rank,
            page: page.unwrap_or(i32::MIN),
            ordinal,
        };
        let unreadable_text = last_updated.filter(|_| rank == UNREADABLE_RANK);
        let best = match &id {
            IdKey::Int(v) => self.ints.get_mut(v),
            IdKey::Text(t) => self.texts.get_mut(t),
        };
        let Some(best) = best else {
            if let Some(text) = unreadable_text {
                self.unreadable.insert(ordinal, text.into());
            }
            match id {
                IdKey::Int(v) => self.ints.insert(v, offered),
                IdKey::Text(t) => self.texts.insert(t, offered),
            };
            return;
        };
        let wins = match offered.rank.cmp(&best.rank) {
            std::cmp::Ordering::Equal if rank == UNREADABLE_RANK => {
                let held = self.unreadable.get(&best.ordinal).map(AsRef::as_ref);
                match unreadable_text.cmp(&held) {
                    std::cmp::Ordering::Equal => offered.page >= best.page,
                    other => other.is_gt(),
                }
            }
            std::cmp::Ordering::Equal => offered.page >= best.page,
            other => other.is_gt(),
        };
        let loser = if wins {
            let replaced = std::mem::replace(best, offered);
            self.unreadable.remove(&replaced.ordinal);
            if let Some(text) = unreadable_text {
                self.unreadable.insert(ordinal, text.into());
            }
            replaced.ordinal
        } else {
            ordinal
        };
        let next = self.contests.len();
        let contest = *self.contest_of.entry(id.clone()).or_insert(next);
        if contest == next {
            self.contests.push(id);
        }
        self.dropped.insert(loser, contest);
    }

    /// The rows chosen, for pass 2; the per-id entries are freed.
    pub fn finish(self) -> Selection {
        let mut kept = HashMap::with_capacity(self.contests.len());
        for (index, id) in self.contests.iter().enumerate() {
            let best = match id {
                IdKey::Int(v) => self.ints.get(v),
                IdKey::Text(t) => self.texts.get(t),
            };
            if let Some(best) = best {
                kept.insert(best.ordinal, index);
            }
        }
        Selection {
            dropped: self.dropped,
            kept,
            contests: self
                .contests
                .into_iter()
                .map(|id| Contest {
                    id: id.example(),
                    ..Contest::default()
                })
                .collect(),
            rows_seen: 0,
        }
    }
}

/// Pass 2: which rows are written, and how the dropped ones compare with the kept one.
#[derive(Debug, Default)]
pub struct Selection {
    /// Ordinal of a dropped row -> its contest.
    dropped: HashMap<u32, usize>,
    /// Ordinal of a contested id's kept row -> its contest.
    kept: HashMap<u32, usize>,
    contests: Vec<Contest>,
    rows_seen: u64,
}

/// One id offered more than once.
#[derive(Debug, Default)]
struct Contest {
    id: String,
    /// The fingerprint of the kept row's text, once pass 2 has met it.
    kept: Option<u64>,
    /// Fingerprints of dropped rows met before the kept one.
    pending: Vec<u64>,
    collapsed: u64,
    superseded: u64,
}

impl Contest {
    fn classify(&mut self, dropped: u64, kept: u64) {
        if dropped == kept {
            self.collapsed += 1;
        } else {
            self.superseded += 1;
        }
    }
}

/// A fingerprint of a record's JSON text (SipHash with fixed keys, the same for the whole
/// process). Only the counts depend on it: a collision (odds 2^-64) would count a version as a
/// copy, never change which row is written.
fn fingerprint(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// What a selection did to the partition, once pass 2 has met every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collapsed {
    pub duplicates: u64,
    pub duplicate_examples: Vec<String>,
    pub superseded: u64,
    pub superseded_examples: Vec<String>,
}

impl Collapsed {
    /// The two informational checks; they always pass.
    pub fn checks(&self) -> [CheckResult; 2] {
        [
            CheckResult {
                check: DUPLICATES_COLLAPSED.into(),
                passed: true,
                value: self.duplicates as f64,
                threshold: 0.0,
                examples: self.duplicate_examples.clone(),
            },
            CheckResult {
                check: VERSIONS_SUPERSEDED.into(),
                passed: true,
                value: self.superseded as f64,
                threshold: 0.0,
                examples: self.superseded_examples.clone(),
            },
        ]
    }
}

impl Selection {
    /// Whether pass 2 writes the row `ordinal` whose JSON text is `record`. Call once per kept
    /// row, in the order of pass 1.
    pub fn keep(&mut self, ordinal: u32, record: &str) -> bool {
        self.rows_seen += 1;
        if let Some(&contest) = self.dropped.get(&ordinal) {
            let contest = &mut self.contests[contest];
            let dropped = fingerprint(record);
            match contest.kept {
                Some(kept) => contest.classify(dropped, kept),
                None => contest.pending.push(dropped),
            }
            return false;
        }
        if let Some(&contest) = self.kept.get(&ordinal) {
            let contest = &mut self.contests[contest];
            let kept = fingerprint(record);
            contest.kept = Some(kept);
            for dropped in std::mem::take(&mut contest.pending) {
                contest.classify(dropped, kept);
            }
        }
        true
    }

    /// Rows dropped (known after pass 1).
    pub fn dropped(&self) -> usize {
        self.dropped.len()
    }

    /// The counts, once pass 2 has offered every row: `Err` says how pass 2 differed from pass 1
    /// (`rows` is the number of rows pass 1 saw), which only a raw file changed between the
    /// passes could do.
    pub fn outcome(&self, rows: u64) -> Result<Collapsed, String> {
        if self.rows_seen != rows {
            return Err(format!(
                "the first pass read {rows} records and the second {}",
                self.rows_seen
            ));
        }
        let mut outcome = Collapsed::default();
        for contest in &self.contests {
            if contest.kept.is_none() {
                return Err(format!(
                    "the second pass did not meet the row kept for id {}",
                    contest.id
                ));
            }
            outcome.duplicates += contest.collapsed;
            outcome.superseded += contest.superseded;
            if contest.collapsed > 0 && outcome.duplicate_examples.len() < MAX_EXAMPLES {
                outcome.duplicate_examples.push(contest.id.clone());
            }
            if contest.superseded > 0 && outcome.superseded_examples.len() < MAX_EXAMPLES {
                outcome.superseded_examples.push(contest.id.clone());
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row: id, last_updated, page, JSON text.
    type Row<'a> = (&'a str, Option<&'a str>, Option<i32>, &'a str);

    /// Runs both passes over `rows`; returns the texts written and the counts.
    fn select(rows: &[Row]) -> (Vec<String>, Collapsed) {
        let ids: Vec<Option<&str>> = rows.iter().map(|r| Some(r.0)).collect();
        let mut chooser = Chooser::default();
        for (ordinal, (key, row)) in id_keys(&ids).into_iter().zip(rows).enumerate() {
            chooser.offer(key.unwrap(), row.1, row.2, ordinal as u32);
        }
        let mut selection = chooser.finish();
        let written = rows
            .iter()
            .enumerate()
            .filter(|(ordinal, row)| selection.keep(*ordinal as u32, row.3))
            .map(|(_, row)| row.3.to_owned())
            .collect();
        let outcome = selection.outcome(rows.len() as u64).unwrap();
        (written, outcome)
    }

    #[test]
    fn distinct_ids_are_all_kept_and_nothing_is_counted() {
        let (written, outcome) = select(&[
            ("1", Some("2026-11-20 10:00:00"), Some(1), "a"),
            ("2", None, Some(1), "b"),
            ("x", Some("junk"), None, "c"),
        ]);
        assert_eq!(written, ["a", "b", "c"]);
        assert_eq!(outcome, Collapsed::default());
        assert!(outcome.checks().iter().all(|c| c.passed && c.value == 0.0));
    }

    #[test]
    fn a_record_served_twice_is_kept_once_and_counted_as_collapsed() {
        let (written, outcome) = select(&[
            ("1", Some("2026-11-20 10:00:00"), Some(1), "one"),
            ("2", Some("2026-11-20 10:00:00"), Some(1), "two"),
            ("2", Some("2026-11-20 10:00:00"), Some(2), "two"),
            ("3", Some("2026-11-20 10:00:00"), Some(2), "three"),
        ]);
        assert_eq!(written, ["one", "two", "three"]);
        assert_eq!(outcome.duplicates, 1);
        assert_eq!(outcome.duplicate_examples, ["2"]);
        assert_eq!(outcome.superseded, 0);
        let checks = outcome.checks();
        assert_eq!(checks[0].check, "duplicate_records_collapsed");
        assert_eq!(checks[0].value, 1.0);
        assert!(checks[0].passed && checks[1].passed);
    }

    #[test]
    fn the_later_last_updated_wins_whatever_the_order() {
        // The newer version first, on the earlier page, then the older one.
        let (written, outcome) = select(&[
            ("7", Some("2026-11-20 12:00:00"), Some(1), "new"),
            ("7", Some("2026-11-20 09:00:00"), Some(2), "old"),
        ]);
        assert_eq!(written, ["new"]);
        assert_eq!((outcome.duplicates, outcome.superseded), (0, 1));
        assert_eq!(outcome.superseded_examples, ["7"]);
        // The older version first.
        let (written, _) = select(&[
            ("7", Some("2026-11-20 09:00:00"), Some(1), "old"),
            ("7", Some("2026-11-20 12:00:00"), Some(2), "new"),
        ]);
        assert_eq!(written, ["new"]);
    }

    #[test]
    fn last_updated_compares_as_london_wall_clock() {
        // 10:30Z in summer is 11:30 in London: later than 11:00 London.
        let (written, _) = select(&[
            ("1", Some("2026-07-01T10:30:00Z"), Some(1), "zoned"),
            ("1", Some("2026-07-01 11:00:00"), Some(2), "plain"),
        ]);
        assert_eq!(written, ["zoned"]);
        // In text order the offset value would be the later one ('T' after ' '); as time,
        // 12:30+03:00 is 10:30 in London, before 11:00.
        let (written, _) = select(&[
            ("1", Some("2026-07-01 11:00:00"), Some(1), "plain"),
            ("1", Some("2026-07-01T12:30:00+03:00"), Some(2), "offset"),
        ]);
        assert_eq!(written, ["plain"]);
    }

    #[test]
    fn null_and_unreadable_last_updated_are_older_than_any_date() {
        let (written, _) = select(&[
            ("1", Some("2000-01-01 00:00:00"), Some(1), "dated"),
            ("1", None, Some(2), "null"),
            ("1", Some("not a date"), Some(3), "junk"),
        ]);
        assert_eq!(written, ["dated"]);
        let (written, outcome) = select(&[
            ("1", Some("b"), Some(1), "b"),
            ("1", Some("a"), Some(2), "a"),
            ("1", None, Some(3), "null"),
        ]);
        assert_eq!(written, ["b"], "unreadable values compare as text");
        assert_eq!(outcome.superseded, 2);
    }

    #[test]
    fn a_tie_goes_to_the_later_page_then_the_later_row() {
        // Page 2 stored before page 1: the page number decides, not the storage order.
        let (written, outcome) = select(&[
            ("5", Some("2026-11-20 10:00:00"), Some(2), "page 2"),
            ("5", Some("2026-11-20 10:00:00"), Some(1), "page 1"),
        ]);
        assert_eq!(written, ["page 2"]);
        assert_eq!(
            outcome.superseded, 1,
            "different text: a version, not a copy"
        );
        let (written, _) = select(&[
            ("5", None, Some(1), "first"),
            ("5", None, Some(1), "second"),
        ]);
        assert_eq!(written, ["second"]);
        let (written, _) = select(&[
            ("5", Some("x"), Some(1), "first"),
            ("5", Some("x"), Some(1), "second"),
        ]);
        assert_eq!(written, ["second"]);
    }

    #[test]
    fn ids_compare_as_the_gate_compares_them() {
        let (written, outcome) = select(&[
            ("1", None, Some(1), "a"),
            ("01", None, Some(1), "b"),
            ("A", None, Some(1), "c"),
            ("a", None, Some(1), "d"),
        ]);
        assert_eq!(written, ["b", "c", "d"]);
        assert_eq!(outcome.superseded_examples, ["1"]);
    }

    #[test]
    fn copies_and_versions_of_one_id_are_counted_apart() {
        let (written, outcome) = select(&[
            ("9", Some("2026-11-19 08:00:00"), Some(1), "v1"),
            ("9", Some("2026-11-20 08:00:00"), Some(2), "v2"),
            ("9", Some("2026-11-19 08:00:00"), Some(3), "v1"),
            ("9", Some("2026-11-20 08:00:00"), Some(4), "v2"),
        ]);
        assert_eq!(written, ["v2"]);
        assert_eq!((outcome.duplicates, outcome.superseded), (1, 2));
        assert_eq!(outcome.duplicate_examples, ["9"]);
        assert_eq!(outcome.superseded_examples, ["9"]);
    }

    #[test]
    fn a_second_pass_that_differs_is_reported() {
        let mut chooser = Chooser::default();
        chooser.offer(IdKey::Int(1), None, Some(1), 0);
        chooser.offer(IdKey::Int(1), None, Some(1), 1);
        let mut selection = chooser.finish();
        assert_eq!(selection.dropped(), 1);
        assert!(!selection.keep(0, "x"));
        assert!(
            selection
                .outcome(2)
                .unwrap_err()
                .contains("first pass read 2")
        );
        assert!(
            selection
                .outcome(1)
                .unwrap_err()
                .contains("did not meet the row kept for id 1")
        );
    }
}
