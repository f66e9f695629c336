//! `tascomi report`: one self-contained HTML page of how every table stands, for the morning
//! look.
//!
//! Inline CSS and inline SVG only: no script, no font, no image, no link to anything outside
//! the page, so it opens the same from a file, a mail attachment or an S3 link, and "no script
//! error" holds by construction. Tables with a problem come first, each as a card; the healthy
//! ones follow as one line each that opens into the same card.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::NaiveDate;
use common::config::Schedule;
use common::layout::{Layer, date_value};

use crate::health::{self, Condition, Health, Letter, Severity, TableHealth};

mod charts;
mod grids;
mod numbers;

use charts::{durations_chart, layer_rows_chart, snapshot_chart, sparkline};
use grids::{cast_grid, quality_grid};
use numbers::{bytes, thousands};

/// The page.
pub fn render(health: &Health) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let title = format!("Tascomi pipeline report, as of {}", health.as_of);
    let _ = writeln!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        esc(&title)
    );
    header(&mut page, health);
    page.push_str("<main>\n");
    problems(&mut page, health);
    healthy(&mut page, health);
    queues(&mut page, health);
    page.push_str("</main>\n");
    footer(&mut page, health);
    page.push_str("</body>\n</html>\n");
    page
}

const STYLE: &str = r#"
:root{--ok:#1a7f37;--ok-bg:#dafbe1;--stale:#9a6700;--stale-bg:#fff8c5;--fail:#cf222e;--fail-bg:#ffebe9;--warn:#bc4c00;--warn-bg:#fff1e5;--ink:#1f2328;--mute:#656d76;--line:#d0d7de;--card:#fff;--page:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--page)}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:17px;margin:26px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:0;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
h4{font-size:13px;margin:14px 0 6px;color:var(--mute);text-transform:uppercase;letter-spacing:.04em}
.sub{color:var(--mute);margin:0 0 12px}
.tiles{display:flex;gap:10px;flex-wrap:wrap;margin:8px 0 4px}
.tile{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--line);border-radius:6px;padding:8px 14px;min-width:120px}
.tile b{display:block;font-size:26px;line-height:1.1}
.tile.ok{border-left-color:var(--ok)}.tile.stale{border-left-color:var(--stale)}.tile.fail{border-left-color:var(--fail)}.tile.warn{border-left-color:var(--warn)}
.tile.zero{opacity:.6}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:0 0 14px}
.card.fail{border-left:6px solid var(--fail)}.card.stale{border-left:6px solid var(--stale)}.card.warn{border-left:6px solid var(--warn)}.card.ok{border-left:6px solid var(--ok)}
.badge{font-size:11px;font-weight:700;border-radius:10px;padding:1px 8px;letter-spacing:.03em}
.badge.fail{background:var(--fail-bg);color:var(--fail)}.badge.stale{background:var(--stale-bg);color:var(--stale)}.badge.warn{background:var(--warn-bg);color:var(--warn)}.badge.ok{background:var(--ok-bg);color:var(--ok)}
.meta{color:var(--mute);font-weight:400;font-size:13px}
ul.findings{list-style:none;padding:0;margin:10px 0 0}
ul.findings li{margin:0 0 8px;padding:6px 10px;border-radius:6px}
ul.findings li.fail{background:var(--fail-bg)}ul.findings li.stale{background:var(--stale-bg)}ul.findings li.warn{background:var(--warn-bg)}
.label{font-weight:700;font-size:12px;margin-right:6px}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eff1f3;border-radius:4px;padding:1px 5px;word-break:break-word}
.fix{display:block;margin-top:3px;color:var(--mute)}
table{border-collapse:collapse}
.scroll{overflow-x:auto;max-width:100%}
table.grid{font-size:12.5px;margin:4px 0}
table.grid th,table.grid td{border-bottom:1px solid #eaeef2;padding:3px 8px;text-align:right;white-space:nowrap}
table.grid th:first-child,table.grid td:first-child{text-align:left}
table.grid thead th{color:var(--mute);font-weight:600}
td.pass{color:var(--ok)}td.failc{background:var(--fail-bg);color:var(--fail);font-weight:700}td.none{color:#afb8c1}
td.bad{color:var(--fail);font-weight:700}td.good{color:var(--ok)}
.charts{display:flex;gap:18px;flex-wrap:wrap;margin-top:6px}
figure{margin:0;flex:1 1 320px;max-width:380px}
figcaption{font-size:12.5px;font-weight:600;margin-bottom:2px}
svg{display:block;width:100%;height:auto}
svg text{font:10px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#57606a}
.legend{font-size:11.5px;color:var(--mute)}
.legend i{display:inline-block;width:9px;height:9px;border-radius:2px;margin:0 3px 0 8px;vertical-align:-1px}
.quiet{color:var(--mute)}
.allgood{background:var(--ok-bg);border:1px solid #aceebb;border-radius:8px;padding:12px 16px;color:#116329;font-weight:600}
details.row{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--ok);border-radius:6px;margin:0 0 6px}
details.row>summary{list-style:none;cursor:pointer;display:grid;grid-template-columns:minmax(150px,1.3fr) 110px 110px 90px minmax(120px,1fr) minmax(120px,1fr) minmax(150px,1.2fr);gap:10px;align-items:center;padding:6px 12px}
details.row>summary::-webkit-details-marker{display:none}
details.row>summary:before{content:"\25B8";position:absolute;margin-left:-10px;color:var(--mute)}
details.row[open]>summary:before{content:"\25BE"}
details.row>summary .name{font-weight:600}
details.row>.card{border:0;border-top:1px solid var(--line);border-radius:0 0 6px 6px;margin:0}
.head{display:grid;grid-template-columns:minmax(150px,1.3fr) 110px 110px 90px minmax(120px,1fr) minmax(120px,1fr) minmax(150px,1.2fr);gap:10px;padding:0 18px 4px;color:var(--mute);font-size:12px}
.spark{width:100%;max-width:160px;height:26px}
.took{display:flex;align-items:center;gap:6px}.took b{font-weight:500;font-size:12.5px;white-space:nowrap;min-width:44px}
footer{color:var(--mute);font-size:12.5px;padding-bottom:30px;margin-top:26px}
footer p{margin:4px 0}
@media (max-width:820px){details.row>summary,.head{grid-template-columns:1fr 1fr 1fr}.head{display:none}}
@media print{details.row>.card{display:block}body{background:#fff}}
"#;

/// HTML-escapes text for element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn header(page: &mut String, health: &Health) {
    let _ = write!(
        page,
        "<header>\n<h1>Tascomi pipeline report</h1>\n<p class=\"sub\">As of <b>{}</b> ({}) &middot; {} night(s) shown &middot; from {} &middot; generated {} UTC</p>\n<div class=\"tiles\">",
        health.as_of,
        esc(&health.as_of_reason),
        health.nights,
        esc(&health.source),
        health.generated_at.format("%Y-%m-%d %H:%M"),
    );
    let tiles = [
        ("ok", health.count(Condition::Fresh) as u64, "fresh"),
        ("stale", health.count(Condition::Stale) as u64, "stale"),
        ("fail", health.count(Condition::Failing) as u64, "failing"),
        ("fail", health.dead_letters(), "dead letters"),
        ("warn", health.warnings() as u64, "warnings"),
    ];
    for (class, n, what) in tiles {
        let zero = if n == 0 && class != "ok" { " zero" } else { "" };
        let _ = write!(
            page,
            "<div class=\"tile {class}{zero}\"><b>{n}</b>{what}</div>"
        );
    }
    let _ = writeln!(
        page,
        "<div class=\"tile\"><b>{}</b>tables</div></div>\n</header>",
        health.tables.len()
    );
}

fn severity_class(severity: Severity) -> &'static str {
    match severity {
        Severity::Failing => "fail",
        Severity::Stale => "stale",
        Severity::Warning => "warn",
    }
}

fn condition_class(t: &TableHealth) -> (&'static str, &'static str) {
    match t.condition() {
        Condition::Failing => ("fail", "FAILING"),
        Condition::Stale => ("stale", "STALE"),
        Condition::Fresh if t.warnings() > 0 => ("warn", "WARNING"),
        Condition::Fresh => ("ok", "FRESH"),
    }
}

/// The tables that need a look: failing, then stale, then fresh with warnings.
fn problems(page: &mut String, health: &Health) {
    let mut tables: Vec<&TableHealth> = health
        .tables
        .iter()
        .filter(|t| !t.findings.is_empty())
        .collect();
    tables.sort_by_key(|t| std::cmp::Reverse((t.condition(), t.warnings())));
    let _ = writeln!(
        page,
        "<section id=\"problems\">\n<h2>Needs attention ({})</h2>",
        tables.len()
    );
    if tables.is_empty() && health.other_letters.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"allgood\">Nothing needs attention: every table has its snapshot of {}, no warning{}.</p>",
            health.as_of,
            if health.dead_letters() == 0 {
                ", and the dead-letter queues are empty"
            } else {
                ""
            }
        );
    }
    for t in tables {
        card(page, health, t, true);
    }
    page.push_str("</section>\n");
}

/// The healthy tables, one line each, opening into their card.
fn healthy(page: &mut String, health: &Health) {
    let tables: Vec<&TableHealth> = health
        .tables
        .iter()
        .filter(|t| t.findings.is_empty())
        .collect();
    let _ = writeln!(
        page,
        "<section id=\"healthy\">\n<h2>Healthy tables ({})</h2>",
        tables.len()
    );
    if tables.is_empty() {
        page.push_str("<p class=\"quiet\">None.</p>\n</section>\n");
        return;
    }
    let _ = writeln!(
        page,
        "<div class=\"head\"><span>table</span><span>schedule</span><span>latest snapshot</span><span>rows</span><span>snapshot rows, {} nights</span><span>night's run time</span><span>data quality</span></div>",
        health.nights
    );
    let nights = health.nights();
    for t in tables {
        let snapshot = t.latest(Layer::Snapshot);
        let rows: Vec<Option<f64>> = nights
            .iter()
            .map(|d| {
                t.on(Layer::Snapshot, *d)
                    .and_then(|p| p.rows)
                    .map(|r| r as f64)
            })
            .collect();
        let durations: Vec<Option<f64>> = nights
            .iter()
            .map(|d| night_duration(t, *d).map(|d| d.as_secs_f64()))
            .collect();
        let latest_duration = nights
            .iter()
            .rev()
            .find_map(|d| night_duration(t, *d))
            .map_or("-".into(), health::human_duration);
        let _ = writeln!(
            page,
            "<details class=\"row\" id=\"t-{name}\"><summary><span class=\"name\">{name}</span><span>{}</span><span>{}</span><span>{}</span><span>{}</span><span class=\"took\" title=\"from the ingest's start to the snapshot's publication, per night\"><b>{}</b>{}</span><span>{}</span></summary>",
            schedule_name(t.schedule),
            snapshot.map_or("-".into(), |s| date_value(s.date)),
            snapshot.and_then(|s| s.rows).map_or("-".into(), thousands),
            sparkline(&rows, "#1a7f37"),
            esc(&latest_duration),
            sparkline(&durations, "#0969da"),
            quality_summary(health, t),
            name = esc(t.table.as_str()),
        );
        card(page, health, t, false);
        page.push_str("</details>\n");
    }
    page.push_str("</section>\n");
}

fn quality_summary(health: &Health, t: &TableHealth) -> String {
    if !health.quality_read {
        return "<span class=\"quiet\">not read</span>".into();
    }
    if t.quality.is_empty() {
        return "<span class=\"quiet\">no report in these nights</span>".into();
    }
    let failed = t.quality.iter().filter(|r| !r.passed()).count();
    let casts: f64 = t
        .quality
        .iter()
        .flat_map(|r| r.cast_failures().map(|(_, c)| c.value))
        .sum();
    let mut text = if failed == 0 {
        format!(
            "<span class=\"good\">&#10003; {} gate run(s) passed</span>",
            t.quality.len()
        )
    } else {
        format!("<span class=\"bad\">&#10007; {failed} failed</span>")
    };
    if casts > 0.0 {
        let _ = write!(text, " &middot; {casts} cast failure(s)");
    }
    text
}

fn schedule_name(schedule: Schedule) -> &'static str {
    match schedule {
        Schedule::Daily => "daily",
        Schedule::Weekly => "weekly (Sun)",
    }
}

/// One table's card: findings, freshness, charts, data quality, cast failures, dead letters.
fn card(page: &mut String, health: &Health, t: &TableHealth, with_title: bool) {
    let (class, badge) = condition_class(t);
    let name = esc(t.table.as_str());
    if with_title {
        let _ = writeln!(
            page,
            "<article class=\"card {class}\" id=\"t-{name}\">\n<h3>{name} <span class=\"badge {class}\">{badge}</span> <span class=\"meta\">{} &middot; promised snapshot {}</span></h3>",
            schedule_name(t.schedule),
            date_value(t.promised)
        );
    } else {
        let _ = writeln!(
            page,
            "<div class=\"card\">\n<p class=\"meta\">{} &middot; promised snapshot {}</p>",
            schedule_name(t.schedule),
            date_value(t.promised)
        );
    }
    if !t.findings.is_empty() {
        page.push_str("<ul class=\"findings\">\n");
        let mut findings: Vec<_> = t.findings.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in findings {
            let _ = writeln!(
                page,
                "<li class=\"{}\"><span class=\"label\">{}</span>{}<span class=\"fix\">fix: <code>{}</code></span></li>",
                severity_class(f.severity),
                f.label,
                esc(&f.what),
                esc(&f.fix)
            );
        }
        page.push_str("</ul>\n");
    }
    freshness(page, t);
    let nights = health.nights();
    page.push_str("<div class=\"charts\">\n");
    layer_rows_chart(page, t, &nights);
    snapshot_chart(page, t, &nights);
    durations_chart(page, t, &nights);
    page.push_str("</div>\n");
    quality_grid(page, health, t, &nights);
    cast_grid(page, health, t, &nights);
    if !t.letters.is_empty() {
        page.push_str("<h4>Dead letters</h4>\n");
        letters_table(page, &t.letters, false);
    }
    page.push_str(if with_title {
        "</article>\n"
    } else {
        "</div>\n"
    });
}

fn freshness(page: &mut String, t: &TableHealth) {
    page.push_str(
        "<h4>Freshness</h4>\n<table class=\"grid\"><thead><tr><th>layer</th><th>latest</th><th>state</th><th>rows</th><th>files</th><th>size</th><th>run took</th><th>partitions</th></tr></thead><tbody>\n",
    );
    for layer in Layer::ALL {
        let latest = t.latest(layer);
        let state = match latest {
            None => "<td class=\"bad\">none</td>".to_owned(),
            Some(p) if p.date >= t.promised_for(layer) => {
                "<td class=\"good\">&#10003; fresh</td>".to_owned()
            }
            Some(p) if layer == Layer::Snapshot => format!(
                "<td class=\"bad\">{} night(s) behind</td>",
                (t.promised - p.date).num_days()
            ),
            Some(p) => format!(
                "<td class=\"bad\">{} night(s) behind</td>",
                nights_between(t.schedule, p.date, t.fetched_by)
            ),
        };
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td>{state}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            layer.name(),
            latest.map_or("-".into(), |p| date_value(p.date)),
            latest.and_then(|p| p.rows).map_or("-".into(), thousands),
            latest
                .and_then(|p| p.files)
                .map_or("-".into(), |f| f.to_string()),
            latest.and_then(|p| p.bytes).map_or("-".into(), bytes),
            latest
                .and_then(|p| p.duration)
                .map_or("-".into(), health::human_duration),
            t.partitions(layer).len(),
        );
    }
    page.push_str("</tbody></table>\n");
}

fn nights_between(schedule: Schedule, from: NaiveDate, to: NaiveDate) -> i64 {
    let days = (to - from).num_days();
    match schedule {
        Schedule::Daily => days,
        Schedule::Weekly => (days + 6) / 7,
    }
}

/// How long the night took for a table: from the ingest run's start to the snapshot's
/// publication, when both are known.
fn night_duration(t: &TableHealth, date: NaiveDate) -> Option<Duration> {
    let raw = t.on(Layer::Raw, date)?;
    let snapshot = t.on(Layer::Snapshot, date)?;
    let start = health::run_started(&raw.run_id)?;
    let end = snapshot.published_at?;
    (end - start).to_std().ok()
}

fn letters_table(page: &mut String, letters: &[Letter], with_table: bool) {
    page.push_str("<table class=\"grid\"><thead><tr><th>stage</th>");
    if with_table {
        page.push_str("<th>table</th>");
    }
    page.push_str("<th>date</th><th style=\"text-align:left\">reason</th></tr></thead><tbody>\n");
    for l in letters {
        let _ = write!(page, "<tr><td>{}</td>", l.stage);
        if with_table {
            let _ = write!(
                page,
                "<td>{}</td>",
                esc(l.table.as_deref().unwrap_or("(none named)"))
            );
        }
        let _ = writeln!(
            page,
            "<td>{}</td><td style=\"text-align:left;white-space:normal\">{}</td></tr>",
            l.date.map_or("-".into(), date_value),
            esc(&l.reason)
        );
    }
    page.push_str("</tbody></table>\n");
}

fn queues(page: &mut String, health: &Health) {
    page.push_str("<section id=\"queues\">\n<h2>Queues</h2>\n<table class=\"grid\"><thead><tr><th>stage</th><th>waiting</th><th>in flight</th><th>dead letters</th></tr></thead><tbody>\n");
    for q in &health.queues {
        let dead = q.dead_letters.map_or("?".into(), |d| d.to_string());
        let class = if q.dead_letters.unwrap_or(0) > 0 {
            " class=\"bad\""
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td{class}>{dead}</td></tr>",
            q.stage, q.depth.visible, q.depth.in_flight
        );
    }
    page.push_str("</tbody></table>\n");
    let mut letters: Vec<Letter> = health
        .tables
        .iter()
        .flat_map(|t| t.letters.iter().cloned())
        .collect();
    letters.extend(health.other_letters.iter().cloned());
    if !health.letters_read {
        page.push_str("<p class=\"quiet\">The dead letters were counted, not read.</p>\n");
    } else if !letters.is_empty() {
        letters.sort_by(|a, b| (a.stage, &a.table, a.date).cmp(&(b.stage, &b.table, b.date)));
        let _ = writeln!(
            page,
            "<h4>In the dead-letter queues ({}{})</h4>",
            letters.len(),
            if letters.len() >= health::MAX_LETTERS_PER_STAGE {
                ", the first of each queue"
            } else {
                ""
            }
        );
        letters_table(page, &letters, true);
        page.push_str("<p class=\"quiet\">After fixing the cause: <code>tascomi redrive --stage STAGE</code> sends a stage's dead letters back.</p>\n");
    }
    page.push_str("</section>\n");
}

fn footer(page: &mut String, health: &Health) {
    let _ = writeln!(
        page,
        "<footer>\n<p><b>Fresh</b>: the latest snapshot is that of {as_of}: every table has a snapshot every night (a weekly table is fetched on Sundays and its snapshot carried forward on the other nights). \
         <b>Stale</b>: an older one. <b>Failing</b>: a hole, a snapshot behind its import, a dead letter, failed pages or a failed data-quality gate. \
         <b>Warning</b>: a snapshot that shrank, a column that started failing to cast, a stage much slower than usual.</p>\n\
         <p>Read from the catalog's partition parameters, the data-quality reports of the nights shown and the queues; never from the tables. \
         Run times go from a run's start (its run id is a UUIDv7) to its publication; waiting in a queue is not counted.</p>\n\
         <p>docs/operations.md, &ldquo;The morning routine&rdquo;, says what each section means and which command fixes what. Made by <code>tascomi report</code>.</p>\n</footer>",
        as_of = health.as_of
    );
}

/// A tiny inline line of values (gaps where a night has none).
#[cfg(test)]
mod tests {
    use super::*;
    use charts::{nice_ceiling, nice_range};
    use numbers::short_number;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(thousands(295), "295");
        assert_eq!(short_number(12_345.0), "12k");
        assert_eq!(short_number(0.5), "0.50");
        assert_eq!(bytes(962_243), "962 kB");
        assert_eq!(nice_range(290.0, 295.0), (288.0, 296.0));
        assert_eq!(nice_ceiling(0.37), 0.4);
    }
}
