//! The equity chart (`--plot`): equity with its running peak, the drawdown
//! shaded between them, entry (▲) and exit (▼) markers, and a drawdown panel
//! below. Rendered with plotters' bitmap backend and an embedded DejaVu Sans
//! font, so it needs no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::equity::EquityCurve;
use super::report::RoundTrip;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();
/// The embedded font's family name (registered by [`register_font`]).
pub(crate) const FAMILY: &str = "keel-sans";
const MAX_POINTS: usize = 2_000;

/// Registers the embedded font once; every chart calls it first.
pub(crate) fn register_font() -> Result<(), String> {
    let mut result = Ok(());
    REGISTER.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            result = Err("the embedded font could not be loaded".to_string());
        }
    });
    result
}

/// A time-axis label: the date, with the time of day when the axis spans
/// less than `TIME_OF_DAY_BELOW_MS` (else neighbouring labels repeat a date).
fn date_label(ms: f64, span_ms: f64) -> String {
    let format = if span_ms < TIME_OF_DAY_BELOW_MS { "%Y-%m-%d %H:%M" } else { "%Y-%m-%d" };
    chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.format(format).to_string()).unwrap_or_default()
}

/// Time axes shorter than this (8 days over 8 labels) show the time of day.
const TIME_OF_DAY_BELOW_MS: f64 = 8.0 * 86_400_000.0;

/// Reduces a long curve to at most about `MAX_POINTS` points, keeping each
/// bucket's lowest and highest so drawdowns stay visible.
/// How many decimals an axis over `lo..hi` with about `ticks` labels needs
/// for neighbouring labels to differ (a 0.02 % drawdown over 5 labels needs
/// 3; an equity axis over thousands needs none).
pub(crate) fn axis_decimals(lo: f64, hi: f64, ticks: usize) -> usize {
    let step = (hi - lo).abs() / ticks.max(1) as f64;
    if !step.is_finite() || step <= 0.0 {
        return 2;
    }
    (-step.log10()).ceil().clamp(0.0, 8.0) as usize
}

/// An axis label with `decimals` decimals; a value that rounds to zero is
/// written without a sign.
pub(crate) fn axis_label(y: f64, decimals: usize) -> String {
    let text = format!("{y:.decimals$}");
    if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

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
    equity: &EquityCurve,
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
        let i = full.partition_point(|p| p.0 < ts as f64).min(full.len() - 1);
        full[i].1
    };

    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, (FAMILY, 26).into_font()).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(560);

    let equity_decimals = axis_decimals(lo - pad, hi + pad, 8);
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
        .x_label_formatter(&|x| date_label(*x, x1 - x0))
        .y_label_formatter(&|y| axis_label(*y, equity_decimals))
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
    let dd_decimals = axis_decimals(worst * 1.1, 0.0, 5);
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
        .x_label_formatter(&|x| date_label(*x, x1 - x0))
        .y_label_formatter(&|y| format!("{}%", axis_label(*y, dd_decimals)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_differ_from_their_neighbours_whatever_the_range() {
        struct Case {
            name: &'static str,
            lo: f64,
            hi: f64,
            ticks: usize,
            decimals: usize,
        }
        let cases = [
            Case { name: "a 0.02 % drawdown", lo: -0.022, hi: 0.0, ticks: 5, decimals: 3 },
            Case { name: "a 30 % drawdown", lo: -33.0, hi: 0.0, ticks: 5, decimals: 0 },
            Case { name: "a 2 % drawdown", lo: -2.2, hi: 0.0, ticks: 5, decimals: 1 },
            Case { name: "equity 1M, moving by cents", lo: 999_999.9, hi: 1_000_000.3, ticks: 8, decimals: 2 },
            Case { name: "equity in thousands", lo: 9_000.0, hi: 14_000.0, ticks: 8, decimals: 0 },
            Case { name: "a flat line", lo: 5.0, hi: 5.0, ticks: 8, decimals: 2 },
        ];
        for c in cases {
            let d = axis_decimals(c.lo, c.hi, c.ticks);
            assert_eq!(d, c.decimals, "{}", c.name);
            if c.hi > c.lo {
                let step = (c.hi - c.lo) / c.ticks as f64;
                let labels: Vec<String> = (0..=c.ticks).map(|i| axis_label(c.lo + step * i as f64, d)).collect();
                let distinct: std::collections::BTreeSet<&String> = labels.iter().collect();
                assert_eq!(distinct.len(), labels.len(), "{}: {labels:?}", c.name);
            }
        }
        assert_eq!(axis_label(-0.0001, 2), "0.00", "no negative zero");
        let day = 86_400_000.0;
        assert_eq!(date_label(1_704_112_200_000.0, 2.0 * day), "2024-01-01 12:30", "a two-day axis shows the hour");
        assert_eq!(date_label(1_704_112_200_000.0, 300.0 * day), "2024-01-01", "a long one the date");
        assert_eq!(axis_label(-1.5, 1), "-1.5");
    }
}
