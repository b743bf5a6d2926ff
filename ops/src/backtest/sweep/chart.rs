//! `--plot` with a sweep: the rank metric over the swept parameters. Two or
//! more parameters: a heatmap of the first two (any others held at the best
//! combination's values, which the title names), coloured so that better is
//! brighter whichever way the metric ranks, with a colour bar and the best
//! cell outlined. One parameter: the metric against its value.

use std::path::Path;

use plotters::prelude::*;

use super::metrics::{self, Metric, Unit, METRICS};
use super::results::{Results, Row};
use crate::backtest::plot::{axis_decimals, axis_label, register_font, FAMILY};

/// A cell or point: the metric's value, in display units (percent for fractions).
fn shown_value(metric: &Metric, row: &Row, rank: usize) -> Option<f64> {
    metrics::shown_value(metric, &row.result.as_ref().ok()?[rank])
}

fn unit_suffix(metric: &Metric) -> &'static str {
    if metric.unit == Unit::Fraction {
        "%"
    } else {
        ""
    }
}

/// Draws the chart for `ranked` (best first) to a PNG.
pub fn draw(path: &Path, results: &Results, ranked: &[&Row], rank: usize) -> Result<(), String> {
    register_font()?;
    let best = ranked.first().ok_or("no combination ran")?;
    let metric = &METRICS[rank];
    let order = if metric.lower_is_better { "lower is better" } else { "higher is better" };
    match results.parameters.len() {
        0 => Err("no swept parameter".into()),
        1 => {
            let title = format!("{} ({order}) over {}", metric.name, results.parameters[0]);
            line(path, &title, results, best, metric, rank)
        }
        _ => {
            let held: Vec<String> = results.parameters[2..]
                .iter()
                .zip(&best.params[2..])
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            let mut title =
                format!("{} ({order}) over {} × {}", metric.name, results.parameters[0], results.parameters[1]);
            if !held.is_empty() {
                title.push_str(&format!(", {} as in the best", held.join(" ")));
                println!(
                    "plot: {} and {} drawn, {} held at the best combination's values",
                    results.parameters[0],
                    results.parameters[1],
                    held.join(" ")
                );
            }
            heatmap(path, &title, results, best, metric, rank)
        }
    }
}

/// The distinct values of parameter `p`, in numeric order.
fn distinct(rows: &[&Row], p: usize) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    for r in rows {
        if !values.contains(&r.params[p]) {
            values.push(r.params[p].clone());
        }
    }
    values.sort_by(|a, b| {
        let (x, y) = (a.parse::<f64>().unwrap_or(f64::NAN), b.parse::<f64>().unwrap_or(f64::NAN));
        x.total_cmp(&y)
    });
    values
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn heatmap(
    path: &Path,
    title: &str,
    results: &Results,
    best: &Row,
    metric: &Metric,
    rank: usize,
) -> Result<(), String> {
    // The plane through the best combination: the first two parameters vary.
    let rows: Vec<&Row> = results.rows.iter().filter(|r| r.params[2..] == best.params[2..]).collect();
    let (xs, ys) = (distinct(&rows, 0), distinct(&rows, 1));
    let cells: Vec<(usize, usize, Option<f64>, bool)> = rows
        .iter()
        .filter_map(|r| {
            let x = xs.iter().position(|v| *v == r.params[0])?;
            let y = ys.iter().position(|v| *v == r.params[1])?;
            Some((x, y, shown_value(metric, r, rank), r.combination == best.combination))
        })
        .collect();
    let values: Vec<f64> = cells.iter().filter_map(|c| c.2).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Brighter is better, whichever way the metric ranks.
    let colour = |v: f64| {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
        ViridisRGB::get_color(if metric.lower_is_better { 1.0 - t } else { t })
    };

    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, (FAMILY, 24).into_font()).map_err(err)?;
    let (main, bar_area) = root.split_horizontally(1060);
    let (nx, ny) = (xs.len() as i32, ys.len() as i32);
    let mut chart = ChartBuilder::on(&main)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((0..nx - 1).into_segmented(), (0..ny - 1).into_segmented())
        .map_err(err)?;
    // Category axes: each label is a swept value, exactly as swept.
    let label = |values: &[String], v: &SegmentValue<i32>| match v {
        SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => values.get(*i as usize).cloned().unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(xs.len())
        .y_labels(ys.len())
        .x_label_formatter(&|v| label(&xs, v))
        .y_label_formatter(&|v| label(&ys, v))
        .x_desc(results.parameters[0].as_str())
        .y_desc(results.parameters[1].as_str())
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .draw()
        .map_err(err)?;
    let edge = |i: usize, n: usize| if i + 1 < n { SegmentValue::Exact(i as i32 + 1) } else { SegmentValue::Last };
    let corners = |x: usize, y: usize| {
        [(SegmentValue::Exact(x as i32), SegmentValue::Exact(y as i32)), (edge(x, xs.len()), edge(y, ys.len()))]
    };
    let skipped = RGBColor(225, 225, 225);
    chart
        .draw_series(
            cells.iter().map(|&(x, y, v, _)| Rectangle::new(corners(x, y), v.map(colour).unwrap_or(skipped).filled())),
        )
        .map_err(err)?;
    if let Some(&(x, y, _, _)) = cells.iter().find(|c| c.3) {
        chart.draw_series(std::iter::once(Rectangle::new(corners(x, y), BLACK.stroke_width(3)))).map_err(err)?;
    }
    // The values in the cells while they are large enough to read.
    let decimals = axis_decimals(lo, hi, cells.len().max(10));
    if xs.len() <= 16 && ys.len() <= 24 {
        chart
            .draw_series(cells.iter().map(|&(x, y, v, _)| {
                let text = v
                    .map(|v| format!("{}{}", axis_label(v, decimals), unit_suffix(metric)))
                    .unwrap_or_else(|| "–".into());
                let light = v.is_some_and(|v| {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
                    (if metric.lower_is_better { 1.0 - t } else { t }) > 0.6
                });
                let style = TextStyle::from((FAMILY, 14).into_font())
                    .color(if light || v.is_none() { &BLACK } else { &WHITE })
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ));
                Text::new(text, (SegmentValue::CenterOf(x as i32), SegmentValue::CenterOf(y as i32)), style)
            }))
            .map_err(err)?;
    }

    // The colour bar, labelled with the precision its range needs.
    let (bar_lo, bar_hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
    let bar_lo = if bar_lo.is_finite() { bar_lo } else { 0.0 };
    let bar_hi = if bar_hi.is_finite() { bar_hi } else { 1.0 };
    let bar_decimals = axis_decimals(bar_lo, bar_hi, 8);
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(16)
        .margin_bottom(66)
        .margin_right(70)
        .y_label_area_size(0)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, bar_lo..bar_hi)
        .map_err(err)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(8)
        .y_label_formatter(&|v| format!("{}{}", axis_label(*v, bar_decimals), unit_suffix(metric)))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    let steps = 100;
    bar.draw_series((0..steps).map(|i| {
        let a = bar_lo + (bar_hi - bar_lo) * i as f64 / steps as f64;
        let b = bar_lo + (bar_hi - bar_lo) * (i + 1) as f64 / steps as f64;
        Rectangle::new([(0.0, a), (1.0, b)], colour((a + b) / 2.0).filled())
    }))
    .map_err(err)?;
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn line(path: &Path, title: &str, results: &Results, best: &Row, metric: &Metric, rank: usize) -> Result<(), String> {
    let mut points: Vec<(f64, f64)> = results
        .rows
        .iter()
        .filter_map(|r| Some((r.params[0].parse::<f64>().ok()?, shown_value(metric, r, rank)?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let best_point = best.params[0].parse::<f64>().ok().zip(shown_value(metric, best, rank));
    let (x0, x1) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if points.is_empty() {
        return Err(format!("no combination has a {}", metric.name));
    }
    let pad = |lo: f64, hi: f64| {
        let p = ((hi - lo) * 0.05).max(hi.abs().max(lo.abs()) * 0.001).max(1e-9);
        (lo - p, hi + p)
    };
    let ((x0, x1), (y0, y1)) = (pad(x0, x1), pad(y0, y1));
    let (x_decimals, y_decimals) = (axis_decimals(x0, x1, 10), axis_decimals(y0, y1, 8));

    let root = BitMapBackend::new(path, (1200, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, (FAMILY, 24).into_font()).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|x| axis_label(*x, x_decimals))
        .y_label_formatter(&|y| format!("{}{}", axis_label(*y, y_decimals), unit_suffix(metric)))
        .x_desc(results.parameters[0].as_str())
        .y_desc(metric.name)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let blue = RGBColor(20, 80, 200);
    chart.draw_series(LineSeries::new(points.iter().copied(), blue.stroke_width(2))).map_err(err)?;
    chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, blue.filled()))).map_err(err)?;
    if let Some(p) = best_point {
        chart.draw_series(std::iter::once(Circle::new(p, 8, RGBColor(200, 30, 30).stroke_width(3)))).map_err(err)?;
    }
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::super::results::Shard;
    use super::*;

    fn results(parameters: usize) -> Results {
        let rank = metrics::named("sharpe").unwrap();
        let mut rows = Vec::new();
        for c in 0..12 {
            let params: Vec<String> =
                [c / 4 * 5 + 5, c % 4 * 10 + 20, 7].iter().take(parameters).map(|v| v.to_string()).collect();
            let result = if c == 5 {
                Err("refused".into())
            } else {
                let mut m = vec![String::new(); METRICS.len()];
                m[rank] = format!("{}", (c as f64 * 0.37).sin());
                Ok(m)
            };
            rows.push(Row { combination: c, params, result });
        }
        Results {
            grid: "g".into(),
            shard: Shard::WHOLE,
            combinations: 12,
            parameters: ["a.fast", "a.slow", "a.qty"].iter().take(parameters).map(|s| s.to_string()).collect(),
            rows,
        }
    }

    /// The heatmap and the line chart render (a PNG of the expected size)
    /// for one, two and three swept parameters, with a skipped cell.
    #[test]
    fn sweep_charts_render() {
        let dir = tempfile::tempdir().unwrap();
        let rank = metrics::named("sharpe").unwrap();
        for (n, size) in [(1, (1200, 700)), (2, (1200, 900)), (3, (1200, 900))] {
            let r = results(n);
            let ranked: Vec<&Row> = r.rows.iter().filter(|r| r.result.is_ok()).collect();
            let path = dir.path().join(format!("{n}.png"));
            draw(&path, &r, &ranked, rank).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{n}");
            let (w, h) = (
                u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
                u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
            );
            assert_eq!((w, h), size, "{n}");
        }
    }
}
