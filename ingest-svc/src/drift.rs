//! Paging drift: noticing that a query's pages did not add up to the records it announced.
//!
//! Tascomi pages with offsets over a live table. Between two page requests a record can move
//! (an update reorders the table, a record is created or deleted before the current offset), so
//! one record is served twice and another never. Nothing in a single page shows it; what shows
//! it is the sum: after the last page, the distinct record ids received are fewer than
//! `X-Number-Of-Results` announced, or the announced count changed from one page to the next.
//!
//! A [`Tally`] follows one query: the count each page announced and the id of every record
//! received (records later skipped as "today" included). The stage re-queries when it is not
//! clean ([`Tally::verdict`]), writing only records whose id it has not received yet.
//!
//! Memory: the ids are kept as one sorted `Vec<u64>` (8 bytes per record of the query: 40 MB
//! for the 5 million records of production's largest table, `documents`, during its full load;
//! nothing for the other queries of the run once they are done). A decimal id is kept as its
//! number; any other id as a 63-bit hash of its JSON text with the top bit set, so the two never
//! collide with each other (two non-decimal ids may, about once in 2^63 pairs).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Re-queries of one query at most, when its records do not add up. Each is a whole pass over
/// the query (for a full load: the whole table again), so the bound is small.
pub const MAX_REQUERIES: u32 = 3;

/// The key of a record's `id`: its number when decimal (`"4211"` or `4211`), else a hash of the
/// id's JSON text with the top bit set. `None` for a record without an id (or a null one): it
/// cannot be told apart from another.
pub fn record_key(record: &Map<String, Value>) -> Option<u64> {
    const HASHED: u64 = 1 << 63;
    let id = record.get("id")?;
    let decimal = match id {
        Value::String(text) => text
            .parse::<u64>()
            .ok()
            .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())),
        Value::Number(number) => number.as_u64(),
        Value::Null => return None,
        _ => None,
    };
    match decimal {
        Some(n) if n < HASHED => Some(n),
        _ => Some(fnv1a(id.to_string().as_bytes()) | HASHED),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A set of record keys, 8 bytes a key: the keys of a first pass are appended unsorted (no
/// lookup is needed then) and sorted once; the few keys a re-query adds are kept in a small
/// ordered set until the pass ends.
#[derive(Debug, Default, Clone)]
pub struct IdSet {
    /// Sorted and without duplicates (after [`IdSet::settle`]).
    sorted: Vec<u64>,
    /// Appended by [`IdSet::push`], not yet sorted.
    pending: Vec<u64>,
    /// Added by [`IdSet::insert_new`] during a re-query.
    recent: BTreeSet<u64>,
}

impl IdSet {
    /// Adds a key without looking it up (a first pass).
    pub fn push(&mut self, key: u64) {
        self.pending.push(key);
    }

    /// Adds a key unless it is in the set already; true when it was new. Call
    /// [`IdSet::settle`] after the pushes of a first pass, before this.
    pub fn insert_new(&mut self, key: u64) -> bool {
        debug_assert!(self.pending.is_empty(), "settle() before insert_new()");
        self.sorted.binary_search(&key).is_err() && self.recent.insert(key)
    }

    /// Sorts what was added since the last call into the set.
    pub fn settle(&mut self) {
        if self.pending.is_empty() && self.recent.is_empty() {
            return;
        }
        self.sorted.append(&mut self.pending);
        self.sorted.extend(std::mem::take(&mut self.recent));
        self.sorted.sort_unstable();
        self.sorted.dedup();
        self.sorted.shrink_to_fit();
    }

    /// Distinct keys (exact after [`IdSet::settle`]).
    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.pending.is_empty()
    }
}

/// What one query received, for the drift check.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// The distinct ids received, over every pass.
    pub ids: IdSet,
    /// Records without an id received in the first pass: counted as distinct, never compared.
    pub anonymous: u64,
    /// The count the current pass's page 1 announced.
    pub announced: u64,
    /// A page of the current pass announced another count than its page 1.
    pub count_changed: bool,
    /// Re-queries made.
    pub requeries: u32,
    /// Ids first received in a re-query.
    pub recovered: u64,
}

/// The state of a query after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every announced record arrived and the count held still.
    Clean,
    /// `missing` announced records did not arrive, or (`missing == 0`) the count changed
    /// during the pass, so a record may have moved.
    Drift { missing: u64 },
}

impl Tally {
    /// A first pass whose page 1 announced `announced` records.
    pub fn new(announced: u64) -> Self {
        Self {
            announced,
            ..Self::default()
        }
    }

    /// A re-query whose page 1 announced `announced` records.
    pub fn start_requery(&mut self, announced: u64) {
        self.ids.settle();
        self.requeries += 1;
        self.announced = announced;
        self.count_changed = false;
    }

    /// Notes the count a page announced (pages without the header say nothing).
    pub fn note_count(&mut self, total_results: Option<u64>) {
        if total_results.is_some_and(|total| total != self.announced) {
            self.count_changed = true;
        }
    }

    /// Notes every record of a first-pass page.
    pub fn note_all(&mut self, records: &[Map<String, Value>]) {
        for record in records {
            match record_key(record) {
                Some(key) => self.ids.push(key),
                None => self.anonymous += 1,
            }
        }
    }

    /// Keeps only the records of a re-query page whose id was not received yet (the first of
    /// them if one is served twice), and counts them as recovered.
    pub fn keep_new(&mut self, records: &mut Vec<Map<String, Value>>) {
        records.retain(|record| {
            record_key(record).is_some_and(|key| {
                let new = self.ids.insert_new(key);
                self.recovered += u64::from(new);
                new
            })
        });
    }

    /// Distinct records received so far (sorting what the last pass added).
    pub fn distinct(&mut self) -> u64 {
        self.ids.settle();
        self.ids.len() as u64 + self.anonymous
    }

    /// Whether the query is clean after the pass just ended.
    pub fn verdict(&mut self) -> Verdict {
        let missing = self.announced.saturating_sub(self.distinct());
        if missing == 0 && !self.count_changed {
            Verdict::Clean
        } else {
            Verdict::Drift { missing }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: Value) -> Map<String, Value> {
        let mut record = Map::new();
        record.insert("id".into(), id);
        record
    }

    #[test]
    fn ids_are_numbers_when_decimal_and_hashes_otherwise() {
        assert_eq!(record_key(&rec("4211".into())), Some(4211));
        assert_eq!(record_key(&rec(4211.into())), Some(4211));
        let text = record_key(&rec("A-17".into())).unwrap();
        assert!(text >= 1 << 63);
        assert_eq!(record_key(&rec("A-17".into())), Some(text), "stable");
        assert_ne!(record_key(&rec("A-18".into())), Some(text));
        // "+1", " 1" and "" are not decimal: hashed, so never equal to the id 1.
        for odd in ["+1", " 1", ""] {
            assert!(record_key(&rec(odd.into())).unwrap() >= 1 << 63, "{odd:?}");
        }
        assert_eq!(record_key(&rec(Value::Null)), None);
        assert_eq!(record_key(&Map::new()), None);
    }

    #[test]
    fn a_clean_pass_adds_up_and_duplicates_count_once() {
        let mut tally = Tally::new(3);
        let page = vec![
            rec("1".into()),
            rec("2".into()),
            rec("2".into()),
            rec("3".into()),
        ];
        tally.note_all(&page);
        tally.note_count(Some(3));
        tally.note_count(None);
        assert_eq!(tally.verdict(), Verdict::Clean);
        assert_eq!(tally.distinct(), 3);
    }

    #[test]
    fn a_record_served_twice_and_another_never_is_drift_and_a_requery_recovers_it() {
        // Announced 4; ids 1, 2, 2, 4 arrived (3 moved before the offset).
        let mut tally = Tally::new(4);
        tally.note_all(&[rec("1".into()), rec("2".into())]);
        tally.note_all(&[rec("2".into()), rec("4".into())]);
        assert_eq!(tally.verdict(), Verdict::Drift { missing: 1 });
        tally.start_requery(4);
        let mut page = vec![rec("1".into()), rec("3".into()), rec("3".into())];
        tally.keep_new(&mut page);
        assert_eq!(page, vec![rec("3".into())], "only the new id, once");
        let mut page = vec![rec("2".into()), rec("4".into())];
        tally.keep_new(&mut page);
        assert!(page.is_empty());
        assert_eq!(tally.verdict(), Verdict::Clean);
        assert_eq!((tally.requeries, tally.recovered), (1, 1));
    }

    #[test]
    fn a_count_that_changes_between_pages_is_drift_even_when_nothing_is_short() {
        let mut tally = Tally::new(2);
        tally.note_all(&[rec("1".into()), rec("2".into())]);
        tally.note_count(Some(3));
        assert_eq!(tally.verdict(), Verdict::Drift { missing: 0 });
        // The re-query announces the new count and holds still: clean once all arrived.
        tally.start_requery(3);
        let mut page = vec![rec("1".into()), rec("2".into()), rec("5".into())];
        tally.keep_new(&mut page);
        tally.note_count(Some(3));
        assert_eq!(tally.verdict(), Verdict::Clean);
        assert_eq!(tally.recovered, 1);
    }

    #[test]
    fn records_without_an_id_count_once_and_more_than_announced_is_clean() {
        let mut tally = Tally::new(2);
        tally.note_all(&[Map::new(), rec("9".into()), rec("10".into())]);
        assert_eq!(tally.distinct(), 3);
        assert_eq!(tally.verdict(), Verdict::Clean);
        let mut set = IdSet::default();
        assert!(set.is_empty());
        for key in [5, 3, 5, 1] {
            set.push(key);
        }
        set.settle();
        assert_eq!(set.len(), 3);
        assert!(!set.insert_new(3));
        assert!(set.insert_new(4));
        assert!(!set.insert_new(4));
        set.settle();
        assert_eq!(set.len(), 4);
    }
}
