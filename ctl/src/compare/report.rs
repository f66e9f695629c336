//! What a comparison found, per table, and how it is printed: text for people, JSON for
//! machines (`--json`).

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use super::plan::Relation;

/// Where one side's snapshot is and how big it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideSummary {
    /// `<database>.<table>`, with the data directory for a local lake.
    pub place: String,
    /// `YYYYMMDD`, when a snapshot was found.
    pub snapshot_date: Option<String>,
    /// `s3://bucket/prefix/` of its files.
    pub location: Option<String>,
    pub files: usize,
    pub rows: u64,
    pub columns: usize,
}

/// Ids found on one side only (or twice on a side): how many, and the smallest few.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IdSample {
    pub count: u64,
    pub examples: Vec<Value>,
}

/// A column whose type is not the same on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeDifference {
    pub column: String,
    /// The Arrow type, with Athena's name when it has one: `Int32 (int)`.
    pub left: String,
    pub right: String,
    pub relation: Relation,
    /// The type the values were compared as; `None`: not compared (no common type).
    pub compared_as: Option<String>,
    /// Whether it makes the snapshots differ (`--ignore-widening` forgives a width).
    pub counts: bool,
}

/// One id whose value of a column differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueExample {
    pub id: Value,
    /// The value as printed (`None`: null).
    pub left: Option<String>,
    pub right: Option<String>,
}

/// A column with values that differ among the ids on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueDifference {
    pub column: String,
    /// Ids on both sides whose values differ.
    pub count: u64,
    /// The smallest ids that differ, with both values.
    pub examples: Vec<ValueExample>,
    /// Whether each side's values are text (quoted in the text report, so that spaces show).
    #[serde(skip)]
    pub text: (bool, bool),
}

/// The comparison of one table's two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableComparison {
    pub table: String,
    pub identical: bool,
    /// Why the table could not be compared (no snapshot on a side, no id column): a difference.
    pub problem: Option<String>,
    pub left: SideSummary,
    pub right: SideSummary,
    /// Ids on both sides (each compared column was compared on these).
    pub ids_on_both_sides: u64,
    pub only_left: IdSample,
    pub only_right: IdSample,
    /// Rows whose id a side already had: only an id's first row is compared.
    pub duplicate_ids_left: IdSample,
    pub duplicate_ids_right: IdSample,
    pub rows_without_id_left: u64,
    pub rows_without_id_right: u64,
    pub columns_only_left: Vec<String>,
    pub columns_only_right: Vec<String>,
    /// Columns typed differently (a width or a change of type).
    pub type_differences: Vec<TypeDifference>,
    /// Columns of the same type to Athena written otherwise (INT96 and INT64 timestamps): not a
    /// difference, listed for information.
    pub encoding_differences: Vec<TypeDifference>,
    pub value_differences: Vec<ValueDifference>,
    /// Columns left out (`--ignore-columns`).
    pub ignored_columns: Vec<String>,
}

impl TableComparison {
    /// A table that could not be compared.
    pub fn problem(table: &str, left: SideSummary, right: SideSummary, problem: String) -> Self {
        Self {
            table: table.to_owned(),
            problem: Some(problem),
            left,
            right,
            ..Self::default()
        }
    }

    /// Whether the two snapshots hold the same rows with the same values and types. Duplicate
    /// ids and rows without an id are a difference when the sides do not have as many.
    pub fn is_identical(&self) -> bool {
        self.problem.is_none()
            && self.left.rows == self.right.rows
            && self.only_left.count == 0
            && self.only_right.count == 0
            && self.duplicate_ids_left.count == self.duplicate_ids_right.count
            && self.rows_without_id_left == self.rows_without_id_right
            && self.columns_only_left.is_empty()
            && self.columns_only_right.is_empty()
            && !self.type_differences.iter().any(|t| t.counts)
            && self.value_differences.is_empty()
    }

    /// The table's part of the text report.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let verdict = match (&self.problem, self.identical) {
            (Some(_), _) => "NOT COMPARED",
            (None, true) => "identical",
            (None, false) => "DIFFERENCES",
        };
        let _ = writeln!(out, "{}: {verdict}", self.table);
        for (name, side) in [("left ", &self.left), ("right", &self.right)] {
            let _ = write!(out, "  {name}: {}", side.place);
            if let Some(date) = &side.snapshot_date {
                let _ = write!(
                    out,
                    " snapshot_date={date}: {} rows, {} columns, {} file(s)",
                    side.rows, side.columns, side.files
                );
            }
            out.push('\n');
        }
        if let Some(problem) = &self.problem {
            let _ = writeln!(out, "  not compared: {problem}");
            return out;
        }
        let _ = writeln!(out, "  ids on both sides: {}", self.ids_on_both_sides);
        for (what, sample) in [
            ("ids only left", &self.only_left),
            ("ids only right", &self.only_right),
            ("duplicate ids left", &self.duplicate_ids_left),
            ("duplicate ids right", &self.duplicate_ids_right),
        ] {
            if sample.count > 0 {
                let _ = writeln!(out, "  {what}: {}{}", sample.count, examples(sample));
            }
        }
        if self.duplicate_ids_left.count + self.duplicate_ids_right.count > 0 {
            out.push_str("    (only the first row of a duplicate id is compared)\n");
        }
        for (what, rows) in [
            ("rows without id left", self.rows_without_id_left),
            ("rows without id right", self.rows_without_id_right),
        ] {
            if rows > 0 {
                let _ = writeln!(out, "  {what}: {rows}");
            }
        }
        for (what, columns) in [
            ("columns only left", &self.columns_only_left),
            ("columns only right", &self.columns_only_right),
        ] {
            if !columns.is_empty() {
                let _ = writeln!(out, "  {what}: {}", columns.join(", "));
            }
        }
        for t in &self.type_differences {
            let compared = t.compared_as.as_deref().map_or_else(
                || "values not compared (no common type)".to_owned(),
                |c| format!("values compared as {c}"),
            );
            let forgiven = if t.counts {
                ""
            } else {
                " (ignored: width only)"
            };
            let _ = writeln!(
                out,
                "  type differs: {}: {} left, {} right; {compared}{forgiven}",
                t.column, t.left, t.right
            );
        }
        if !self.value_differences.is_empty() {
            let _ = writeln!(
                out,
                "  values differ in {} column(s):",
                self.value_differences.len()
            );
        }
        for v in &self.value_differences {
            let _ = writeln!(
                out,
                "    {}: {} of {} ids",
                v.column, v.count, self.ids_on_both_sides
            );
            for e in &v.examples {
                let _ = writeln!(
                    out,
                    "      id {}: left {}, right {}",
                    id_text(&e.id),
                    shown(e.left.as_deref(), v.text.0),
                    shown(e.right.as_deref(), v.text.1)
                );
            }
        }
        for t in &self.encoding_differences {
            let _ = writeln!(
                out,
                "  same type, other encoding (not a difference): {}: {} left, {} right",
                t.column, t.left, t.right
            );
        }
        if !self.ignored_columns.is_empty() {
            let _ = writeln!(
                out,
                "  ignored columns: {}",
                self.ignored_columns.join(", ")
            );
        }
        out
    }
}

/// `" (e.g. 7, 9)"`, or nothing without examples.
fn examples(sample: &IdSample) -> String {
    if sample.examples.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = sample.examples.iter().map(id_text).collect();
    format!(" (e.g. {})", ids.join(", "))
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

/// A value for the text report: text quoted (so that spaces show), cut after 120 characters.
fn shown(value: Option<&str>, quoted: bool) -> String {
    let Some(value) = value else {
        return "null".into();
    };
    let (cut, more) = match value.char_indices().nth(120) {
        Some((end, _)) => (&value[..end], "..."),
        None => (value, ""),
    };
    if quoted {
        format!("{cut:?}{more}")
    } else {
        format!("{cut}{more}")
    }
}

/// What `tascomi compare` found: one comparison per table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareOutcome {
    /// Every table identical.
    pub identical: bool,
    pub tables: Vec<TableComparison>,
    /// Print as JSON (`--json`).
    #[serde(skip)]
    pub json: bool,
}

impl CompareOutcome {
    pub fn new(mut tables: Vec<TableComparison>, json: bool) -> Self {
        for table in &mut tables {
            table.identical = table.is_identical();
        }
        Self {
            identical: tables.iter().all(|t| t.identical),
            tables,
            json,
        }
    }

    /// Whether any table differs (or could not be compared).
    pub fn differences_found(&self) -> bool {
        !self.identical
    }

    /// 0 when every table is identical, 1 when differences were found.
    pub fn exit_code(&self) -> ExitCode {
        if self.differences_found() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }

    /// What the command prints: [`CompareOutcome::text`], or the JSON document with `--json`.
    pub fn render(&self) -> String {
        if self.json {
            self.to_json()
        } else {
            self.text()
        }
    }

    /// One JSON document (and a newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|err| {
            serde_json::json!({"error": format!("the comparison did not serialise: {err}")})
                .to_string()
        });
        text.push('\n');
        text
    }

    /// The text report: each table, then one summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for table in &self.tables {
            out.push_str(&table.text());
        }
        let differing = self.tables.iter().filter(|t| !t.identical).count();
        let _ = writeln!(
            out,
            "{} table(s) compared: {} identical, {differing} with differences",
            self.tables.len(),
            self.tables.len() - differing
        );
        out
    }
}
