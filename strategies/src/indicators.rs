//! Streaming indicators, O(1) per update and allocation-free after construction.
//! Indicators are statistics, so they compute in `f64`; orders stay `Decimal`.

/// Simple moving average over a fixed window.
#[derive(Debug, Clone)]
pub struct Sma {
    window: Vec<f64>,
    next: usize,
    filled: usize,
    sum: f64,
}

impl Sma {
    /// An SMA over `period` values (`period` ≥ 1).
    pub fn new(period: usize) -> Self {
        Self { window: vec![0.0; period.max(1)], next: 0, filled: 0, sum: 0.0 }
    }

    /// Adds a value; returns the average once `period` values have been seen.
    pub fn update(&mut self, value: f64) -> Option<f64> {
        let period = self.window.len();
        if self.filled == period {
            self.sum -= self.window[self.next];
        } else {
            self.filled += 1;
        }
        self.window[self.next] = value;
        self.sum += value;
        self.next = (self.next + 1) % period;
        self.value()
    }

    /// The current average, once warm.
    pub fn value(&self) -> Option<f64> {
        (self.filled == self.window.len()).then(|| self.sum / self.window.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sma_reference_values() {
        // Reference: hand-computed means of the trailing 3 values.
        let mut sma = Sma::new(3);
        let got: Vec<Option<f64>> = [1.0, 2.0, 3.0, 4.0, 10.0].iter().map(|v| sma.update(*v)).collect();
        assert_eq!(got, vec![None, None, Some(2.0), Some(3.0), Some(17.0 / 3.0)]);
    }
}
