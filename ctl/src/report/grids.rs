//! The report's grids: each data-quality check and each column's cast failures, night by night.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use common::layout::date_value;

use super::esc;
use super::numbers::short_number;
use crate::health::{self, Health, QualityRun, TableHealth};
use crate::stage::Stage;

/// Per stage and check, each night's result: passed, failed, or the figure of an informational
/// check. Cast failures per column have their own grid.
pub(super) fn quality_grid(
    page: &mut String,
    health: &Health,
    t: &TableHealth,
    nights: &[NaiveDate],
) {
    page.push_str("<h4>Data quality</h4>\n");
    if !health.quality_read {
        page.push_str("<p class=\"quiet\">Not read.</p>\n");
        return;
    }
    if t.quality.is_empty() {
        page.push_str(
            "<p class=\"quiet\">No data-quality report in these nights (no stage ran on this table).</p>\n",
        );
        return;
    }
    let mut runs: BTreeMap<(Stage, NaiveDate), &QualityRun> = BTreeMap::new();
    let mut checks: Vec<(Stage, String)> = Vec::new();
    for run in &t.quality {
        runs.insert((run.stage, run.date), run);
        for c in &run.checks {
            if c.name.starts_with("cast_failures_") {
                continue;
            }
            let key = (run.stage, c.name.clone());
            if !checks.contains(&key) {
                checks.push(key);
            }
        }
    }
    checks.sort_by_key(|a| a.0);
    // A check that passed every night with nothing to say is folded into one line.
    let (shown, quiet): (Vec<_>, Vec<_>) = checks.into_iter().partition(|(stage, name)| {
        t.quality
            .iter()
            .filter(|r| r.stage == *stage)
            .flat_map(|r| r.checks.iter().filter(|c| c.name == *name))
            .any(|c| !c.passed || figure(&c.name, c.value).is_some())
    });
    if !shown.is_empty() {
        page.push_str(
            "<div class=\"scroll\"><table class=\"grid\"><thead><tr><th>stage &middot; check</th>",
        );
        for d in nights {
            let _ = write!(page, "<th>{}</th>", d.format("%d %b"));
        }
        page.push_str("</tr></thead><tbody>\n");
    }
    for (stage, name) in &shown {
        let (stage, name) = (*stage, name.as_str());
        let _ = write!(page, "<tr><td>{stage} &middot; {}</td>", esc(name));
        for d in nights {
            let check = runs
                .get(&(stage, *d))
                .and_then(|r| r.checks.iter().find(|c| c.name == name));
            match check {
                None => page.push_str("<td class=\"none\">&middot;</td>"),
                Some(c) => {
                    let figure = figure(&c.name, c.value);
                    let mut title = format!(
                        "{} {} on {}: {} (threshold {})",
                        stage,
                        c.name,
                        date_value(*d),
                        c.value,
                        c.threshold
                    );
                    if !c.examples.is_empty() {
                        let _ = write!(title, "; e.g. {}", c.examples.join(", "));
                    }
                    let (class, mark) = if c.passed {
                        ("pass", "&#10003;")
                    } else {
                        ("failc", "&#10007;")
                    };
                    let _ = write!(
                        page,
                        "<td class=\"{class}\" title=\"{}\">{mark}{}</td>",
                        esc(&title),
                        figure.map_or(String::new(), |f| format!(" {}", esc(&f)))
                    );
                }
            }
        }
        page.push_str("</tr>\n");
    }
    if !shown.is_empty() {
        page.push_str("</tbody></table></div>\n");
    }
    if !quiet.is_empty() {
        let mut by_stage: BTreeMap<Stage, Vec<String>> = BTreeMap::new();
        for (stage, name) in quiet {
            by_stage.entry(stage).or_default().push(name);
        }
        let runs = t.quality.len();
        let listed: Vec<String> = by_stage
            .into_iter()
            .map(|(stage, names)| format!("<b>{stage}</b> {}", esc(&names.join(", "))))
            .collect();
        let _ = writeln!(
            page,
            "<p class=\"quiet\">&#10003; Passed in every one of the {runs} report(s), nothing to note: {}.</p>",
            listed.join("; ")
        );
    }
}

/// The figure worth printing beside a check's mark: completeness as a percentage, the row
/// count change signed, counts when not zero.
pub(super) fn figure(check: &str, value: f64) -> Option<String> {
    if check.starts_with("completeness") {
        return (value < 1.0).then(|| format!("{:.1} %", value * 100.0));
    }
    if check == "row_count_change" {
        return Some(format!("{:+.1} %", value * 100.0));
    }
    (value != 0.0).then(|| short_number(value))
}

/// Values that failed to cast, per column and night (only the columns with any).
pub(super) fn cast_grid(page: &mut String, health: &Health, t: &TableHealth, nights: &[NaiveDate]) {
    if !health.quality_read {
        return;
    }
    let mut columns: BTreeMap<&str, BTreeMap<NaiveDate, &health::CheckFacts>> = BTreeMap::new();
    for run in t.quality.iter().filter(|r| r.stage == Stage::Recast) {
        for (column, c) in run.cast_failures() {
            if c.value > 0.0 {
                columns.entry(column).or_default().insert(run.date, c);
            }
        }
    }
    page.push_str("<h4>Cast failures per column</h4>\n");
    if columns.is_empty() {
        page.push_str("<p class=\"quiet\">No value failed to cast in these nights.</p>\n");
        return;
    }
    let most = columns
        .values()
        .flat_map(|n| n.values().map(|c| c.value))
        .fold(1.0, f64::max);
    page.push_str("<div class=\"scroll\"><table class=\"grid\"><thead><tr><th>column</th>");
    for d in nights {
        let _ = write!(page, "<th>{}</th>", d.format("%d %b"));
    }
    page.push_str("</tr></thead><tbody>\n");
    for (column, by_night) in columns {
        let _ = write!(page, "<tr><td>{}</td>", esc(column));
        for d in nights {
            match by_night.get(d) {
                None => page.push_str("<td class=\"none\">&middot;</td>"),
                Some(c) => {
                    let alpha = 0.15 + 0.65 * (c.value / most);
                    let title = if c.examples.is_empty() {
                        format!("{column} on {}: {}", date_value(*d), c.value)
                    } else {
                        format!(
                            "{column} on {}: {}, e.g. {}",
                            date_value(*d),
                            c.value,
                            c.examples.join(", ")
                        )
                    };
                    let _ = write!(
                        page,
                        "<td style=\"background:rgba(207,34,46,{alpha:.2})\" title=\"{}\">{}</td>",
                        esc(&title),
                        short_number(c.value)
                    );
                }
            }
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>\n");
}
