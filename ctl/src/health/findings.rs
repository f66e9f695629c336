//! What is wrong with a table, and what is merely odd: the findings of [`super::collect`], each
//! with the command that repairs it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::NaiveDate;
use common::layout::{Layer, date_value};

use super::{DEFAULT_NIGHTS, Finding, Letter, QualityRun, Severity, TableHealth, human_duration};
use crate::ops::Gap;
use crate::stage::Stage;
use common::config::Schedule;

/// A stage got slower when its latest run took more than twice its median over the earlier
/// nights shown, and at least this much longer.
pub(super) const SLOWER_BY_AT_LEAST: Duration = Duration::from_secs(60);

pub(super) fn findings<'a>(
    t: &TableHealth,
    gaps: impl Iterator<Item = &'a Gap>,
    flags: &str,
) -> Vec<Finding> {
    let table = &t.table;
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" {flags}")
    };
    let mut out = Vec::new();
    let mut has_gap = false;
    for gap in gaps {
        has_gap = true;
        out.push(match gap {
            Gap::Hole {
                import_date,
                missing,
                ..
            } => Finding {
                severity: Severity::Failing,
                label: "HOLE",
                what: format!(
                    "the raw import {} has no {missing} partition, so no snapshot holds it",
                    date_value(*import_date)
                ),
                fix: format!(
                    "tascomi reset --table {table} --stage {} --from {import_date}{flags}",
                    Stage::publishing(*missing)
                ),
            },
            Gap::Behind {
                snapshot,
                import_date,
                rebuild_from,
                ..
            } => Finding {
                severity: Severity::Failing,
                label: "BEHIND",
                what: format!(
                    "the latest snapshot ({}) is older than the latest raw import {}; the dead-letter queues say why",
                    snapshot.map_or("none".into(), date_value),
                    date_value(*import_date),
                ),
                fix: format!(
                    "after the fix, tascomi redrive --stage <stage>{flags}; without a hole, rebuild: tascomi replay --stage snapshot --table {table} --from {rebuild_from}{flags}"
                ),
            },
        });
    }
    let mut by_stage: BTreeMap<Stage, Vec<&Letter>> = BTreeMap::new();
    for letter in &t.letters {
        by_stage.entry(letter.stage).or_default().push(letter);
    }
    for (stage, letters) in by_stage {
        let dates: BTreeSet<String> = letters
            .iter()
            .filter_map(|l| l.date.map(date_value))
            .collect();
        out.push(Finding {
            severity: Severity::Failing,
            label: "FAILED",
            what: format!(
                "{} message(s) in the {stage} dead-letter queue{}: {}",
                letters.len(),
                if dates.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (dated {})",
                        dates.into_iter().collect::<Vec<_>>().join(", ")
                    )
                },
                letters[0].reason
            ),
            fix: format!("fix the cause, then tascomi redrive --stage {stage}{flags}"),
        });
    }
    if let Some(raw) = t.latest(Layer::Raw)
        && let Some(failed) = raw.number("failed_pages").filter(|n| *n > 0)
    {
        out.push(Finding {
            severity: Severity::Failing,
            label: "FAILED",
            what: format!(
                "{failed} page(s) failed in the raw import of {}; their records are missing until fetched",
                date_value(raw.date)
            ),
            fix: format!(
                "tascomi ingest --table {table} --mode retry-failed --as-of {}{flags} (or the next night fetches them)",
                raw.date
            ),
        });
    }
    // The newest report of each stage: a failed gate published nothing.
    let mut newest: BTreeMap<Stage, &QualityRun> = BTreeMap::new();
    for run in &t.quality {
        newest.insert(run.stage, run);
    }
    for run in newest.values().filter(|r| !r.passed()) {
        let published_later = t
            .on(run.stage.layer(), run.date)
            .is_some_and(|p| p.run_id == run.run_id);
        if published_later {
            continue;
        }
        let failed: Vec<String> = run
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} = {} (threshold {})", c.name, c.value, c.threshold))
            .collect();
        out.push(Finding {
            severity: Severity::Failing,
            label: "FAILED",
            what: format!(
                "the {} data-quality gate failed on {}: {}; nothing was published",
                run.stage,
                date_value(run.date),
                failed.join("; ")
            ),
            fix: format!(
                "fix the data or the dictionary, then tascomi redrive --stage {}{flags}",
                run.stage
            ),
        });
    }
    let snapshot = t.latest(Layer::Snapshot);
    if !has_gap && snapshot.is_none_or(|s| s.date < t.promised) {
        let night = match t.schedule {
            Schedule::Daily => "the ingest of that night",
            Schedule::Weekly => "the ingest of that Sunday or the carry-forward of that night",
        };
        out.push(Finding {
            severity: Severity::Stale,
            label: "STALE",
            what: format!(
                "{}, but every table has the snapshot of {}: {night} did not run or failed (the dead letters say why)",
                snapshot.map_or("no snapshot is published".into(), |s| format!(
                    "the latest snapshot is {}",
                    date_value(s.date)
                )),
                date_value(t.promised)
            ),
            fix: format!(
                "tascomi ingest --table {table} --as-of {}{flags}{}",
                t.promised,
                if flags.is_empty() { "" } else { " --api-url URL" }
            ),
        });
    }
    out.extend(warnings(t, &flags));
    out
}

/// The odd things: a snapshot that shrank, columns that started failing to cast, a stage much
/// slower than usual.
pub(super) fn warnings(t: &TableHealth, flags: &str) -> Vec<Finding> {
    let table = &t.table;
    let mut out = Vec::new();
    let snapshots = t.partitions(Layer::Snapshot);
    if let [.., before, last] = snapshots
        && let (Some(b), Some(l)) = (before.rows, last.rows)
        && l < b
    {
        out.push(Finding {
            severity: Severity::Warning,
            label: "WARN",
            what: format!(
                "the snapshot shrank from {b} rows ({}) to {l} ({}), {:.1} %",
                date_value(before.date),
                date_value(last.date),
                (b - l) as f64 * 100.0 / b as f64
            ),
            fix: format!(
                "check the source; tascomi rollback --table {table} --to {}{flags} makes the previous snapshot the latest again",
                before.date
            ),
        });
    }
    // Columns whose values started failing to cast: per column when the reports were read,
    // else the increment's total.
    let recasts: Vec<&QualityRun> = t
        .quality
        .iter()
        .filter(|r| r.stage == Stage::Recast)
        .collect();
    if let [.., before, last] = recasts.as_slice() {
        let earlier: BTreeMap<&str, f64> = before
            .cast_failures()
            .map(|(column, c)| (column, c.value))
            .collect();
        let started: Vec<String> = last
            .cast_failures()
            .filter(|(column, c)| c.value > 0.0 && earlier.get(column).is_none_or(|v| *v == 0.0))
            .map(|(column, c)| {
                let mut text = format!("{column} ({})", c.value);
                if !c.examples.is_empty() {
                    text.push_str(&format!(", e.g. {}", c.examples.join(", ")));
                }
                text
            })
            .collect();
        if !started.is_empty() {
            out.push(cast_warning(t, last.date, &started.join("; "), flags));
        }
    } else if recasts.is_empty() {
        let increments = t.partitions(Layer::Increment);
        if let [.., before, last] = increments
            && let Some(now) = last.number("cast_failures").filter(|n| *n > 0)
            && before.number("cast_failures").unwrap_or(0) == 0
        {
            out.push(cast_warning(
                t,
                last.date,
                &format!("{now} value(s) in all"),
                flags,
            ));
        }
    }
    for layer in Layer::ALL {
        let runs = t.partitions(layer);
        let Some((last, earlier)) = runs.split_last() else {
            continue;
        };
        let mut durations: Vec<Duration> = earlier
            .iter()
            .rev()
            .take(DEFAULT_NIGHTS as usize)
            .filter_map(|p| p.duration)
            .collect();
        if durations.len() < 3 {
            continue;
        }
        durations.sort();
        let median = durations[durations.len() / 2];
        if let Some(took) = last.duration
            && took > median * 2
            && took >= median + SLOWER_BY_AT_LEAST
        {
            out.push(Finding {
                severity: Severity::Warning,
                label: "WARN",
                what: format!(
                    "{} took {} on {}, against a usual {}",
                    Stage::publishing(layer),
                    human_duration(took),
                    date_value(last.date),
                    human_duration(median)
                ),
                fix: "look at the stage's logs for that night (the run id is in the report); more rows, a slower API or a busier host are the usual causes".into(),
            });
        }
    }
    out
}

pub(super) fn cast_warning(
    t: &TableHealth,
    date: NaiveDate,
    columns: &str,
    flags: &str,
) -> Finding {
    Finding {
        severity: Severity::Warning,
        label: "WARN",
        what: format!(
            "values started failing to cast on {} (they are null in the increment): {columns}",
            date_value(date)
        ),
        fix: format!(
            "correct the column-type dictionary (tascomi drift{flags} compares it with the data), then tascomi replay --stage recast --table {} --from {date}{flags}",
            t.table
        ),
    }
}
