//! The least, middle and most of a set of durations: how each attack reports its timings.

use std::time::Duration;

use serde::Serialize;

/// The least, middle and most of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub samples: usize,
    pub min_s: f64,
    pub median_s: f64,
    pub max_s: f64,
}

impl Spread {
    /// `None` when there is nothing to spread.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        samples.sort_unstable();
        let (first, last) = (samples.first()?, samples.last()?);
        Some(Self {
            samples: samples.len(),
            min_s: first.as_secs_f64(),
            median_s: samples[(samples.len() - 1) / 2].as_secs_f64(),
            max_s: last.as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_least_the_middle_and_the_most() {
        let s = Spread::of([3, 1, 2].map(Duration::from_secs).to_vec()).unwrap();
        assert_eq!((s.samples, s.min_s, s.median_s, s.max_s), (3, 1.0, 2.0, 3.0));
        assert_eq!(Spread::of(Vec::new()), None);
    }
}
