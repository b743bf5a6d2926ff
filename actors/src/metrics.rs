//! Every Prometheus metric of the engine, registered in one place.
//!
//! Names follow Prometheus conventions: a `keel_` prefix, base units
//! (`_seconds`, ratios 0–1), `_total` on counters, and only bounded label values
//! (symbols, strategy ids, reason codes — never an order id).

use std::sync::{Mutex, OnceLock};

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};
use prometheus::{Gauge, GaugeVec};

/// The conditions the `scanner` strategy raises alerts for (the
/// `condition` label of `keel_setup_alerts_total`).
pub const SETUP_ALERT_CONDITIONS: [&str; 5] =
    ["funding_above", "oi_change_pct", "volume_spike", "breakout_high", "breakout_low"];

/// The actors messages are counted for (the `actor` label).
pub const ACTORS: [&str; 5] = ["risk_guard", "order_router", "portfolio", "strategy_host", "market_data"];

/// The engine's metrics.
pub struct Metrics {
    /// The registry `/metrics` serves.
    pub registry: Registry,
    /// Orders sent to the venue.
    pub orders_submitted_total: IntCounter,
    /// Orders completely filled.
    pub orders_filled_total: IntCounter,
    /// Orders canceled.
    pub orders_canceled_total: IntCounter,
    /// Orders rejected by the venue, by reason code.
    pub orders_rejected_total: IntCounterVec,
    /// Fills recorded.
    pub fills_total: IntCounter,
    /// Intents refused by the risk guard, by reason code.
    pub risk_rejections_total: IntCounterVec,
    /// Trading state: 0 active, 1 reducing, 2 halted.
    pub trading_state: IntGauge,
    /// 1 while the emergency stop is set.
    pub emergency_stop: IntGauge,
    /// Net position per symbol in the base asset.
    pub position_quantity: GaugeVec,
    /// Account equity marked to market, in the quote asset.
    pub equity: Gauge,
    /// Drawdown from the equity high-water mark (0–1).
    pub drawdown_ratio: Gauge,
    /// Realized PnL per symbol in the quote asset.
    pub realized_pnl: GaugeVec,
    /// Market event arrival to approved order reaching the router.
    pub tick_to_order_seconds: Histogram,
    /// Order handed to the router to the venue's acknowledgement (includes the write-ahead flush).
    pub order_ack_seconds: Histogram,
    /// Age of the latest market data per symbol.
    pub market_data_age_seconds: GaugeVec,
    /// 1 while a venue stream is connected, by stream (`market`, `user`).
    pub stream_connected: IntGaugeVec,
    /// Venue stream reconnects, by stream.
    pub stream_reconnects_total: IntCounterVec,
    /// Setup alerts raised by strategies, per condition.
    pub setup_alerts_total: IntCounterVec,
    /// Positions closed (or reduced) by the exits every strategy gets, per
    /// reason (`stop_loss`, `take_profit`, `trailing_stop`, `roi`, `max_hold`, `signal`).
    pub exits_total: IntCounterVec,
    /// Request weight used in the venue's current window.
    pub venue_used_weight: IntGauge,
    /// Duration of store writes.
    pub store_write_seconds: Histogram,
    /// Message processing time per actor.
    pub actor_message_seconds: HistogramVec,
    /// Market events delivered to strategies.
    pub market_events_total: IntCounter,
    /// 1 while a strategy is paused, by strategy id.
    pub strategy_paused: IntGaugeVec,
    /// Strategy failures (panics), by strategy id.
    pub strategy_failures_total: IntCounterVec,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
    /// What this engine trades on (always 1): `venue_mode` is `paper`,
    /// `sandbox`, `testnet` or `mainnet` (real money); `exchange` is
    /// `binance` or `coinbase` (empty on paper, which is neither).
    pub info: IntGaugeVec,
    /// The configured drawdown limit (0–1; 0 = no limit), for alerting near it.
    pub drawdown_limit_ratio: Gauge,
    /// Venue alerts seen, by kind (`rate_limited` = HTTP 429, `banned` = HTTP 418, `order_rate_exceeded`).
    pub venue_alerts_total: IntCounterVec,
    /// HTTP API requests answered, by route pattern and status code.
    pub http_requests_total: IntCounterVec,
    /// HTTP API requests refused for a missing or wrong token or webhook secret.
    pub http_unauthorized_total: IntCounter,
    /// HTTP API requests refused by the per-client rate limit.
    pub http_rate_limited_total: IntCounter,
    /// Telegram commands executed, by command.
    pub telegram_commands_total: IntCounterVec,
    /// Telegram messages ignored because the chat or user is not allowed.
    pub telegram_unauthorized_total: IntCounter,
    /// Notifications delivered, by notifier (`telegram`, `discord`).
    pub notifications_sent_total: IntCounterVec,
    /// Notifications dropped (queue full or undeliverable), by notifier.
    pub notifications_dropped_total: IntCounterVec,
    /// Messages dropped between actors: a superseded message to a full
    /// mailbox, or any message to an actor that has stopped, by receiving actor.
    pub messages_dropped_total: IntCounterVec,
    /// Messages that must not be dropped delivered to a full mailbox, beyond
    /// its bound, by receiving actor.
    pub mailbox_overflow_total: IntCounterVec,
    /// Rate-limit answers (HTTP 429) from a notifier's API, by notifier.
    pub notifications_rate_limited_total: IntCounterVec,
    /// Log lines dropped because the log output (stderr) could not take them.
    pub log_lines_dropped_total: IntCounter,
    /// Venue messages that could not be read (malformed or unknown values), by stream.
    pub venue_parse_errors_total: IntCounterVec,
    /// The universe's current members (`[universe]`).
    pub universe_symbols: IntGauge,
    /// Refreshes that changed the universe's members.
    pub universe_changes_total: IntCounter,
    samples: Mutex<Option<Vec<f64>>>,
}

fn micro_buckets() -> Vec<f64> {
    // 1 µs … ~4 s, doubling: covers in-process decisions and venue round trips.
    exponential_buckets(1e-6, 2.0, 23).unwrap_or_default()
}

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let int_gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let int_gauge_vec = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let histogram = |name: &str, help: &str| -> Result<Histogram, prometheus::Error> {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(micro_buckets()))?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let equity = Gauge::new("keel_equity", "Account equity marked to market, in the quote asset")?;
        registry.register(Box::new(equity.clone()))?;
        let drawdown_ratio = Gauge::new("keel_drawdown_ratio", "Drawdown from the equity high-water mark (0-1)")?;
        registry.register(Box::new(drawdown_ratio.clone()))?;
        let actor_message_seconds = HistogramVec::new(
            HistogramOpts::new("keel_actor_message_seconds", "Message processing time per actor")
                .buckets(micro_buckets()),
            &["actor"],
        )?;
        registry.register(Box::new(actor_message_seconds.clone()))?;
        let m = Self {
            orders_submitted_total: counter("keel_orders_submitted_total", "Orders sent to the venue")?,
            orders_filled_total: counter("keel_orders_filled_total", "Orders completely filled")?,
            orders_canceled_total: counter("keel_orders_canceled_total", "Orders canceled")?,
            orders_rejected_total: counter_vec(
                "keel_orders_rejected_total",
                "Orders rejected by the venue or never sent, by reason",
                &["reason"],
            )?,
            fills_total: counter("keel_fills_total", "Fills recorded")?,
            risk_rejections_total: counter_vec(
                "keel_risk_rejections_total",
                "Intents refused by the risk guard, by reason",
                &["reason"],
            )?,
            trading_state: int_gauge("keel_trading_state", "Trading state: 0 active, 1 reducing, 2 halted")?,
            emergency_stop: int_gauge("keel_emergency_stop", "1 while the emergency stop is set")?,
            position_quantity: gauge_vec(
                "keel_position_quantity",
                "Net position per symbol, in the base asset",
                &["symbol"],
            )?,
            equity,
            drawdown_ratio,
            realized_pnl: gauge_vec("keel_realized_pnl", "Realized PnL per symbol, in the quote asset", &["symbol"])?,
            tick_to_order_seconds: histogram(
                "keel_tick_to_order_seconds",
                "Market event arrival to the approved order reaching the order router",
            )?,
            order_ack_seconds: histogram(
                "keel_order_ack_seconds",
                "Order reaching the router to the venue's acknowledgement, including the write-ahead flush",
            )?,
            market_data_age_seconds: gauge_vec(
                "keel_market_data_age_seconds",
                "Seconds since market data last arrived, per symbol",
                &["symbol"],
            )?,
            stream_connected: int_gauge_vec(
                "keel_stream_connected",
                "1 while a venue stream is connected",
                &["stream"],
            )?,
            stream_reconnects_total: counter_vec(
                "keel_stream_reconnects_total",
                "Venue stream reconnects",
                &["stream"],
            )?,
            setup_alerts_total: counter_vec(
                "keel_setup_alerts_total",
                "Setup alerts raised by strategies (the scanner kind), per condition",
                &["condition"],
            )?,
            exits_total: counter_vec(
                "keel_exits_total",
                "Exits (stop-loss, take-profit, trailing stop, minimal ROI, max hold, the strategy's signal), per reason",
                &["reason"],
            )?,
            venue_used_weight: int_gauge(
                "keel_venue_used_weight",
                "Request weight used in the venue's current window",
            )?,
            store_write_seconds: histogram("keel_store_write_seconds", "Duration of store writes")?,
            actor_message_seconds,
            market_events_total: counter("keel_market_events_total", "Market events delivered to strategies")?,
            strategy_paused: int_gauge_vec("keel_strategy_paused", "1 while a strategy is paused", &["strategy"])?,
            strategy_failures_total: counter_vec(
                "keel_strategy_failures_total",
                "Strategy failures (panics)",
                &["strategy"],
            )?,
            build_info: int_gauge_vec("keel_build_info", "Build information (always 1)", &["version"])?,
            info: int_gauge_vec(
                "keel_info",
                "What the engine trades on (always 1); venue_mode mainnet means real money",
                &["venue_mode", "exchange"],
            )?,
            drawdown_limit_ratio: {
                let g = Gauge::new(
                    "keel_drawdown_limit_ratio",
                    "Configured maximum drawdown from the equity high-water mark (0-1, 0 = no limit)",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            venue_alerts_total: counter_vec(
                "keel_venue_alerts_total",
                "Venue alerts seen: rate_limited (HTTP 429), banned (HTTP 418), order_rate_exceeded",
                &["kind"],
            )?,
            http_requests_total: counter_vec(
                "keel_http_requests_total",
                "HTTP API requests answered, by route pattern and status code",
                &["route", "status"],
            )?,
            http_unauthorized_total: counter(
                "keel_http_unauthorized_total",
                "HTTP API requests refused for a missing or wrong token or webhook secret",
            )?,
            http_rate_limited_total: counter(
                "keel_http_rate_limited_total",
                "HTTP API requests refused by the per-client rate limit",
            )?,
            telegram_commands_total: counter_vec(
                "keel_telegram_commands_total",
                "Telegram commands executed, by command",
                &["command"],
            )?,
            telegram_unauthorized_total: counter(
                "keel_telegram_unauthorized_total",
                "Telegram messages ignored because the chat or user is not allowed",
            )?,
            notifications_sent_total: counter_vec(
                "keel_notifications_sent_total",
                "Notifications delivered, by notifier",
                &["notifier"],
            )?,
            messages_dropped_total: counter_vec(
                "keel_messages_dropped_total",
                "Messages dropped between actors (superseded ones to a full mailbox, any to a stopped actor), by receiving actor",
                &["actor"],
            )?,
            venue_parse_errors_total: counter_vec(
                "keel_venue_parse_errors_total",
                "Venue messages Keel could not read (malformed, or a value it does not know), by stream",
                &["stream"],
            )?,
            universe_symbols: int_gauge("keel_universe_symbols", "The universe's current members")?,
            universe_changes_total: counter(
                "keel_universe_changes_total",
                "Universe refreshes that changed the members",
            )?,
            log_lines_dropped_total: counter(
                "keel_log_lines_dropped_total",
                "Log lines dropped because the log output (stderr) was blocked or too slow",
            )?,
            mailbox_overflow_total: counter_vec(
                "keel_mailbox_overflow_total",
                "Messages that must not be dropped delivered beyond a full mailbox's bound, by receiving actor",
                &["actor"],
            )?,
            notifications_dropped_total: counter_vec(
                "keel_notifications_dropped_total",
                "Notifications dropped because the queue was full or delivery failed, by notifier",
                &["notifier"],
            )?,
            notifications_rate_limited_total: counter_vec(
                "keel_notifications_rate_limited_total",
                "Rate-limit answers (HTTP 429) from a notifier's API, by notifier",
                &["notifier"],
            )?,
            samples: Mutex::new(None),
            registry,
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(m)
    }

    /// Creates the series whose label values are known from the config, so
    /// every metric appears in `/metrics` from the start (a labelled metric
    /// without any series is not exported at all): streams, symbols,
    /// strategies, risk-rejection reasons, venue alert kinds and notifiers.
    pub fn prime(&self, symbols: &[&str], strategies: &[&str]) {
        for stream in ["market", "user"] {
            self.stream_connected.with_label_values(&[stream]);
            self.stream_reconnects_total.with_label_values(&[stream]);
        }
        for condition in SETUP_ALERT_CONDITIONS {
            self.setup_alerts_total.with_label_values(&[condition]);
        }
        for reason in keel_core::exits::ExitReason::ALL {
            self.exits_total.with_label_values(&[reason.as_str()]);
        }
        for symbol in symbols {
            self.position_quantity.with_label_values(&[symbol]);
            self.realized_pnl.with_label_values(&[symbol]);
            self.market_data_age_seconds.with_label_values(&[symbol]);
        }
        for strategy in strategies {
            self.strategy_paused.with_label_values(&[strategy]);
            self.strategy_failures_total.with_label_values(&[strategy]);
        }
        for code in risk::ALL_REJECT_CODES {
            self.risk_rejections_total.with_label_values(&[code]);
        }
        self.orders_rejected_total.with_label_values(&["venue_rejected"]);
        for actor in ACTORS {
            self.messages_dropped_total.with_label_values(&[actor]);
            self.mailbox_overflow_total.with_label_values(&[actor]);
        }
        for kind in ["rate_limited", "banned", "order_rate_exceeded"] {
            self.venue_alerts_total.with_label_values(&[kind]);
        }
        for notifier in ["telegram", "discord"] {
            self.notifications_sent_total.with_label_values(&[notifier]);
            self.notifications_dropped_total.with_label_values(&[notifier]);
            self.notifications_rate_limited_total.with_label_values(&[notifier]);
        }
    }

    /// Records a tick-to-order latency.
    pub fn observe_tick_to_order(&self, seconds: f64) {
        self.tick_to_order_seconds.observe(seconds);
        if let Ok(mut guard) = self.samples.lock() {
            if let Some(v) = guard.as_mut() {
                v.push(seconds);
            }
        }
    }

    /// Starts keeping every tick-to-order sample (benchmarks compute percentiles from them).
    pub fn start_sampling(&self) {
        if let Ok(mut guard) = self.samples.lock() {
            *guard = Some(Vec::with_capacity(1 << 16));
        }
    }

    /// Takes the samples kept since [`Self::start_sampling`].
    pub fn take_samples(&self) -> Vec<f64> {
        self.samples.lock().ok().and_then(|mut g| g.take()).unwrap_or_default()
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| match Metrics::new() {
        Ok(m) => m,
        // Registration only fails on a duplicate or invalid name: a bug caught by tests.
        Err(e) => panic!("metric registration failed: {e}"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_register_and_encode() {
        let m = super::metrics();
        m.orders_rejected_total.with_label_values(&["test"]).inc();
        let families = m.registry.gather();
        assert!(families.iter().all(|f| f.name().starts_with("keel_")));
        assert!(families.iter().any(|f| f.name() == "keel_orders_rejected_total"));
    }
}
