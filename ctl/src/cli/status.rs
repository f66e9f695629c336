//! `status` and `report`: the deployment's health as text, and as the morning page.

use anyhow::Context;
use chrono::NaiveDate;
use common::layout::{Layer, TableName, date_value};

use crate::health;
use crate::target::Target;
use crate::verdict::Repair;

/// `status --verbose` as of a date, as text.
pub async fn status_report(target: &Target, as_of: NaiveDate) -> anyhow::Result<String> {
    let options = health::Options {
        as_of: Some(as_of),
        ..health::Options::default()
    };
    Ok(status_text(&health::collect(target, &options).await?, true))
}

/// `status`: the summary, then one line per finding (worst first) with its repair; with
/// `verbose`, every table and layer and the queues.
pub fn status_text(health: &health::Health, verbose: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "as of {} ({})", health.as_of, health.as_of_reason);
    let _ = writeln!(out, "{}", health.summary_line());
    let mut findings: Vec<(&TableName, &health::Finding)> = health
        .tables
        .iter()
        .flat_map(|t| t.findings.iter().map(move |f| (&t.table, f)))
        .collect();
    findings.sort_by_key(|(_, f)| std::cmp::Reverse(f.severity));
    for (table, finding) in &findings {
        let _ = writeln!(out, "{:<8}{table}: {}", finding.label, finding.what);
        let _ = writeln!(out, "        repair: {}", finding.fix);
    }
    for letter in &health.other_letters {
        let _ = writeln!(
            out,
            "FAILED  {} dead letter ({}): {}",
            letter.stage,
            letter
                .table
                .as_deref()
                .unwrap_or("a message naming no table"),
            letter.reason
        );
    }
    if !verbose {
        if !findings.is_empty() || health.dead_letters() > 0 {
            out.push_str(
                "(--verbose for every table and layer and the queues; `tascomi report` draws the last nights)\n",
            );
        }
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:<10} {:>10} {:>6} {:>10} {:>5}  state",
        "table", "layer", "latest", "age", "rows", "parts"
    );
    for t in &health.tables {
        for layer in Layer::ALL {
            let published = t.partitions(layer);
            let latest = published.last();
            let state = if layer == Layer::Snapshot {
                match t.condition() {
                    health::Condition::Fresh => "fresh",
                    health::Condition::Stale => "STALE",
                    health::Condition::Failing => "FAILING",
                }
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{:<28} {:<10} {:>10} {:>6} {:>10} {:>5}  {state}",
                t.table.as_str(),
                layer.name(),
                latest.map_or("-".into(), |p| date_value(p.date)),
                latest.map_or("-".into(), |p| format!(
                    "{}d",
                    (health.as_of - p.date).num_days()
                )),
                latest
                    .and_then(|p| p.rows)
                    .map_or("-".into(), |r| r.to_string()),
                published.len(),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:>8} {:>9} {:>12}",
        "queue", "waiting", "in flight", "dead letters"
    );
    for q in &health.queues {
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>9} {:>12}",
            q.stage.name(),
            q.depth.visible,
            q.depth.in_flight,
            q.dead_letters.map_or("?".into(), |d| d.to_string())
        );
    }
    out
}

/// `tascomi report`: collects and writes the page (aside, then renamed: a reader never sees
/// half a page), and prints where, how large, and the summary line.
#[allow(clippy::print_stdout)]
pub async fn write_report(
    target: &Target,
    out: &std::path::Path,
    nights: u32,
    as_of: Option<NaiveDate>,
    repair: &Repair,
) -> anyhow::Result<health::Health> {
    let started = std::time::Instant::now();
    let options = health::Options {
        as_of,
        nights,
        quality: true,
        letters: true,
        repair: repair.clone(),
    };
    let health = health::collect(target, &options).await?;
    let page = crate::report::render(&health);
    let partial = out.with_extension("html.partial");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&partial, &page).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, out).with_context(|| format!("replacing {}", out.display()))?;
    println!(
        "wrote {} ({} kB, in {:.1} s): as of {}, {}",
        out.display(),
        page.len().div_ceil(1024),
        started.elapsed().as_secs_f64(),
        health.as_of,
        health.summary_line()
    );
    Ok(health)
}
