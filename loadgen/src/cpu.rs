//! Where the processor time of a run goes: the servers, PostgreSQL and the load generator,
//! read from `/proc/<pid>/stat` before and after; and how long the machine waited on storage and
//! for its processors.
//! On a machine whose cores are all busy, the time one journey costs in total bounds how many
//! journeys per second the machine can make.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Linux reports process times in USER_HZ, which is 100 on every architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Processor seconds used so far, split by who used them, and the machine's I/O stall time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTime {
    /// The server processes (with SQLite, the database's work too: it runs inside them).
    pub servers_s: f64,
    /// Every PostgreSQL process, with what its exited backends used (the postmaster reaps
    /// them, so their time is in its children's time).
    pub postgres_s: f64,
    /// This process: the clients, their crypto, and the ceiling's queries.
    pub loadgen_s: f64,
    /// Every process named `nats-server` (the NATS bus; 0 without it).
    #[serde(default)]
    pub nats_s: f64,
    /// Not processor time: how long at least one task on the machine waited for storage
    /// (`/proc/pressure/io`, "some"). Commits wait on it; a run that stalls on the disk shows
    /// it here.
    #[serde(default)]
    pub io_stalled_s: f64,
    /// Not processor time: how long at least one runnable task waited for a processor
    /// (`/proc/pressure/cpu`, "some"). A message whose server, database or client waits for a
    /// core is late by that wait.
    #[serde(default)]
    pub cpu_waited_s: f64,
    /// Not processor time: the wall clock (seconds since the Unix epoch in a reading, the
    /// interval in a difference), against which the two waits above are shares.
    #[serde(default)]
    pub wall_s: f64,
}

impl CpuTime {
    /// The time used now by `servers`, PostgreSQL and this process.
    pub fn now(servers: &[u32]) -> Self {
        let servers_s = servers.iter().copied().map(process_seconds).sum();
        Self {
            servers_s,
            postgres_s: named_seconds("postgres"),
            loadgen_s: process_seconds(std::process::id()),
            nats_s: named_seconds("nats-server"),
            io_stalled_s: stalled_seconds("/proc/pressure/io"),
            cpu_waited_s: stalled_seconds("/proc/pressure/cpu"),
            wall_s: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    /// The time used between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            servers_s: self.servers_s - before.servers_s,
            postgres_s: self.postgres_s - before.postgres_s,
            loadgen_s: self.loadgen_s - before.loadgen_s,
            nats_s: self.nats_s - before.nats_s,
            io_stalled_s: self.io_stalled_s - before.io_stalled_s,
            cpu_waited_s: self.cpu_waited_s - before.cpu_waited_s,
            wall_s: self.wall_s - before.wall_s,
        }
    }

    /// The share of the interval during which some task waited for storage, and for a
    /// processor: `None` for a reading from before the interval was recorded.
    pub fn waits(&self) -> Option<(f64, f64)> {
        (self.wall_s > 0.0).then(|| (self.io_stalled_s / self.wall_s, self.cpu_waited_s / self.wall_s))
    }

    pub fn total_s(&self) -> f64 {
        self.servers_s + self.postgres_s + self.loadgen_s + self.nats_s
    }

    /// Milliseconds of the NATS server per unit of work.
    pub fn nats_per(&self, units: u64) -> Option<f64> {
        (units > 0).then(|| self.nats_s * 1000.0 / units as f64)
    }

    /// Milliseconds of each part (and the total) per unit of work: (servers, postgres, loadgen, total).
    pub fn per(&self, units: u64) -> Option<(f64, f64, f64, f64)> {
        (units > 0).then(|| {
            let ms = |s: f64| s * 1000.0 / units as f64;
            (ms(self.servers_s), ms(self.postgres_s), ms(self.loadgen_s), ms(self.total_s()))
        })
    }
}

/// User and system time of `pid` in seconds; 0 if the process is gone.
fn process_seconds(pid: u32) -> f64 {
    stat_fields(&Path::new("/proc").join(pid.to_string()).join("stat")).map_or(0.0, |(_, times)| times[0] + times[1])
}

/// The machine's total stall time so far for one resource (the "some" line of its
/// `/proc/pressure` file, in µs); 0 where the kernel does not report pressure.
fn stalled_seconds(path: &str) -> f64 {
    std::fs::read_to_string(path).ok().and_then(|text| parse_pressure(&text)).unwrap_or(0.0)
}

/// `some avg10=… avg60=… avg300=… total=<µs>` → seconds.
fn parse_pressure(text: &str) -> Option<f64> {
    let some = text.lines().find(|line| line.starts_with("some "))?;
    let total = some.split_whitespace().find_map(|field| field.strip_prefix("total="))?;
    Some(total.parse::<u64>().ok()? as f64 / 1e6)
}

/// Every process named `name` (`postgres`, `nats-server`), children included.
fn named_seconds(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|entry| stat_fields(&entry.path().join("stat")))
        .filter(|(found, _)| found == name)
        .map(|(_, times)| times.iter().sum::<f64>())
        .sum()
}

/// A process's name and its utime, stime, cutime and cstime in seconds, from its `stat` file.
fn stat_fields(path: &Path) -> Option<(String, [f64; 4])> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// `pid (name) state ppid …`: the name may hold spaces and parentheses, so fields are counted
/// from the last `)`. utime is the 14th field of the line, the 12th after the name.
fn parse_stat(line: &str) -> Option<(String, [f64; 4])> {
    let (head, rest) = line.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).map(|t| t as f64 / TICKS_PER_SECOND);
    Some((name, [tick(11)?, tick(12)?, tick(13)?, tick(14)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_from_after_the_name() {
        let line = "4242 (postgres: a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 7 3 20 0 1 0 99 1000 10";
        let (name, times) = parse_stat(line).unwrap();
        assert_eq!(name, "postgres: a (b) c");
        assert_eq!(times, [2.5, 0.5, 0.07, 0.03]);
        assert_eq!(parse_stat("4242 (short) S 1"), None);
    }

    #[test]
    fn io_pressure_is_read_from_the_some_line() {
        let text = "some avg10=1.23 avg60=11.01 avg300=11.21 total=215389179\n\
                    full avg10=1.03 avg60=9.96 avg300=9.33 total=174665705\n";
        assert_eq!(parse_pressure(text), Some(215.389179));
        assert_eq!(parse_pressure("full avg10=0 total=5"), None);
    }

    #[test]
    fn waits_are_shares_of_the_interval_and_unknown_without_one() {
        let before = CpuTime { io_stalled_s: 10.0, cpu_waited_s: 20.0, wall_s: 1000.0, ..CpuTime::default() };
        let after = CpuTime { io_stalled_s: 11.0, cpu_waited_s: 22.0, wall_s: 1004.0, ..CpuTime::default() };
        assert_eq!(after.since(&before).waits(), Some((0.25, 0.5)));
        // A run recorded before readings carried the wall clock.
        assert_eq!(CpuTime { io_stalled_s: 1.0, ..CpuTime::default() }.waits(), None);
    }

    /// Spins until the reading shows 0.2 s of this process's time (however busy the machine,
    /// which may leave it a fraction of a core): a reading that never grows fails at the deadline.
    #[test]
    fn this_process_is_charged_for_the_work_it_does() {
        let before = CpuTime::now(&[]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        loop {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let used = CpuTime::now(&[]).since(&before);
            if used.loadgen_s >= 0.2 {
                assert_eq!(used.servers_s, 0.0);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "a minute of spinning was charged {used:?}");
        }
    }
}
