//! `faults soak` (`make soak`): steady load for a long while; the server's memory and open
//! files must stay flat, every message be burned, no row be left.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use loadgen::target::{self, Backend, Database, Server, ServerSpec};
use serde::Serialize;

use crate::error::FaultError;
use crate::report::FaultReport;
use crate::rooms::Load;
use crate::rooms::Urls;

/// What to run, and how often to sample the server.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub server_bin: PathBuf,
    pub backend: Backend,
    pub postgres_url: String,
    pub rooms: usize,
    pub interval: Duration,
    pub duration: Duration,
    pub sample_every: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    pub seconds: f64,
    pub rss_kib: u64,
    pub open_files: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub backend: String,
    pub rooms: usize,
    pub seconds: f64,
    pub messages: FaultReport,
    pub samples: Vec<SoakSample>,
    /// Mean RSS and open files over the first and the last quarter of the samples (the first
    /// sample, taken as the load starts, left out: allocator and pool warm-up).
    pub rss_kib_first_quarter: f64,
    pub rss_kib_last_quarter: f64,
    pub open_files_first_quarter: f64,
    pub open_files_last_quarter: f64,
}

/// RSS may grow by this much from the first quarter to the last (allocator noise), files by
/// this many (pool connections opening lazily); more is a leak.
const SOAK_RSS_SLACK_KIB: f64 = 8.0 * 1024.0;
const SOAK_FILES_SLACK: f64 = 8.0;

impl SoakReport {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.messages.problems();
        if self.rss_kib_last_quarter > self.rss_kib_first_quarter * 1.10 + SOAK_RSS_SLACK_KIB {
            problems.push(format!(
                "memory grew: {:.0} KiB → {:.0} KiB mean RSS from the first quarter to the last",
                self.rss_kib_first_quarter, self.rss_kib_last_quarter
            ));
        }
        if self.open_files_last_quarter > self.open_files_first_quarter + SOAK_FILES_SLACK {
            problems.push(format!(
                "open files grew: {:.1} → {:.1} from the first quarter to the last",
                self.open_files_first_quarter, self.open_files_last_quarter
            ));
        }
        problems
    }
}

fn open_files(pid: u32) -> Result<usize, FaultError> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn quarter_means(samples: &[SoakSample]) -> (f64, f64, f64, f64) {
    let body = samples.get(1..).unwrap_or_default();
    let quarter = (body.len() / 4).max(1);
    let mean = |s: &[SoakSample], f: fn(&SoakSample) -> f64| s.iter().map(f).sum::<f64>() / s.len().max(1) as f64;
    let (first, last) = (&body[..quarter.min(body.len())], &body[body.len().saturating_sub(quarter)..]);
    (
        mean(first, |s| s.rss_kib as f64),
        mean(last, |s| s.rss_kib as f64),
        mean(first, |s| s.open_files as f64),
        mean(last, |s| s.open_files as f64),
    )
}

pub async fn soak(options: &SoakOptions) -> Result<SoakReport, FaultError> {
    let rooms = loadgen::journey::derive_rooms(options.rooms).await;
    let db = Database::new(options.backend, &options.postgres_url)?;
    let spec = ServerSpec::for_load(options.server_bin.clone());
    let server = Server::start(&spec, &db, &target::random_key(), 0).await?;
    let urls: Urls = Arc::new(RwLock::new(vec![server.ws_url()]));
    let mut messages =
        FaultReport { backend: options.backend.name().into(), instances: 1, rooms: rooms.len(), ..Default::default() };
    let started = Instant::now();
    let load = Load::start(&rooms, &urls, options.interval, Duration::from_secs(60), 1, None);
    let mut samples = Vec::new();
    while started.elapsed() < options.duration {
        samples.push(SoakSample {
            seconds: started.elapsed().as_secs_f64(),
            rss_kib: server.rss_kib()?,
            open_files: open_files(server.pid())?,
        });
        tokio::time::sleep(options.sample_every).await;
    }
    load.finish(&mut messages).await;
    messages.rows_left = db.message_rows().await?;
    let (rss_first, rss_last, files_first, files_last) = quarter_means(&samples);
    drop(server);
    db.drop_database().await?;
    Ok(SoakReport {
        backend: options.backend.name().into(),
        rooms: rooms.len(),
        seconds: started.elapsed().as_secs_f64(),
        messages,
        samples,
        rss_kib_first_quarter: rss_first,
        rss_kib_last_quarter: rss_last,
        open_files_first_quarter: files_first,
        open_files_last_quarter: files_last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rss_kib: u64, open_files: usize) -> SoakSample {
        SoakSample { seconds: 0.0, rss_kib, open_files }
    }

    #[test]
    fn a_flat_soak_is_clean_and_a_growing_one_is_not() {
        let flat: Vec<SoakSample> = (0..21).map(|i| sample(50_000 + (i % 3) * 100, 40)).collect();
        let (a, b, c, d) = quarter_means(&flat);
        let mut report = SoakReport {
            backend: "sqlite".into(),
            rooms: 1,
            seconds: 1.0,
            messages: FaultReport { sent: 1, delivered: 1, burned: 1, ..Default::default() },
            samples: flat,
            rss_kib_first_quarter: a,
            rss_kib_last_quarter: b,
            open_files_first_quarter: c,
            open_files_last_quarter: d,
        };
        assert!(report.problems().is_empty(), "{:?}", report.problems());
        let leaking: Vec<SoakSample> = (0..21).map(|i| sample(50_000 + i * 2_000, 40 + i as usize)).collect();
        let (a, b, c, d) = quarter_means(&leaking);
        (report.rss_kib_first_quarter, report.rss_kib_last_quarter) = (a, b);
        (report.open_files_first_quarter, report.open_files_last_quarter) = (c, d);
        assert_eq!(report.problems().len(), 2, "{:?}", report.problems());
    }
}
