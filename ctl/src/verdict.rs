//! Whether a command on the embedded default did what it was asked, table by table.
//!
//! The contract: a command that runs stages here (`run`, `ingest`, `replay`, `reset`,
//! `redrive` with `--local`) reports success only when every table it covered reached the
//! snapshot it was meant to write, published in the catalog, and nothing it handled was
//! dead-lettered or left pages unfetched. Otherwise it names each table and why, from what the
//! stages themselves said (dead-letter reasons, the failed pages ingest recorded, the journal
//! of failed attempts), and exits non-zero. Nothing here re-implements a stage's checks.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use chrono::NaiveDate;
use common::layout::{Layer, TableName, date_value};
use common::publish::published_partitions;
use ingest_svc::state::{self, FailedPage};

use crate::local::{DeadLetterMark, LocalPipeline};

/// Which raw import of a table must have no failed pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportCheck {
    /// No ingest ran: nothing to check.
    None,
    /// The import of this date (a nightly or operator run).
    On(NaiveDate),
    /// The table's latest import (a retry-failed run repairs that one).
    Latest,
}

/// What a command expected of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub table: TableName,
    /// The snapshot partition that must be published afterwards.
    pub snapshot: NaiveDate,
    pub import: ImportCheck,
}

/// One table's result: `problems` empty means it reached its snapshot.
#[derive(Debug, Clone)]
pub struct TableVerdict {
    pub table: TableName,
    pub snapshot: NaiveDate,
    pub problems: Vec<String>,
}

impl TableVerdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How to phrase the repair commands: the flags the operator used (`--data-dir ...`), without
/// any secret.
#[derive(Debug, Clone, Default)]
pub struct Repair {
    /// Appended to every suggested command, e.g. `--local --data-dir data/council`.
    pub target_flags: String,
}

/// Every table's verdict, and the dead letters that name none of the tables judged.
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    pub tables: Vec<TableVerdict>,
    /// `<stage>: <reason>` of each new dead letter whose message names no judged table (a
    /// message that does not decode, or another table's).
    pub other_letters: Vec<String>,
}

impl Verdicts {
    /// True when every table reached its snapshot and nothing else was dead-lettered.
    pub fn ok(&self) -> bool {
        self.tables.iter().all(TableVerdict::ok) && self.other_letters.is_empty()
    }

    pub fn failed_tables(&self) -> usize {
        self.tables.iter().filter(|v| !v.ok()).count()
    }

    /// One line per table (`ok` or `FAILED` with every reason), then one per other letter.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for v in &self.tables {
            if v.ok() {
                let _ = writeln!(
                    text,
                    "ok      {}: snapshot {} published",
                    v.table,
                    date_value(v.snapshot)
                );
            } else {
                for problem in &v.problems {
                    let _ = writeln!(text, "FAILED  {}: {problem}", v.table);
                }
            }
        }
        for letter in &self.other_letters {
            let _ = writeln!(text, "FAILED  {letter} (in the dead-letter queue)");
        }
        text
    }
}

/// Judges each expectation after the work is done: new dead letters since `mark` naming the
/// table, failed pages of the import checked, and the snapshot partition in the catalog.
pub async fn judge(
    local: &LocalPipeline,
    expected: &[Expectation],
    mark: &DeadLetterMark,
    repair: &Repair,
) -> anyhow::Result<Verdicts> {
    let letters = local.dead_letters_since(mark);
    let journal = local.journal();
    let expected = dedup(expected);
    let mut out = Verdicts::default();
    for (stage, letter) in &letters {
        let named = letter.table();
        if !expected.iter().any(|e| {
            named.as_deref() == Some(e.table.as_str())
                && letter.as_of().is_none_or(|d| d == e.snapshot)
        }) {
            out.other_letters.push(format!(
                "{stage}: {}: {}",
                named.as_deref().unwrap_or("(a message naming no table)"),
                letter.reason()
            ));
        }
    }
    for expectation in expected {
        let table = &expectation.table;
        let mut problems = Vec::new();
        for (stage, letter) in &letters {
            // A letter of another date of the same table belongs to that date's verdict.
            if letter.table().as_deref() == Some(table.as_str())
                && letter.as_of().is_none_or(|d| d == expectation.snapshot)
            {
                problems.push(if letter.interrupted() {
                    format!(
                        "interrupted before {stage} finished{}: nothing of it is published; the next run, tascomi redrive --stage {stage} {}, repeats {stage} and every later stage",
                        letter.as_of().map_or(String::new(), |d| format!(" the partition of {}", date_value(d))),
                        repair.target_flags
                    )
                } else {
                    format!(
                        "{stage} failed: {} (in the {stage} dead-letter queue; after the fix: tascomi redrive --stage {stage} {})",
                        letter.reason(),
                        repair.target_flags
                    )
                });
            }
        }
        if let Some(pages) = failed_pages(local, table, expectation.import).await? {
            problems.push(describe_failed_pages(table, &pages, repair));
        }
        if !snapshot_published(local, table, expectation.snapshot).await? {
            let mut text = format!(
                "no snapshot published for {}",
                date_value(expectation.snapshot)
            );
            let reasons = journal.failures(table.as_str());
            if problems.is_empty() && !reasons.is_empty() {
                let _ = write!(text, " (last failure: {})", reasons.join("; "));
            }
            problems.push(text);
        }
        out.tables.push(TableVerdict {
            table: table.clone(),
            snapshot: expectation.snapshot,
            problems,
        });
    }
    Ok(out)
}

/// Repeated (table, snapshot) pairs judged once, in first-seen order.
fn dedup(expected: &[Expectation]) -> Vec<Expectation> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for e in expected {
        if seen.insert((e.table.clone(), e.snapshot), ()).is_none() {
            out.push(e.clone());
        }
    }
    out
}

/// The failed pages, with the import's date, of the import `check` names, if it has any.
async fn failed_pages(
    local: &LocalPipeline,
    table: &TableName,
    check: ImportCheck,
) -> anyhow::Result<Option<(NaiveDate, Vec<FailedPage>)>> {
    if check == ImportCheck::None {
        return Ok(None);
    }
    let platform = &local.platform;
    let table_state = state::load(&platform.storage, &platform.layout.raw_bucket, table)
        .await
        .with_context(|| format!("reading the ingest state of {table}"))?;
    let import = match check {
        ImportCheck::On(date) => table_state.imports.get(&date),
        ImportCheck::Latest => table_state.latest(),
        ImportCheck::None => None,
    };
    Ok(import
        .filter(|i| !i.failed_pages.is_empty())
        .map(|i| (i.import_date, i.failed_pages.clone())))
}

fn describe_failed_pages(
    table: &TableName,
    (date, pages): &(NaiveDate, Vec<FailedPage>),
    repair: &Repair,
) -> String {
    let first = pages.first().map(|p| p.error.as_str()).unwrap_or_default();
    format!(
        "{} page(s) failed in the raw import of {} (first: {first}); its records are missing \
         from the layers until fetched: tascomi ingest --table {table} --mode retry-failed \
         --as-of {date} {}, or the next nightly run fetches them again",
        pages.len(),
        date_value(*date),
        repair.target_flags,
    )
}

async fn snapshot_published(
    local: &LocalPipeline,
    table: &TableName,
    date: NaiveDate,
) -> anyhow::Result<bool> {
    let platform = &local.platform;
    let partition = platform.layout.partition(table, Layer::Snapshot, date);
    let published = published_partitions(platform.catalog.as_ref(), &partition)
        .await
        .with_context(|| format!("listing the snapshots of {table}"))?;
    Ok(published.iter().any(|(d, _)| *d == date))
}
