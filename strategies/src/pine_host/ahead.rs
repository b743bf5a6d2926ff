//! A backtest's script run ahead: a Pine script that reads no strategy state decides on a bar
//! from the bars up to it alone, so on a backtest (which knows every bar it will deliver; see
//! [`Strategy::foresee`](keel_core::strategy::Strategy::foresee)) a thread of its own runs it
//! over the whole series while the engine fills orders, and the strategy takes each bar's commands
//! and alerts from there instead of running the script itself. The broker (fills, position,
//! exits) stays on the strategy's thread.
//!
//! The same [`Script`] code converts and steps the bars on both sides, so the commands are the
//! ones the strategy would have computed. A bar that is not the next one of the series (one not
//! delivered while the strategy was paused) ends it: the strategy's own runner catches up on the
//! bars delivered so far and goes on alone, as if there had been no thread.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use keel_core::market::{Bar, BarSeries};
use keel_core::Symbol;
use pine::{Alert, Command, Program, StrategyState};

use super::Script;

/// Bars per batch sent from the thread: few sends, and the strategy never waits long for the
/// first.
const BATCH: usize = 4096;
/// Batches the thread may be ahead by (a bounded queue): 4M bars. A batch holds only the output
/// of its bars, so this is no more memory than the run's orders; and a thread that never waits
/// for room is never woken: each wake-up of a thread that waited could land it on the core the
/// engine runs on (Linux wakes a thread near its waker), the two then sharing one core for
/// milliseconds — with 4 batches, once a batch.
const QUEUED: usize = 1024;

/// What the thread produced for the bars of one batch: the bars that issued commands or alerts,
/// with theirs, in order.
#[derive(Default)]
struct Batch {
    /// The series index after its last bar.
    end: usize,
    /// Per bar with output: (its series index, the end of its commands in `commands`, the end of
    /// its alerts in `alerts`).
    bars: Vec<(usize, usize, usize)>,
    commands: Vec<Command>,
    alerts: Vec<Alert>,
    /// The script stopped on this bar (a runaway loop), with its message; no bar follows.
    failed: Option<(usize, String)>,
}

/// The outcome of one bar taken from the thread.
pub(super) enum Foreseen<'a> {
    /// The bar's commands and alerts (both empty on most bars).
    Output(&'a [Command], &'a [Alert]),
    /// The script stopped on this bar, with this message.
    Failed(&'a str),
    /// The bar is not the series' next one (or the thread is gone): the strategy runs the script
    /// itself from here, after catching up on the first `delivered` bars.
    Behind { delivered: usize },
}

/// The strategy's side of the thread.
pub(super) struct Ahead {
    series: Arc<dyn BarSeries>,
    /// The series' length.
    len: usize,
    batches: Receiver<Batch>,
    batch: Batch,
    /// The next entry of `batch.bars` to hand out.
    cursor: usize,
    /// The series index the next delivered bar must be.
    next: usize,
    /// Bars from `next` up to this index have no output and no stop: [`Self::skip`] skips them
    /// with two comparisons. It never passes the next bar with output, so once that bar is
    /// taken it is at most `next`, and [`Self::skip`] looks again.
    quiet_end: usize,
}

impl Ahead {
    /// Starts the thread running `program` over `series` (bars of `symbol`); `None` when the
    /// script reads strategy state (it must run beside the broker) or no thread could be started.
    pub(super) fn start(program: &Arc<Program>, symbol: &Symbol, series: Arc<dyn BarSeries>) -> Option<Self> {
        if program.reads_strategy_state() {
            return None;
        }
        let (tx, rx) = sync_channel(QUEUED);
        let (program, symbol, bars) = (Arc::clone(program), symbol.clone(), Arc::clone(&series));
        std::thread::Builder::new()
            .name("pine-ahead".into())
            .spawn(move || run(&program, symbol, bars.as_ref(), &tx))
            .ok()?;
        Some(Self { len: series.len(), series, batches: rx, batch: Batch::default(), cursor: 0, next: 0, quiet_end: 0 })
    }

    /// The series, for the catch-up after [`Foreseen::Behind`].
    pub(super) fn series(&self) -> Arc<dyn BarSeries> {
        Arc::clone(&self.series)
    }

    /// When bar `from` of the series is the next one: how many of bars `from..upto`, from `from`
    /// on, the script decided nothing on (no command or alert, and it did not stop there). They
    /// count as delivered, as if taken.
    pub(super) fn skip(&mut self, from: usize, upto: usize) -> usize {
        if self.next != from {
            return 0;
        }
        let upto = upto.min(self.len);
        while self.next < upto {
            if self.next >= self.quiet_end && !self.quiet_from_next() {
                break;
            }
            self.next = self.quiet_end.min(upto);
        }
        self.next - from
    }

    /// Sets the end of the quiet bars from the next one: up to the next bar with output, the bar
    /// the script stopped on, or its batch's end, whichever comes first. False when the next bar
    /// is not quiet, or the thread is gone (`take` says so).
    fn quiet_from_next(&mut self) -> bool {
        let i = self.next;
        if !self.reach(i) {
            return false;
        }
        let batch = &self.batch;
        let output = batch.bars.get(self.cursor).map_or(batch.end, |&(at, _, _)| at);
        let stopped = batch.failed.as_ref().map_or(batch.end, |(at, _)| *at);
        self.quiet_end = output.min(stopped).min(batch.end);
        i < self.quiet_end
    }

    /// Receives batches until the one holding bar `i`; false when the thread ended first.
    fn reach(&mut self, i: usize) -> bool {
        while i >= self.batch.end {
            match self.batches.recv() {
                Ok(batch) => (self.batch, self.cursor) = (batch, 0),
                Err(_) => return false,
            }
        }
        true
    }

    /// What the script decided on `bar`, the next delivered one.
    pub(super) fn take(&mut self, bar: &Bar) -> Foreseen<'_> {
        let i = self.next;
        if i >= self.len || self.series.open_time(i) != bar.open_time {
            return Foreseen::Behind { delivered: i };
        }
        if !self.reach(i) {
            // The thread ended early (it panicked): the strategy's own runner meets the same.
            return Foreseen::Behind { delivered: i };
        }
        self.next += 1;
        let batch = &self.batch;
        if let Some((at, message)) = &batch.failed {
            if *at == i {
                return Foreseen::Failed(message);
            }
        }
        match batch.bars.get(self.cursor) {
            Some(&(at, commands_end, alerts_end)) if at == i => {
                let (commands_start, alerts_start) = match self.cursor.checked_sub(1) {
                    Some(prev) => (batch.bars[prev].1, batch.bars[prev].2),
                    None => (0, 0),
                };
                self.cursor += 1;
                Foreseen::Output(&batch.commands[commands_start..commands_end], &batch.alerts[alerts_start..alerts_end])
            }
            _ => Foreseen::Output(&[], &[]),
        }
    }
}

/// The thread: steps the script over every bar, sending a batch every [`BATCH`] bars; ends at the
/// last bar, at a failure, or when the strategy is gone.
fn run(program: &Arc<Program>, symbol: Symbol, series: &dyn BarSeries, tx: &SyncSender<Batch>) {
    let mut script = Script::new(program);
    let mut bar = Bar {
        symbol,
        open_time: 0,
        close_time: 0,
        open: Default::default(),
        high: Default::default(),
        low: Default::default(),
        close: Default::default(),
        volume: Default::default(),
    };
    // Not read (the script reads no strategy state), so any will do.
    let state = StrategyState::default();
    let mut batch = Batch::default();
    for i in 0..series.len() {
        series.bar(i, &mut bar);
        match script.step(&bar, |_| state) {
            Ok(out) => {
                if !out.commands.is_empty() || !out.alerts.is_empty() {
                    batch.commands.extend_from_slice(&out.commands);
                    batch.alerts.extend_from_slice(&out.alerts);
                    batch.bars.push((i, batch.commands.len(), batch.alerts.len()));
                }
            }
            Err(message) => {
                batch.end = i + 1;
                batch.failed = Some((i, message));
                let _ = tx.send(batch);
                return;
            }
        }
        if (i + 1) % BATCH == 0 || i + 1 == series.len() {
            batch.end = i + 1;
            if tx.send(std::mem::take(&mut batch)).is_err() {
                // The strategy is gone (the backtest ended, or it went on alone).
                return;
            }
        }
    }
}
