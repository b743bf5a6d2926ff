//! The equity chart (`--plot`): equity with its running peak, the drawdown
//! shaded between them, entry (▲) and exit (▼) markers, and a drawdown panel
//! below. Rendered with plotters' bitmap backend and an embedded DejaVu Sans
//! font, so it needs no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::report::RoundTrip;
use super::sim::EquityPoint;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();
const FAMILY: &str = "keel-sans";
const MAX_POINTS: usize = 2_000;

fn register_font() -> Result<(), String> {
    let mut result = Ok(());
    REGISTER.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            result = Err("the embedded font could not be loaded".to_string());
        }
    });
    result
}

fn date_label(ms: f64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// Reduces a long curve to at most about `MAX_POINTS` points, keeping each
/// bucket's lowest and highest so drawdowns stay visible.
fn downsample(points: &[(f64, f64, f64)]) -> Vec<(f64, f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let bucket = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for chunk in points.chunks(bucket) {
        let lo = chunk.iter().copied().fold(chunk[0], |a, b| if b.1 < a.1 { b } else { a });
        let hi = chunk.iter().copied().fold(chunk[0], |a, b| if b.1 > a.1 { b } else { a });
        if lo.0 <= hi.0 {
            out.extend([lo, hi]);
        } else {
            out.extend([hi, lo]);
        }
    }
    out
}

/// Draws the chart to a PNG at `path`.
pub fn draw(
    path: &Path,
    title: &str,
    equity: &[EquityPoint],
    trips: &[RoundTrip],
    open_entries: &[i64],
) -> Result<(), String> {
    register_font()?;
    if equity.is_empty() {
        return Err("no equity points to draw".into());
    }
    // (time, equity, running peak) in f64: a picture, not money.
    let mut peak = f64::MIN;
    let full: Vec<(f64, f64, f64)> = equity
        .iter()
        .map(|p| {
            let e = p.equity;
            peak = peak.max(e);
            (p.ts_ms as f64, e, peak)
        })
        .collect();
    let pts = downsample(&full);
    let (x0, x1) = (full[0].0, full[full.len() - 1].0.max(full[0].0 + 1.0));
    let lo = full.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let hi = full.iter().map(|p| p.2).fold(f64::MIN, f64::max);
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.001).max(1e-9);
    let equity_at = |ts: i64| -> f64 {
        let i = equity.partition_point(|p| p.ts_ms < ts).min(equity.len() - 1);
        full[i].1
    };

    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, (FAMILY, 26).into_font()).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(560);

    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(90)
        .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|x| date_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("equity")
        .label_style((FAMILY, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;
    let shade = RGBColor(230, 60, 60).mix(0.25);
    // Drawdown shading: the polygon between the running peak and the equity.
    let mut poly: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.2)).collect();
    poly.extend(pts.iter().rev().map(|p| (p.0, p.1)));
    chart.draw_series(std::iter::once(Polygon::new(poly, shade.filled()))).map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.2)), RGBColor(150, 150, 150).stroke_width(1)))
        .map_err(|e| err(&e))?
        .label("peak")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
    chart
        .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), RGBColor(20, 80, 200).stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("equity")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(20, 80, 200).stroke_width(2)));
    chart
        .draw_series(std::iter::once(Rectangle::new([(x0, lo - pad), (x0, lo - pad)], shade.filled())))
        .map_err(|e| err(&e))?
        .label("drawdown")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], shade.filled()));
    let green = RGBColor(0, 150, 60);
    let red = RGBColor(200, 30, 30);
    let entries: Vec<i64> = trips.iter().map(|t| t.entry_time).chain(open_entries.iter().copied()).collect();
    chart
        .draw_series(entries.iter().map(|t| TriangleMarker::new((*t as f64, equity_at(*t)), 7, green.filled())))
        .map_err(|e| err(&e))?
        .label("entry")
        .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, green.filled()));
    chart
        .draw_series(trips.iter().map(|t| {
            let (x, y) = (t.exit_time as f64, equity_at(t.exit_time));
            // A downward triangle: ▼.
            EmptyElement::at((x, y)) + Polygon::new(vec![(-6, -5), (6, -5), (0, 6)], red.filled())
        }))
        .map_err(|e| err(&e))?
        .label("exit")
        .legend(move |(x, y)| Polygon::new(vec![(x + 4, y - 5), (x + 16, y - 5), (x + 10, y + 6)], red.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 15))
        .draw()
        .map_err(|e| err(&e))?;

    // Drawdown panel, in percent below the peak.
    let dd: Vec<(f64, f64)> =
        pts.iter().map(|p| (p.0, if p.2 > 0.0 { -(1.0 - p.1 / p.2) * 100.0 } else { 0.0 })).collect();
    let worst = dd.iter().map(|p| p.1).fold(0.0, f64::min).min(-0.01);
    let mut dd_chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(90)
        .build_cartesian_2d(x0..x1, (worst * 1.1)..0.0)
        .map_err(|e| err(&e))?;
    dd_chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(5)
        .x_label_formatter(&|x| date_label(*x))
        .y_label_formatter(&|y| format!("{:.1}%", if y.abs() < 0.05 { 0.0 } else { *y }))
        .y_desc("drawdown")
        .label_style((FAMILY, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;
    dd_chart
        .draw_series(AreaSeries::new(dd.iter().copied(), 0.0, red.mix(0.35)).border_style(red))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
