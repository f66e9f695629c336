//! The comparison of two snapshots of one table, batch by batch, by id.
//!
//! **Memory.** The left side is held: its Arrow batches as read (columnar, not rows), each
//! compared column also cast to the type it is compared as when that differs, and a `HashMap`
//! of id → (batch, row). The right side is streamed, one batch at a time, and only its ids are
//! kept (a `HashSet`, to find duplicates and the ids only on the left). So memory is one table
//! in Arrow form plus about 50 bytes per row for the two id maps (integer ids; more for text
//! ids): fine for tables up to a few million rows, which is every Tascomi table. A comparison
//! of larger tables would have to sort both sides by id and merge them instead.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use anyhow::Context;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, make_comparator,
};
use arrow::compute::kernels::cmp::not_distinct;
use arrow::compute::{SortOptions, cast, interleave, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use super::plan::{ColumnPlan, Relation, Side, type_name};
use super::report::{IdSample, TableComparison, TypeDifference, ValueDifference, ValueExample};

/// What to compare and how much to tell.
#[derive(Debug, Clone)]
pub struct Options {
    /// The column rows are matched by (`id`).
    pub id_column: String,
    /// How many example ids (and values) per finding.
    pub examples: usize,
    /// A type that differs only in width is listed but is not a difference.
    pub ignore_widening: bool,
    /// Columns left out of the comparison.
    pub ignore_columns: BTreeSet<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            id_column: "id".into(),
            examples: 5,
            ignore_widening: false,
            ignore_columns: BTreeSet::new(),
        }
    }
}

/// An id, as the two sides are matched by: a number when both sides' ids are integers, else
/// text.
trait Key: Clone + Eq + Hash + Ord + std::fmt::Debug {
    const TYPE: DataType;
    /// The keys of an array of [`Key::TYPE`] (`None`: null).
    fn keys(array: &dyn Array) -> Vec<Option<Self>>;
    fn json(&self) -> Value;
}

impl Key for i64 {
    const TYPE: DataType = DataType::Int64;
    fn keys(array: &dyn Array) -> Vec<Option<Self>> {
        array.as_primitive::<Int64Type>().iter().collect()
    }
    fn json(&self) -> Value {
        Value::from(*self)
    }
}

impl Key for Box<str> {
    const TYPE: DataType = DataType::Utf8;
    fn keys(array: &dyn Array) -> Vec<Option<Self>> {
        array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(Box::from))
            .collect()
    }
    fn json(&self) -> Value {
        Value::String(self.to_string())
    }
}

/// The `cap` smallest keys seen, with a value each.
#[derive(Debug)]
struct Smallest<K, V> {
    cap: usize,
    items: BTreeMap<K, V>,
}

impl<K: Ord, V> Smallest<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            items: BTreeMap::new(),
        }
    }

    fn wants(&self, key: &K) -> bool {
        self.items.len() < self.cap || self.items.last_key_value().is_some_and(|(k, _)| key < k)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.wants(&key) {
            self.items.insert(key, value);
            if self.items.len() > self.cap {
                self.items.pop_last();
            }
        }
    }
}

/// A count of ids and the smallest of them.
#[derive(Debug)]
struct Ids<K> {
    count: u64,
    smallest: Smallest<K, ()>,
}

impl<K: Key> Ids<K> {
    fn new(cap: usize) -> Self {
        Self {
            count: 0,
            smallest: Smallest::new(cap),
        }
    }

    fn add(&mut self, key: &K) {
        self.count += 1;
        if self.smallest.wants(key) {
            self.smallest.insert(key.clone(), ());
        }
    }

    fn sample(&self) -> IdSample {
        IdSample {
            count: self.count,
            examples: self.smallest.items.keys().map(Key::json).collect(),
        }
    }
}

/// A compared column: name, left type, right type, plan.
type Column = (String, DataType, DataType, ColumnPlan);

/// A column compared value by value.
#[derive(Debug)]
struct Compared<K> {
    name: String,
    left_type: DataType,
    right_type: DataType,
    plan: ColumnPlan,
    differing: u64,
    examples: Smallest<K, (Option<String>, Option<String>)>,
}

/// One batch of the held (left) side, per compared column: as read, as compared, and where a
/// text did not parse.
#[derive(Debug)]
struct Held {
    read: Vec<ArrayRef>,
    prepared: Vec<ArrayRef>,
    lost: Vec<Option<BooleanArray>>,
    matched: Vec<bool>,
}

/// The column `name` of `batch` as `data_type`: all nulls when the file lacks it, cast when
/// the file has it otherwise typed than the side's first file.
fn column(batch: &RecordBatch, name: &str, data_type: &DataType) -> anyhow::Result<ArrayRef> {
    match batch.column_by_name(name) {
        None => Ok(arrow::array::new_null_array(data_type, batch.num_rows())),
        Some(array) if array.data_type() == data_type => Ok(array.clone()),
        Some(array) => cast(array, data_type).with_context(|| {
            format!(
                "column {name} is {data_type} in one file and {} in another of the same snapshot",
                array.data_type()
            )
        }),
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// A value as printed (`None`: null).
fn display(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(formatter) => Some(formatter.value(row).to_string()),
        Err(_) => Some(format!("<{}>", array.data_type())),
    }
}

/// Per row, whether `left` and `right` hold the same value (two nulls are the same).
fn same_values(left: &dyn Array, right: &dyn Array) -> anyhow::Result<BooleanArray> {
    if let Ok(same) = not_distinct(&left, &right) {
        return Ok(same);
    }
    // Nested types: value by value.
    let compare = make_comparator(left, right, SortOptions::default())?;
    Ok((0..left.len())
        .map(|i| Some(compare(i, i).is_eq()))
        .collect())
}

/// The comparison of one table, with ids of type `K`.
#[derive(Debug)]
struct Engine<K> {
    options: Options,
    id: (DataType, DataType),
    compared: Vec<Compared<K>>,
    held: Vec<Held>,
    index: HashMap<K, (u32, u32)>,
    right_seen: HashSet<K>,
    rows: (u64, u64),
    both: u64,
    only_right: Ids<K>,
    duplicates: (Ids<K>, Ids<K>),
    without_id: (u64, u64),
}

impl<K: Key> Engine<K> {
    fn new(options: Options, id: (DataType, DataType), columns: Vec<Column>) -> Self {
        let cap = options.examples;
        let compared = columns
            .into_iter()
            .map(|(name, left_type, right_type, plan)| Compared {
                name,
                left_type,
                right_type,
                plan,
                differing: 0,
                examples: Smallest::new(cap),
            })
            .collect();
        Self {
            options,
            id,
            compared,
            held: Vec::new(),
            index: HashMap::new(),
            right_seen: HashSet::new(),
            rows: (0, 0),
            both: 0,
            only_right: Ids::new(cap),
            duplicates: (Ids::new(cap), Ids::new(cap)),
            without_id: (0, 0),
        }
    }

    fn keys(&self, batch: &RecordBatch, data_type: &DataType) -> anyhow::Result<Vec<Option<K>>> {
        let ids = column(batch, &self.options.id_column, data_type)?;
        let ids = cast(&ids, &K::TYPE)
            .with_context(|| format!("reading the ids ({data_type}) as {}", K::TYPE))?;
        Ok(K::keys(ids.as_ref()))
    }

    fn push_left(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let number = u32::try_from(self.held.len()).context("too many batches")?;
        let keys = self.keys(batch, &self.id.0)?;
        for (row, key) in keys.into_iter().enumerate() {
            let Some(key) = key else {
                self.without_id.0 += 1;
                continue;
            };
            match self.index.entry(key) {
                Entry::Occupied(seen) => self.duplicates.0.add(seen.key()),
                Entry::Vacant(new) => {
                    new.insert((number, u32::try_from(row).context("batch too large")?));
                }
            }
        }
        let mut held = Held {
            read: Vec::with_capacity(self.compared.len()),
            prepared: Vec::with_capacity(self.compared.len()),
            lost: Vec::with_capacity(self.compared.len()),
            matched: vec![false; batch.num_rows()],
        };
        for c in &self.compared {
            let read = column(batch, &c.name, &c.left_type)?;
            let (prepared, lost) = c
                .plan
                .prepare(Side::Left, &read)
                .with_context(|| format!("casting column {} on the left", c.name))?;
            held.read.push(read);
            held.prepared.push(prepared);
            held.lost.push(lost);
        }
        self.held.push(held);
        self.rows.0 += batch.num_rows() as u64;
        Ok(())
    }

    fn push_right(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        self.rows.1 += batch.num_rows() as u64;
        let keys = self.keys(batch, &self.id.1)?;
        let mut left_rows: Vec<(usize, usize)> = Vec::new();
        let mut right_rows: Vec<u32> = Vec::new();
        let mut matched_keys: Vec<K> = Vec::new();
        for (row, key) in keys.into_iter().enumerate() {
            let Some(key) = key else {
                self.without_id.1 += 1;
                continue;
            };
            if self.right_seen.contains(&key) {
                self.duplicates.1.add(&key);
                continue;
            }
            match self.index.get(&key) {
                None => self.only_right.add(&key),
                Some(&(b, r)) => {
                    self.held[b as usize].matched[r as usize] = true;
                    left_rows.push((b as usize, r as usize));
                    right_rows.push(u32::try_from(row).context("batch too large")?);
                    matched_keys.push(key.clone());
                }
            }
            self.right_seen.insert(key);
        }
        self.both += left_rows.len() as u64;
        if left_rows.is_empty() {
            return Ok(());
        }
        let take_right = UInt32Array::from(right_rows.clone());
        for (ci, c) in self.compared.iter_mut().enumerate() {
            let read = column(batch, &c.name, &c.right_type)?;
            let (prepared, lost) = c
                .plan
                .prepare(Side::Right, &read)
                .with_context(|| format!("casting column {} on the right", c.name))?;
            let right = take(&prepared, &take_right, None)?;
            let sources: Vec<&dyn Array> =
                self.held.iter().map(|h| h.prepared[ci].as_ref()).collect();
            let left = interleave(&sources, &left_rows)?;
            let same = same_values(left.as_ref(), right.as_ref())
                .with_context(|| format!("comparing column {}", c.name))?;
            for (i, &(b, r)) in left_rows.iter().enumerate() {
                let row = right_rows[i] as usize;
                let lost_left = self.held[b].lost[ci].as_ref().is_some_and(|l| l.value(r));
                let lost_right = lost.as_ref().is_some_and(|l| l.value(row));
                if same.value(i) && !lost_left && !lost_right {
                    continue;
                }
                c.differing += 1;
                let key = &matched_keys[i];
                if c.examples.wants(key) {
                    let values = (
                        display(self.held[b].read[ci].as_ref(), r),
                        display(read.as_ref(), row),
                    );
                    c.examples.insert(key.clone(), values);
                }
            }
        }
        Ok(())
    }

    fn finish(self, out: &mut TableComparison) {
        let mut only_left = Ids::new(self.options.examples);
        for (key, &(b, r)) in &self.index {
            if !self.held[b as usize].matched[r as usize] {
                only_left.add(key);
            }
        }
        out.left.rows = self.rows.0;
        out.right.rows = self.rows.1;
        out.ids_on_both_sides = self.both;
        out.only_left = only_left.sample();
        out.only_right = self.only_right.sample();
        out.duplicate_ids_left = self.duplicates.0.sample();
        out.duplicate_ids_right = self.duplicates.1.sample();
        out.rows_without_id_left = self.without_id.0;
        out.rows_without_id_right = self.without_id.1;
        out.value_differences = self
            .compared
            .into_iter()
            .filter(|c| c.differing > 0)
            .map(|c| ValueDifference {
                text: (is_text(&c.left_type), is_text(&c.right_type)),
                column: c.name,
                count: c.differing,
                examples: c
                    .examples
                    .items
                    .into_iter()
                    .map(|(id, (left, right))| ValueExample {
                        id: id.json(),
                        left,
                        right,
                    })
                    .collect(),
            })
            .collect();
    }
}

#[derive(Debug)]
enum Matching {
    Int(Engine<i64>),
    Text(Engine<Box<str>>),
    /// No id column on a side: rows are only counted.
    None {
        rows: (u64, u64),
    },
}

/// The comparison of one table's two snapshots: feed it every batch of the left side
/// ([`Comparer::push_left`]), then every batch of the right side ([`Comparer::push_right`]),
/// then [`Comparer::finish`]. See the module's documentation for the memory it holds.
#[derive(Debug)]
pub struct Comparer {
    engine: Matching,
    /// The schema findings, filled in at once; rows and values at the end.
    found: TableComparison,
}

impl Comparer {
    /// A comparison of a table whose left snapshot has the columns of `left` (the union of its
    /// files' columns) and whose right snapshot those of `right`.
    pub fn new(table: &str, options: Options, left: &SchemaRef, right: &SchemaRef) -> Self {
        let mut found = TableComparison {
            table: table.to_owned(),
            ..TableComparison::default()
        };
        found.left.columns = left.fields().len();
        found.right.columns = right.fields().len();
        let kept = |name: &String| !options.ignore_columns.contains(name);
        let has = |schema: &SchemaRef, name: &str| schema.field_with_name(name).is_ok();
        found.ignored_columns = options
            .ignore_columns
            .iter()
            .filter(|c| has(left, c) || has(right, c))
            .cloned()
            .collect();
        let mut shared = Vec::new();
        for field in left.fields().iter().filter(|f| kept(f.name())) {
            match right.field_with_name(field.name()) {
                Ok(other) => shared.push((field.clone(), other.clone())),
                Err(_) => found.columns_only_left.push(field.name().clone()),
            }
        }
        found.columns_only_right = right
            .fields()
            .iter()
            .filter(|f| kept(f.name()) && !has(left, f.name()))
            .map(|f| f.name().clone())
            .collect();
        let mut columns: Vec<Column> = Vec::new();
        let mut id = None;
        for (l, r) in &shared {
            let plan = ColumnPlan::of(l.data_type(), r.data_type());
            if plan.relation != Relation::Same {
                let difference = TypeDifference {
                    column: l.name().clone(),
                    left: type_name(l.data_type()),
                    right: type_name(r.data_type()),
                    relation: plan.relation,
                    compared_as: plan.describe_compared(),
                    counts: plan.relation.counts(options.ignore_widening),
                };
                if plan.relation == Relation::Encoding {
                    found.encoding_differences.push(difference);
                } else {
                    found.type_differences.push(difference);
                }
            }
            if *l.name() == options.id_column {
                id = Some((l.data_type().clone(), r.data_type().clone()));
            } else if plan.compared_as.is_some() {
                let types = (l.data_type().clone(), r.data_type().clone());
                columns.push((l.name().clone(), types.0, types.1, plan));
            }
        }
        let engine = match id {
            None => {
                let lacking: Vec<&str> = [("left", left), ("right", right)]
                    .into_iter()
                    .filter(|(_, s)| !has(s, &options.id_column))
                    .map(|(side, _)| side)
                    .collect();
                found.problem = Some(format!(
                    "no id column {:?} on the {} side: rows cannot be matched",
                    options.id_column,
                    lacking.join(" and ")
                ));
                Matching::None { rows: (0, 0) }
            }
            Some((l, r)) if l.is_integer() && r.is_integer() => {
                Matching::Int(Engine::new(options, (l, r), columns))
            }
            Some(types) => Matching::Text(Engine::new(options, types, columns)),
        };
        Self { engine, found }
    }

    /// A batch of the left side (every one before the first of the right side).
    pub fn push_left(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        match &mut self.engine {
            Matching::Int(engine) => engine.push_left(batch),
            Matching::Text(engine) => engine.push_left(batch),
            Matching::None { rows } => {
                rows.0 += batch.num_rows() as u64;
                Ok(())
            }
        }
    }

    /// A batch of the right side.
    pub fn push_right(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        match &mut self.engine {
            Matching::Int(engine) => engine.push_right(batch),
            Matching::Text(engine) => engine.push_right(batch),
            Matching::None { rows } => {
                rows.1 += batch.num_rows() as u64;
                Ok(())
            }
        }
    }

    /// What the comparison found (the sides' places and dates are the caller's to fill in).
    pub fn finish(self) -> TableComparison {
        let mut found = self.found;
        match self.engine {
            Matching::Int(engine) => engine.finish(&mut found),
            Matching::Text(engine) => engine.finish(&mut found),
            Matching::None { rows } => {
                found.left.rows = rows.0;
                found.right.rows = rows.1;
            }
        }
        found.identical = found.is_identical();
        found
    }
}
