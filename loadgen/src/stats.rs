//! Latency percentiles, by nearest rank over every sample (no histogram buckets, no sampling);
//! the median and range of a few repeated measurements.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// `None` when there are no samples: an empty run has no latency, not a zero one.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |p: f64| {
            // Nearest rank: the smallest sample with at least p of all samples at or below it.
            let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            ms(samples[index])
        };
        Some(Self {
            samples: samples.len(),
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: ms(samples[samples.len() - 1]),
        })
    }
}

/// The middle and the extremes of a few repeated measurements of one figure (in the figure's
/// unit: seconds for [`Spread::of_durations`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    /// The middle value; with an even count, the mean of the two middle ones.
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` without values (NaNs and infinities, a ratio to a zero, are left out).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        values.sort_unstable_by(f64::total_cmp);
        let count = values.len();
        let median = match count {
            0 => return None,
            n if n % 2 == 1 => values[n / 2],
            n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        };
        Some(Self { count, median, min: values[0], max: values[count - 1] })
    }

    /// The spread of `durations`, in seconds.
    pub fn of_durations(durations: &[Duration]) -> Option<Self> {
        Self::of(durations.iter().map(Duration::as_secs_f64))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_over_every_sample() {
        let samples = (1..=100).map(Duration::from_millis).collect::<Vec<_>>();
        let p = Percentiles::of(samples).unwrap();
        assert_eq!((p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(p.samples, 100);
    }

    #[test]
    fn a_spread_is_the_middle_value_or_the_mean_of_the_middle_two_with_the_extremes() {
        let odd = Spread::of([1.07, 0.84, 0.93, f64::NAN, 0.91, f64::INFINITY, 0.99]).unwrap();
        assert_eq!((odd.count, odd.median, odd.min, odd.max), (5, 0.93, 0.84, 1.07));
        let even = Spread::of([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((even.count, even.median, even.min, even.max), (4, 2.5, 1.0, 4.0));
        assert_eq!(Spread::of([]), None);
        assert_eq!(Spread::of([f64::NAN]), None);
        let seconds = Spread::of_durations(&[3, 1, 2].map(Duration::from_secs)).unwrap();
        assert_eq!((seconds.count, seconds.median, seconds.min, seconds.max), (3, 2.0, 1.0, 3.0));
    }

    #[test]
    fn a_single_sample_is_every_percentile_and_none_is_no_figure() {
        let p = Percentiles::of(vec![Duration::from_micros(1500)]).unwrap();
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (1.5, 1.5, 1.5));
        assert_eq!(Percentiles::of(Vec::new()), None);
    }
}
