//! The report's charts: inline SVG of rows per layer, snapshot sizes, night durations and the
//! sparklines, on "nice" axes.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::NaiveDate;
use common::config::Schedule;
use common::layout::{Layer, date_value};

use super::esc;
use super::numbers::{seconds, short_number, thousands};
use crate::health::{self, TableHealth};
use crate::stage::Stage;

pub(super) const LAYER_COLOURS: [(Layer, &str); 4] = [
    (Layer::Raw, "#8c959f"),
    (Layer::Parsed, "#0969da"),
    (Layer::Increment, "#8250df"),
    (Layer::Snapshot, "#1a7f37"),
];

pub(super) fn colour(layer: Layer) -> &'static str {
    LAYER_COLOURS
        .iter()
        .find(|(l, _)| *l == layer)
        .map_or("#888", |(_, c)| c)
}

pub(super) fn legend(layers: &[Layer], names: impl Fn(Layer) -> &'static str) -> String {
    let mut out = String::from("<div class=\"legend\">");
    for layer in layers {
        let _ = write!(
            out,
            "<i style=\"background:{}\"></i>{}",
            colour(*layer),
            names(*layer)
        );
    }
    out.push_str("</div>");
    out
}

/// The plotting area of every chart.
pub(super) const W: f64 = 340.0;
pub(super) const H: f64 = 130.0;
pub(super) const LEFT: f64 = 44.0;
pub(super) const RIGHT: f64 = 8.0;
pub(super) const TOP: f64 = 8.0;
pub(super) const BOTTOM: f64 = 20.0;

pub(super) fn svg_open(label: &str) -> String {
    format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(label)
    )
}

/// The x position of night `i` of `n` (the centre of its slot) and the slot's width.
pub(super) fn slot(i: usize, n: usize) -> (f64, f64) {
    let width = (W - LEFT - RIGHT) / n.max(1) as f64;
    (LEFT + width * (i as f64 + 0.5), width)
}

pub(super) fn y_of(value: f64, lo: f64, hi: f64) -> f64 {
    let span = if hi > lo { hi - lo } else { 1.0 };
    H - BOTTOM - (value - lo) / span * (H - TOP - BOTTOM)
}

/// Axes: the baseline, the top gridline with its label, and the first, middle and last dates.
pub(super) fn axes(
    svg: &mut String,
    nights: &[NaiveDate],
    lo: f64,
    hi: f64,
    unit: &dyn Fn(f64) -> String,
) {
    let base = H - BOTTOM;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#d0d7de\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{}\" y2=\"{TOP}\" stroke=\"#eaeef2\" stroke-dasharray=\"3 3\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        W - RIGHT,
        W - RIGHT,
        LEFT - 4.0,
        TOP + 4.0,
        esc(&unit(hi)),
        LEFT - 4.0,
        base,
        esc(&unit(lo)),
    );
    let n = nights.len();
    let mut marks: Vec<usize> = if n <= 7 {
        (0..n).collect()
    } else {
        vec![0, n / 2, n - 1]
    };
    marks.dedup();
    for i in marks {
        let (x, _) = slot(i, n);
        let anchor = if n == 1 {
            "middle"
        } else if i == 0 {
            "start"
        } else if i + 1 == n {
            "end"
        } else {
            "middle"
        };
        let x = match anchor {
            "start" => x - slot(0, n).1 / 2.0,
            "end" => x + slot(0, n).1 / 2.0,
            _ => x,
        };
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
            H - 6.0,
            nights[i].format("%d %b")
        );
    }
}

/// Rows of the raw, parsed and increment partitions per night, side by side: they should
/// agree, and a night without a partition shows as a red mark.
pub(super) fn layer_rows_chart(page: &mut String, t: &TableHealth, nights: &[NaiveDate]) {
    let layers = [Layer::Raw, Layer::Parsed, Layer::Increment];
    // A full load dwarfs the nightly increments: when other nights exist, the scale is theirs
    // and a full load's bars are cut at the top, labelled with their rows.
    let full = |d: &NaiveDate| {
        t.on(Layer::Raw, *d)
            .and_then(|p| p.parameters.get("import_kind"))
            .is_some_and(|k| k == "full")
    };
    let rows_of = |d: &NaiveDate| {
        layers
            .iter()
            .filter_map(|l| t.on(*l, *d)?.rows)
            .collect::<Vec<_>>()
    };
    let incremental_max = nights
        .iter()
        .filter(|d| !full(d))
        .flat_map(rows_of)
        .max()
        .filter(|m| *m > 0);
    let hi = match incremental_max {
        Some(m) => nice_ceiling(m as f64),
        None => nights.iter().flat_map(rows_of).max().unwrap_or(0).max(1) as f64,
    };
    let mut cut_nights: Vec<String> = Vec::new();
    let mut svg = svg_open(&format!("rows per night of {}, per layer", t.table));
    axes(&mut svg, nights, 0.0, hi, &|v| short_number(v));
    let n = nights.len();
    for (i, date) in nights.iter().enumerate() {
        let (x, width) = slot(i, n);
        let bar = (width * 0.8 / 3.0).min(12.0);
        let due = scheduled(t.schedule, *date);
        let most = rows_of(date).into_iter().max().unwrap_or(0);
        let cut = most as f64 > hi;
        if cut {
            cut_nights.push(format!(
                "{}: {} rows",
                date.format("%d %b"),
                thousands(most)
            ));
        }
        for (k, layer) in layers.iter().enumerate() {
            let bx = x - bar * 1.5 + bar * k as f64;
            match t.on(*layer, *date) {
                Some(p) => {
                    let rows = p.rows.unwrap_or(0) as f64;
                    let y = y_of(rows.min(hi), 0.0, hi);
                    let _ = write!(
                        svg,
                        "<rect x=\"{bx:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}: {} rows</title></rect>",
                        (bar - 1.0).max(1.0),
                        (H - BOTTOM - y).max(0.5),
                        colour(*layer),
                        layer.name(),
                        date_value(*date),
                        thousands(rows as u64)
                    );
                }
                None if (due || *layer == Layer::Snapshot) && *date <= t.promised_for(*layer) => {
                    let _ = write!(
                        svg,
                        "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"3\" fill=\"#cf222e\"><title>{} {}: no partition</title></rect>",
                        H - BOTTOM - 3.0,
                        (bar - 1.0).max(1.0),
                        layer.name(),
                        date_value(*date)
                    );
                }
                None => {}
            }
        }
        if cut {
            // A break across the cut bars.
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"3\" fill=\"#ffffff\" transform=\"rotate(-8 {x:.1} {:.1})\"/>",
                x - bar * 1.5 - 1.0,
                TOP + 10.0,
                bar * 3.0 + 2.0,
                TOP + 11.0
            );
        }
    }
    svg.push_str("</svg>");
    let note = if cut_nights.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=\"legend\">full load, cut to the scale of the other nights: {}</div>",
            cut_nights.join(", ")
        )
    };
    let _ = writeln!(
        page,
        "<figure><figcaption>Rows imported per night</figcaption>{svg}{}{note}</figure>",
        legend(&layers, Layer::name)
    );
}

/// Whether the schedule runs the table on `date`.
pub(super) fn scheduled(schedule: Schedule, date: NaiveDate) -> bool {
    match schedule {
        Schedule::Daily => true,
        Schedule::Weekly => health::fetched_by(schedule, date) == date,
    }
}

/// The snapshot's rows over the nights: a line, its range labelled (not from zero, so that a
/// small shrink shows).
pub(super) fn snapshot_chart(page: &mut String, t: &TableHealth, nights: &[NaiveDate]) {
    let points: Vec<(usize, u64, NaiveDate)> = nights
        .iter()
        .enumerate()
        .filter_map(|(i, d)| Some((i, t.on(Layer::Snapshot, *d)?.rows?, *d)))
        .collect();
    let mut svg = svg_open(&format!("snapshot rows of {}", t.table));
    let (lo, hi) = match (
        points.iter().map(|p| p.1).min(),
        points.iter().map(|p| p.1).max(),
    ) {
        (Some(lo), Some(hi)) => nice_range(lo as f64, hi as f64),
        _ => (0.0, 1.0),
    };
    axes(&mut svg, nights, lo, hi, &|v| short_number(v));
    let n = nights.len();
    if points.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no snapshot in these nights</text>",
            (W + LEFT) / 2.0,
            H / 2.0
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|(i, rows, _)| format!("{:.1},{:.1}", slot(*i, n).0, y_of(*rows as f64, lo, hi)))
        .collect();
    if path.len() > 1 {
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1a7f37\" stroke-width=\"2\"/>",
            path.join(" ")
        );
    }
    let mut previous: Option<u64> = None;
    for (i, rows, date) in &points {
        let shrank = previous.is_some_and(|p| *rows < p);
        previous = Some(*rows);
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\" fill=\"{}\"><title>snapshot {}: {} rows</title></circle>",
            slot(*i, n).0,
            y_of(*rows as f64, lo, hi),
            if shrank { 4 } else { 3 },
            if shrank { "#cf222e" } else { "#1a7f37" },
            date_value(*date),
            thousands(*rows)
        );
    }
    svg.push_str("</svg>");
    let _ = writeln!(
        page,
        "<figure><figcaption>Snapshot rows</figcaption>{svg}<div class=\"legend\">{}</div></figure>",
        match (points.first(), points.last()) {
            (Some(a), Some(b)) if points.len() > 1 => format!(
                "{} &rarr; {} rows ({:+})",
                thousands(a.1),
                thousands(b.1),
                b.1 as i64 - a.1 as i64
            ),
            (Some(a), _) => format!("{} rows", thousands(a.1)),
            _ => String::new(),
        }
    );
}

/// Each stage's run time per night, stacked (from the run id's start to the publication).
pub(super) fn durations_chart(page: &mut String, t: &TableHealth, nights: &[NaiveDate]) {
    let per_night: Vec<Vec<(Layer, f64)>> = nights
        .iter()
        .map(|d| {
            Layer::ALL
                .iter()
                .filter_map(|l| Some((*l, t.on(*l, *d)?.duration?.as_secs_f64())))
                .collect()
        })
        .collect();
    let hi = per_night
        .iter()
        .map(|stages| stages.iter().map(|s| s.1).sum::<f64>())
        .fold(0.0, f64::max);
    let hi = if hi > 0.0 { nice_ceiling(hi) } else { 1.0 };
    let mut svg = svg_open(&format!("stage run times of {}", t.table));
    axes(&mut svg, nights, 0.0, hi, &|v| seconds(v));
    let n = nights.len();
    for (i, stages) in per_night.iter().enumerate() {
        let (x, width) = slot(i, n);
        let bar = (width * 0.6).clamp(2.0, 22.0);
        let mut top = 0.0;
        for (layer, secs) in stages {
            let y0 = y_of(top, 0.0, hi);
            top += secs;
            let y1 = y_of(top, 0.0, hi);
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                x - bar / 2.0,
                (y0 - y1).max(0.5),
                colour(*layer),
                Stage::publishing(*layer),
                date_value(nights[i]),
                health::human_duration(Duration::from_secs_f64(*secs))
            );
        }
    }
    svg.push_str("</svg>");
    let _ = writeln!(
        page,
        "<figure><figcaption>Stage run times</figcaption>{svg}{}</figure>",
        legend(&Layer::ALL, |l| Stage::publishing(l).name())
    );
}

pub(super) fn sparkline(values: &[Option<f64>], colour: &str) -> String {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return "<span class=\"quiet\">-</span>".into();
    }
    let lo = present.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (w, h) = (160.0, 26.0);
    let n = values.len().max(2) - 1;
    let x = |i: usize| 3.0 + (w - 6.0) * i as f64 / n as f64;
    let y = |v: f64| {
        if hi > lo {
            h - 4.0 - (v - lo) / (hi - lo) * (h - 8.0)
        } else {
            h / 2.0
        }
    };
    let mut svg = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" aria-hidden=\"true\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
        .collect();
    if points.len() > 1 {
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
            points.join(" ")
        );
    }
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, v)| v.map(|v| (i, v)))
    {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
            x(i),
            y(v)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A range around lo..hi that leaves room and starts and ends on round numbers.
pub(super) fn nice_range(lo: f64, hi: f64) -> (f64, f64) {
    let span = (hi - lo).max(hi.abs() * 0.02).max(1.0);
    let step = nice_step(span / 4.0);
    let lo = ((lo - span * 0.1) / step).floor() * step;
    let hi = ((hi + span * 0.1) / step).ceil() * step;
    (lo.max(0.0), hi)
}

pub(super) fn nice_ceiling(v: f64) -> f64 {
    let step = nice_step(v / 4.0);
    (v / step).ceil() * step
}

pub(super) fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.abs().max(1e-9).log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}
