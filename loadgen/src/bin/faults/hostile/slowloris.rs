//! Slowloris: connections that send part of a request head and then one header line a second,
//! never finishing it. Each must be closed once `HEADER_TIMEOUT` has passed since it opened,
//! while page loads and message journeys go on as usual. Before the attack, the same honest
//! load alone on the same server gives the baseline to compare with.

use std::path::Path;
use std::time::{Duration, Instant};

use app::crypto::RoomKeys;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::honest::{Honest, HonestReport, PageLoadReport, PageLoads};
use super::{seconds, HostileError, Sizes, Target};
use loadgen::stats::Spread;

/// Time a connection may stay open past `HEADER_TIMEOUT` before it counts as held too long: the
/// timer's own lateness, the close reaching this side, and a loaded machine's scheduling.
pub const CLOSE_MARGIN: Duration = Duration::from_secs(2);
/// Closed sooner than this share of `HEADER_TIMEOUT`, a connection was turned away by something
/// else (a connection cap, a crash) and the timeout was not what was measured.
const EARLIEST_SHARE: f64 = 0.9;
/// How often each connection sends one more header line.
const DRIBBLE_EVERY: Duration = Duration::from_secs(1);

/// The honest load alone, before any attack.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub seconds: f64,
    pub page_loads: PageLoadReport,
    pub honest: HonestReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlowlorisReport {
    pub connections: usize,
    pub header_timeout_s: f64,
    /// Each connection must be closed within this of its start.
    pub bound_s: f64,
    pub closed: usize,
    /// Still open when the harness gave up on them (`bound_s` + 3 s): the bound broken.
    pub not_closed: usize,
    pub connect_failures: usize,
    /// How long each took to open (not counted in `closed_after`).
    pub connect: Option<Spread>,
    /// From each connection being open until the server closed it.
    pub closed_after: Option<Spread>,
    pub page_loads: PageLoadReport,
    pub honest: HonestReport,
}

impl SlowlorisReport {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.not_closed > 0 || self.connect_failures > 0 || self.closed != self.connections {
            problems.push(format!(
                "slowloris: of {} connections {} were closed, {} were still open after {:.1} s, {} could not connect",
                self.connections,
                self.closed,
                self.not_closed,
                self.bound_s + 3.0,
                self.connect_failures
            ));
        }
        if let Some(spread) = &self.closed_after {
            if spread.max > self.bound_s {
                problems.push(format!(
                    "slowloris: a connection was held {:.2} s, past HEADER_TIMEOUT {:.0} s + {:.0} s",
                    spread.max,
                    self.header_timeout_s,
                    CLOSE_MARGIN.as_secs_f64()
                ));
            }
            if spread.min < self.header_timeout_s * EARLIEST_SHARE {
                problems.push(format!(
                    "slowloris: a connection was closed after {:.2} s, before HEADER_TIMEOUT: not the timeout's doing",
                    spread.min
                ));
            }
        }
        if self.page_loads.loads == 0 || self.page_loads.failures > 0 {
            problems.push(format!(
                "slowloris: {} of {} page loads failed during the attack (first: {:?})",
                self.page_loads.failures, self.page_loads.loads, self.page_loads.first_failure
            ));
        }
        problems.extend(self.honest.problems("slowloris", None));
        problems
    }
}

/// The baseline, then the attack, on one server with `HEADER_TIMEOUT` set to the size's.
pub async fn run(
    server_bin: &Path,
    sizes: &Sizes,
    rooms: &[RoomKeys],
) -> Result<(Baseline, SlowlorisReport), HostileError> {
    let target = Target::start(
        server_bin,
        &[
            ("HEADER_TIMEOUT", seconds(sizes.header_timeout)),
            // The default cap, not the load generator's raised one: it must hold the attack too.
            ("MAX_CONNECTIONS", "10000".into()),
        ],
    )
    .await?;
    let url = target.server.ws_url();

    let honest = Honest::start(rooms, &url, sizes.honest_interval).await;
    let loads = PageLoads::start(target.port());
    tokio::time::sleep(sizes.baseline).await;
    let baseline = Baseline {
        seconds: sizes.baseline.as_secs_f64(),
        page_loads: loads.finish().await,
        honest: honest.finish().await,
    };

    let honest = Honest::start(rooms, &url, sizes.honest_interval).await;
    let loads = PageLoads::start(target.port());
    let bound = sizes.header_timeout + CLOSE_MARGIN;
    let give_up = bound + Duration::from_secs(3);
    let mut held = JoinSet::new();
    for _ in 0..sizes.slowloris_connections {
        held.spawn(hold_open(target.port(), give_up));
    }
    let outcomes = held.join_all().await;
    let page_loads = loads.finish().await;
    let honest = honest.finish().await;

    let (mut connects, mut closed) = (Vec::new(), Vec::new());
    for outcome in &outcomes {
        if let Held::Closed { connect, closed: after } = outcome {
            connects.push(*connect);
            closed.push(*after);
        }
    }
    let report = SlowlorisReport {
        connections: sizes.slowloris_connections,
        header_timeout_s: sizes.header_timeout.as_secs_f64(),
        bound_s: bound.as_secs_f64(),
        closed: closed.len(),
        not_closed: outcomes.iter().filter(|o| matches!(o, Held::NotClosed)).count(),
        connect_failures: outcomes.iter().filter(|o| matches!(o, Held::ConnectFailed)).count(),
        connect: Spread::of_durations(&connects),
        closed_after: Spread::of_durations(&closed),
        page_loads,
        honest,
    };
    drop(target);
    Ok((baseline, report))
}

/// What became of one slow connection.
enum Held {
    /// It took `connect` to open; the server closed it `closed` after it was open.
    Closed {
        connect: Duration,
        closed: Duration,
    },
    /// Still open when the harness gave up.
    NotClosed,
    ConnectFailed,
}

/// Opens a connection, starts a request head and dribbles header lines until the server closes
/// it (a read sees the end, or a write fails), or until `give_up`. The time is counted from the
/// connection being open, as the server's timer is (a connect can wait a second for a lost SYN
/// to be sent again while a thousand open at once).
async fn hold_open(port: u16, give_up: Duration) -> Held {
    let connecting = Instant::now();
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else { return Held::ConnectFailed };
    let started = Instant::now();
    let closed = |started: Instant| Held::Closed { connect: started - connecting, closed: started.elapsed() };
    if stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.is_err() {
        return closed(started);
    }
    let mut dribble = tokio::time::interval_at((started + DRIBBLE_EVERY).into(), DRIBBLE_EVERY);
    let deadline = tokio::time::sleep_until((started + give_up).into());
    tokio::pin!(deadline);
    let mut buf = [0u8; 512];
    let mut line = 0u32;
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return closed(started),
                // An answer (a 408, say) before the close: the close is what is timed.
                Ok(_) => {}
            },
            _ = dribble.tick() => {
                line += 1;
                if stream.write_all(format!("X-Dribble-{line}: {line}\r\n").as_bytes()).await.is_err() {
                    return closed(started);
                }
            }
            () = &mut deadline => return Held::NotClosed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(closed_after: &[f64]) -> SlowlorisReport {
        let honest = HonestReport::one_clean_journey();
        SlowlorisReport {
            connections: closed_after.len(),
            header_timeout_s: 3.0,
            bound_s: 5.0,
            closed: closed_after.len(),
            not_closed: 0,
            connect_failures: 0,
            connect: None,
            closed_after: Spread::of(closed_after.iter().copied()),
            page_loads: PageLoadReport { loads: 1, ..Default::default() },
            honest,
        }
    }

    #[test]
    fn a_connection_held_past_the_bound_or_closed_at_once_is_a_problem() {
        assert!(report(&[3.0, 3.1, 4.9]).problems().is_empty());
        assert_eq!(report(&[3.0, 5.5]).problems().len(), 1, "held too long");
        assert_eq!(report(&[0.01, 3.0]).problems().len(), 1, "turned away, not timed out");
        let still_open = SlowlorisReport { closed: 1, not_closed: 1, ..report(&[3.0, 3.0]) };
        assert_eq!(still_open.problems().len(), 1);
    }
}
