//! The chart attached to Discord alerts: a candlestick chart of a symbol's
//! recent bars with Keel's fills marked (▲ buy, ▼ sell at their price and
//! time), price and UTC time axes. Drawn with plotters into an RGB buffer
//! with the embedded DejaVu Sans (the backtest charts' font: no system fonts
//! needed) and encoded as PNG, on a blocking-pool thread.

use std::sync::{Arc, OnceLock};

use actors::EngineHandle;
use keel_core::fill::Fill;
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::when;
use plotters::prelude::*;
use rust_decimal::prelude::ToPrimitive;

use crate::backtest::plot::{axis_decimals, axis_label, register_font, FAMILY};
use crate::notice::ChartRequest;

/// The picture's size in pixels.
pub const SIZE: (u32, u32) = (1000, 560);
/// The bars drawn: the last 120 of the engine's bar interval (two hours of one-minute bars).
pub const BARS: usize = 120;
/// How many bar intervals past the last closed bar a fill is still drawn
/// (the window stretches to it): the bar still open, and some lag.
const OPEN_BARS_SHOWN: i64 = 3;
/// Keel's fills read to find those inside the chart's window.
const FILLS_READ: usize = 500;

/// A bar as drawn (f64: a picture, not money).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    /// Open time, ms since the epoch.
    pub t: i64,
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
}

impl From<&Bar> for Candle {
    fn from(b: &Bar) -> Self {
        let f = |d: rust_decimal::Decimal| d.to_f64().unwrap_or(f64::NAN);
        Candle { t: b.open_time, open: f(b.open), high: f(b.high), low: f(b.low), close: f(b.close) }
    }
}

/// A fill as marked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    /// Execution time, ms since the epoch.
    pub t: i64,
    /// Execution price.
    pub price: f64,
    /// A buy (▲) or a sell (▼).
    pub buy: bool,
}

impl From<&Fill> for Mark {
    fn from(f: &Fill) -> Self {
        Mark { t: f.ts_ms, price: f.price.to_f64().unwrap_or(f64::NAN), buy: f.side == Side::Buy }
    }
}

/// A rendered chart and where things landed (for tests and logs).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The PNG file.
    pub png: Vec<u8>,
    /// The pixel centre of each mark drawn, in the order given (marks outside the window are skipped).
    pub marks: Vec<(i32, i32)>,
    /// The plotting area: x pixels, y pixels (half-open).
    pub plot: (std::ops::Range<i32>, std::ops::Range<i32>),
}

/// Candle up colour.
const UP: RGBColor = RGBColor(38, 166, 154);
/// Candle down colour.
const DOWN: RGBColor = RGBColor(239, 83, 80);
/// Buy marker colour (not a candle colour, so a marker never hides in a body).
pub const BUY: RGBColor = RGBColor(25, 90, 235);
/// Sell marker colour.
pub const SELL: RGBColor = RGBColor(245, 140, 0);

/// The x axis is in minutes since the epoch, so plotters' round steps (5, 10,
/// 20…) fall on round UTC times.
const X_UNIT_MS: f64 = 60_000.0;

fn x(ms: i64) -> f64 {
    ms as f64 / X_UNIT_MS
}

/// The time-axis label of `minutes` since the epoch: `HH:MM` UTC, with the
/// date when the window crosses midnight.
fn time_label(minutes: f64, with_date: bool) -> String {
    let format = if with_date { "%m-%d %H:%M" } else { "%H:%M" };
    chrono::DateTime::from_timestamp_millis((minutes * X_UNIT_MS).round() as i64)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

/// Draws `candles` (oldest first, each `interval_ms` long) with `marks` to a PNG of [`SIZE`].
pub fn render(title: &str, interval_ms: i64, candles: &[Candle], marks: &[Mark]) -> Result<Rendered, String> {
    register_font()?;
    let (Some(first), Some(last)) = (candles.first(), candles.last()) else {
        return Err("no bars to draw".into());
    };
    // The window runs to the end of the last closed bar, or a little past it
    // to the fills since (the fill an alert announces is in the bar still open).
    let x0 = x(first.t);
    let latest = x(last.t + interval_ms * (1 + OPEN_BARS_SHOWN));
    let shown: Vec<Mark> =
        marks.iter().copied().filter(|m| (x0..latest).contains(&x(m.t)) && m.price.is_finite()).collect();
    let last_mark = shown.iter().map(|m| x(m.t) + x(interval_ms) / 2.0).fold(f64::MIN, f64::max);
    let x1 = x(last.t + interval_ms).max(last_mark);
    let prices = candles.iter().flat_map(|c| [c.low, c.high]).chain(shown.iter().map(|m| m.price));
    let (lo, hi) = prices.filter(|p| p.is_finite()).fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p), hi.max(p)));
    if lo > hi {
        return Err("the bars have no finite prices".into());
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.0005).max(1e-9);
    let (y0, y1) = (lo - pad, hi + pad);
    let decimals = axis_decimals(y0, y1, 8);
    let with_date = first.t.div_euclid(86_400_000) != (last.t + interval_ms - 1).div_euclid(86_400_000);

    let (w, h) = SIZE;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (mark_px, plot) = {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 22))
            .margin(14)
            .margin_right(34)
            .x_label_area_size(44)
            .y_label_area_size(90)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|x| time_label(*x, with_date))
            .y_label_formatter(&|y| axis_label(*y, decimals))
            .x_desc("time (UTC)")
            .y_desc("price")
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .light_line_style(RGBColor(246, 246, 246))
            .draw()
            .map_err(|e| err(&e))?;
        let iv = interval_ms as f64 / X_UNIT_MS;
        // Wicks (high to low at the bar's middle), then bodies over them.
        chart
            .draw_series(candles.iter().filter(|c| c.high.is_finite() && c.low.is_finite()).map(|c| {
                let colour = if c.close >= c.open { UP } else { DOWN };
                let mid = x(c.t) + iv / 2.0;
                PathElement::new(vec![(mid, c.low), (mid, c.high)], colour.stroke_width(1))
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(candles.iter().filter(|c| c.open.is_finite() && c.close.is_finite()).map(|c| {
                let colour = if c.close >= c.open { UP } else { DOWN };
                let t = x(c.t);
                // A body at least a hair tall, so a doji still shows.
                let b0 = c.open.min(c.close);
                let b1 = c.open.max(c.close).max(b0 + (y1 - y0) * 0.002);
                Rectangle::new([(t + iv * 0.15, b0), (t + iv * 0.85, b1)], colour.filled())
            }))
            .map_err(|e| err(&e))?;
        let outline = BLACK.mix(0.7);
        chart
            .draw_series(shown.iter().filter(|m| m.buy).map(|m| {
                EmptyElement::at((x(m.t), m.price))
                    + Polygon::new(vec![(-8, 7), (8, 7), (0, -8)], BUY.filled())
                    + PathElement::new(vec![(-8, 7), (8, 7), (0, -8), (-8, 7)], outline)
            }))
            .map_err(|e| err(&e))?
            .label("Keel buy")
            .legend(|(x, y)| Polygon::new(vec![(x + 2, y + 6), (x + 16, y + 6), (x + 9, y - 6)], BUY.filled()));
        chart
            .draw_series(shown.iter().filter(|m| !m.buy).map(|m| {
                EmptyElement::at((x(m.t), m.price))
                    + Polygon::new(vec![(-8, -7), (8, -7), (0, 8)], SELL.filled())
                    + PathElement::new(vec![(-8, -7), (8, -7), (0, 8), (-8, -7)], outline)
            }))
            .map_err(|e| err(&e))?
            .label("Keel sell")
            .legend(|(x, y)| Polygon::new(vec![(x + 2, y - 6), (x + 16, y - 6), (x + 9, y + 6)], SELL.filled()));
        if !shown.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .label_font((FAMILY, 14))
                .draw()
                .map_err(|e| err(&e))?;
        }
        let px = shown.iter().map(|m| chart.backend_coord(&(x(m.t), m.price))).collect::<Vec<_>>();
        let plot = chart.plotting_area().get_pixel_range();
        root.present().map_err(|e| err(&e))?;
        (px, plot)
    };
    let png = encode_png(&buf, SIZE)?;
    Ok(Rendered { png, marks: mark_px, plot })
}

/// Encodes an RGB buffer as PNG.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| format!("png: {e}"))?;
    writer.write_image_data(rgb).map_err(|e| format!("png: {e}"))?;
    writer.finish().map_err(|e| format!("png: {e}"))?;
    Ok(out)
}

/// Where charts get their bars and fills: the running engine, set once it
/// runs (notifiers start before the engine so a start-up failure is sent too).
#[derive(Clone, Default)]
pub struct Charts {
    /// The engine and its bar interval (ms): the interval every venue serves
    /// (the paper venue simulates only that one).
    engine: Arc<OnceLock<(EngineHandle, i64)>>,
}

impl Charts {
    /// Gives the charts the running engine, trading on `bar_interval_ms` bars.
    pub fn set_engine(&self, handle: &EngineHandle, bar_interval_ms: i64) {
        let _ = self.engine.set((handle.clone(), bar_interval_ms));
    }

    /// The chart `request` asks for: the symbol's last [`BARS`] closed bars
    /// (asked from a start time on the venue's clock, never a "latest bars"
    /// call) with Keel's fills in that window, drawn on a blocking-pool thread.
    pub async fn png(&self, request: &ChartRequest) -> Result<Vec<u8>, String> {
        let (handle, interval_ms) = self.engine.get().ok_or("the engine is not running yet")?;
        let interval_ms = *interval_ms;
        let bars = crate::http::candles::recent_bars(handle.venue().as_ref(), &request.symbol, interval_ms, BARS)
            .await
            .map_err(|e| format!("the venue did not answer for bars: {e}"))?;
        if bars.is_empty() {
            return Err(format!("the venue has no bars for {}", request.symbol));
        }
        let fills = handle.recent_fills(FILLS_READ).await.map_err(|e| format!("fills: {e}"))?;
        let marks: Vec<Mark> = fills.iter().filter(|f| f.symbol == request.symbol).map(Mark::from).collect();
        let candles: Vec<Candle> = bars.iter().map(Candle::from).collect();
        let day = bars.last().map(|b| b.open_time).and_then(chrono::DateTime::from_timestamp_millis);
        let day = day.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default();
        let title = format!("{} · {} bars · {day} UTC", request.symbol, when::duration(interval_ms.max(0) as u64));
        tokio::task::spawn_blocking(move || render(&title, interval_ms, &candles, &marks).map(|r| r.png))
            .await
            .map_err(|e| format!("the chart task failed: {e}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 60 one-minute bars of a seeded walk from 65 000, starting at a whole hour.
    fn walk() -> Vec<Candle> {
        let t0 = 1_764_979_200_000; // 2025-12-06 00:00 UTC
        let mut price = 65_000.0;
        let mut state = 42u64;
        (0..60)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let step = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 40.0;
                let open = price;
                price += step;
                Candle {
                    t: t0 + i * 60_000,
                    open,
                    high: open.max(price) + 6.0,
                    low: open.min(price) - 6.0,
                    close: price,
                }
            })
            .collect()
    }

    fn decode(png_bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(png_bytes);
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("a frame");
        (info, buf)
    }

    #[test]
    fn a_chart_is_a_png_of_its_size_with_the_fills_inside_the_plot_in_their_colours() {
        let candles = walk();
        let marks = [
            Mark { t: candles[10].t + 30_000, price: candles[10].close, buy: true },
            Mark { t: candles[40].t + 10_000, price: candles[40].high, buy: false },
            // In the bar still open (after the last closed one): drawn, the window stretched to it.
            Mark { t: candles[59].t + 90_000, price: candles[59].close, buy: true },
            // Outside the window: not drawn.
            Mark { t: candles[0].t - 3_600_000, price: 1.0, buy: true },
            Mark { t: candles[59].t + 3_600_000, price: candles[59].close, buy: false },
        ];
        let r = render("BTCUSDT · 1m bars", 60_000, &candles, &marks).expect("renders");
        std::fs::create_dir_all("../target").ok();
        std::fs::write("../target/discord-chart-sample.png", &r.png).ok();
        let (info, pixels) = decode(&r.png);
        assert_eq!((info.width, info.height), SIZE);
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(r.marks.len(), 3, "the marks outside the window are skipped");
        for (i, ((x, y), colour)) in r.marks.iter().zip([BUY, SELL, BUY]).enumerate() {
            assert!(r.plot.0.contains(x) && r.plot.1.contains(y), "mark {i} at ({x},{y}) outside {:?}", r.plot);
            let at = (*y as usize * SIZE.0 as usize + *x as usize) * 3;
            assert_eq!(&pixels[at..at + 3], &[colour.0, colour.1, colour.2], "mark {i}'s colour at its centre");
        }
        // The buy was drawn left of the sell and (a close below the later high) not above it.
        assert!(r.marks[0].0 < r.marks[1].0);
    }

    #[test]
    fn no_bars_is_an_error_not_a_picture() {
        assert!(render("x", 60_000, &[], &[]).is_err());
        let nan = Candle { t: 0, open: f64::NAN, high: f64::NAN, low: f64::NAN, close: f64::NAN };
        assert!(render("x", 60_000, &[nan], &[]).is_err());
    }

    #[test]
    fn time_labels_are_utc_with_the_date_only_across_midnight() {
        assert_eq!(time_label(x(1_764_979_200_000 + 3_660_000), false), "01:01");
        assert_eq!(time_label(x(1_764_979_200_000), true), "12-06 00:00");
    }
}
