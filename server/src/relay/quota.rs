//! How much may wait stored: the relay's total (`MAX_STORED_BYTES`), shared by every instance on
//! one database, and each client block's share (`MAX_STORED_BYTES_PER_ADDRESS`), counted by this
//! instance in memory. A refused `send` stores nothing and touches nothing already stored.
//!
//! The total is the store's own count of waiting bytes (each stored record's length), read
//! again only when this instance has used up its allowance: it takes at most [`Total::step`]
//! bytes of headroom at a time, so no row is updated by every send (which would serialise all
//! commits). The count sees only committed rows, so this instance adds what it let through and
//! has not yet seen committed (its [`Reservation`]s). Instances together can overshoot the
//! maximum by at most `instances × step` (each may spend the same headroom once), plus what
//! the other instances are committing at the moment one counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::{ClientBlock, MessageId, RoomHash};

/// How long a relay found full says so without counting again: a flood of sends against a full
/// relay costs one count a second, not one each.
const FULL_RECHECK: Duration = Duration::from_secs(1);
/// The smallest and largest allowance an instance takes at a time.
const MIN_STEP: u64 = 64 << 10;
const MAX_STEP: u64 = 16 << 20;

/// Why bytes could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The relay stores `MAX_STORED_BYTES` already.
    StorageFull,
    /// This client block's messages wait for `MAX_STORED_BYTES_PER_ADDRESS` already.
    ClientFull,
}

/// The relay's total, as this instance spends it.
#[derive(Debug)]
pub struct Total {
    max: u64,
    step: u64,
    allowance: Mutex<Allowance>,
    /// Bytes let through whose message is not yet committed (or refused): the store's count
    /// cannot see them yet.
    in_flight: AtomicU64,
    /// One count of the store at a time; the others wait for its result.
    counting: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Allowance {
    /// Bytes this instance may still store before it counts again.
    left: u64,
    /// Set when a count found no room: until then, sends are refused without counting.
    full_until: Option<Instant>,
}

impl Total {
    /// A total of `max` bytes, taken in steps of a 64th of it (64 KiB to 16 MiB).
    pub fn new(max: u64) -> Self {
        let step = (max / 64).clamp(MIN_STEP, MAX_STEP);
        Self {
            max,
            step,
            allowance: Mutex::new(Allowance::default()),
            in_flight: AtomicU64::new(0),
            counting: tokio::sync::Mutex::new(()),
        }
    }

    /// The most this instance takes between two counts (and so its share of the overshoot).
    pub fn step(&self) -> u64 {
        self.step
    }

    fn allowance(&self) -> std::sync::MutexGuard<'_, Allowance> {
        self.allowance.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `bytes` from this instance's allowance, if it has them, without counting.
    fn take(&self, bytes: u64, now: Instant) -> Option<Result<(), Refused>> {
        let mut allowance = self.allowance();
        if allowance.left >= bytes {
            allowance.left -= bytes;
            return Some(Ok(()));
        }
        allowance.full_until.filter(|until| now < *until).map(|_| Err(Refused::StorageFull))
    }

    /// Reserves `bytes` for a message about to be stored, until the returned [`Reservation`]
    /// is dropped (once its insert has answered). `stored` counts what waits in the store (over
    /// every instance); it is called only when this instance's allowance is spent.
    pub async fn reserve<F, E>(
        self: &Arc<Self>,
        bytes: u64,
        stored: impl FnOnce() -> F,
    ) -> Result<Result<Reservation, Refused>, E>
    where
        F: std::future::Future<Output = Result<u64, E>>,
    {
        let taken = match self.take(bytes, Instant::now()) {
            Some(taken) => taken,
            None => {
                let _counting = self.counting.lock().await;
                // Another send may have counted while this one waited.
                match self.take(bytes, Instant::now()) {
                    Some(taken) => taken,
                    None => {
                        // Read before the count: a message that commits in between is counted
                        // twice (refusing a little early), never missed.
                        let in_flight = self.in_flight.load(Ordering::SeqCst);
                        let headroom = self.max.saturating_sub(stored().await?.saturating_add(in_flight));
                        self.refill(headroom, bytes)
                    }
                }
            }
        };
        Ok(taken.map(|()| {
            self.in_flight.fetch_add(bytes, Ordering::SeqCst);
            Reservation { total: self.clone(), bytes }
        }))
    }

    /// A new allowance from `headroom`, and `bytes` taken from it if they fit.
    fn refill(&self, headroom: u64, bytes: u64) -> Result<(), Refused> {
        let mut allowance = self.allowance();
        allowance.left = headroom.min(self.step.max(bytes));
        if allowance.left >= bytes {
            allowance.left -= bytes;
            allowance.full_until = None;
            Ok(())
        } else {
            allowance.full_until = Some(Instant::now() + FULL_RECHECK);
            Err(Refused::StorageFull)
        }
    }
}

/// Bytes let through for one message, counted as in flight until dropped: by then its insert
/// has committed (the store's count sees it) or stored nothing.
#[derive(Debug)]
pub struct Reservation {
    total: Arc<Total>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.total.in_flight.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// Bytes waiting per client block, charged when a message is stored and freed when it is deleted
/// (burned, expired or purged) or, if this instance never hears of that, when it expires.
/// Held in memory only; a block is forgotten when nothing of it waits.
#[derive(Debug)]
pub struct ClientCharges {
    max: u64,
    state: Mutex<Charges>,
}

#[derive(Debug, Default)]
struct Charges {
    waiting: HashMap<ClientBlock, u64>,
    messages: HashMap<(RoomHash, MessageId), Charge>,
}

#[derive(Debug, Clone, Copy)]
struct Charge {
    client: ClientBlock,
    bytes: u64,
    expires: Instant,
}

impl Default for ClientCharges {
    /// No share: nothing is ever refused (tests of other parts).
    fn default() -> Self {
        Self::new(u64::MAX)
    }
}

impl ClientCharges {
    pub fn new(max_per_client: u64) -> Self {
        Self { max: max_per_client, state: Mutex::new(Charges::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Charges> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Charges `client` for a message about to be stored, unless that would take it past its
    /// share: `true` if charged now, `false` if this message was charged before (a resend).
    /// [`ClientCharges::refund`] undoes a new charge if the message is not stored after all.
    pub fn charge(
        &self,
        client: ClientBlock,
        room: RoomHash,
        id: MessageId,
        bytes: u64,
        expires: Instant,
    ) -> Result<bool, Refused> {
        let mut state = self.state();
        if state.messages.contains_key(&(room, id)) {
            return Ok(false);
        }
        let waiting = state.waiting.get(&client).copied().unwrap_or(0);
        if waiting.saturating_add(bytes) > self.max {
            return Err(Refused::ClientFull);
        }
        state.waiting.insert(client, waiting + bytes);
        state.messages.insert((room, id), Charge { client, bytes, expires });
        Ok(true)
    }

    /// The message was not stored (refused, failed, or a duplicate): its charge goes.
    pub fn refund(&self, room: &RoomHash, id: &MessageId) {
        self.freed(room, id);
    }

    /// The message was deleted: its sender's block is charged for it no more.
    pub fn freed(&self, room: &RoomHash, id: &MessageId) {
        let mut state = self.state();
        if let Some(charge) = state.messages.remove(&(*room, *id)) {
            uncharge(&mut state.waiting, charge);
        }
    }

    /// Frees what expired by `now`, deletion heard or not.
    pub fn expire(&self, now: Instant) {
        let mut state = self.state();
        let Charges { waiting, messages } = &mut *state;
        messages.retain(|_, charge| {
            let keep = charge.expires > now;
            if !keep {
                uncharge(waiting, *charge);
            }
            keep
        });
    }

    /// Bytes charged to `client` (for tests).
    pub fn waiting(&self, client: ClientBlock) -> u64 {
        self.state().waiting.get(&client).copied().unwrap_or(0)
    }

    /// Client blocks with something charged (a count, for tests).
    pub fn clients(&self) -> usize {
        self.state().waiting.len()
    }
}

fn uncharge(waiting: &mut HashMap<ClientBlock, u64>, charge: Charge) {
    if let Some(left) = waiting.get_mut(&charge.client) {
        *left = left.saturating_sub(charge.bytes);
        if *left == 0 {
            waiting.remove(&charge.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::IpAddr;

    use super::*;

    fn client(n: u8) -> ClientBlock {
        ClientBlock::of(IpAddr::from([203, 0, 113, n]), 64)
    }

    async fn reserve(total: &Arc<Total>, bytes: u64, stored: u64, counts: &mut u32) -> Result<(), Refused> {
        let result: Result<_, Infallible> = total
            .reserve(bytes, || {
                *counts += 1;
                async move { Ok(stored) }
            })
            .await;
        result.unwrap().map(drop)
    }

    #[tokio::test]
    async fn the_total_is_counted_once_a_step_and_refuses_past_the_maximum() {
        let total = Arc::new(Total::new(64 << 20)); // steps of 1 MiB
        assert_eq!(total.step(), 1 << 20);
        let mut counts = 0;
        for _ in 0..64 {
            assert_eq!(reserve(&total, 16 << 10, 0, &mut counts).await, Ok(()));
        }
        assert_eq!(counts, 1, "64 sends of 16 KiB fit one step");
        assert_eq!(reserve(&total, 16 << 10, 0, &mut counts).await, Ok(()));
        assert_eq!(counts, 2);
        // Full: refused, and refused again without counting until the recheck is due.
        let fresh = Arc::new(Total::new(64 << 20));
        let mut counts = 0;
        assert_eq!(reserve(&fresh, 100, 64 << 20, &mut counts).await, Err(Refused::StorageFull));
        assert_eq!(reserve(&fresh, 100, 0, &mut counts).await, Err(Refused::StorageFull));
        assert_eq!(counts, 1);
    }

    #[tokio::test]
    async fn the_last_bytes_of_headroom_are_given_out_and_no_more() {
        let total = Arc::new(Total::new(1 << 20));
        let mut counts = 0;
        // 1 KiB of headroom left: a 1 KiB message fits, a second does not.
        assert_eq!(reserve(&total, 1024, (1 << 20) - 1024, &mut counts).await, Ok(()));
        assert_eq!(reserve(&total, 1024, 1 << 20, &mut counts).await, Err(Refused::StorageFull));
    }

    #[tokio::test]
    async fn bytes_let_through_and_not_yet_committed_count_against_the_next_allowance() {
        // One step of 64 KiB is the whole total: every recount decides.
        let total = Arc::new(Total::new(64 << 10));
        let count = |stored: u64| move || async move { Ok::<_, Infallible>(stored) };
        // 60 KiB let through, none committed yet (the count still says 0).
        let mut in_flight = Vec::new();
        for _ in 0..15 {
            in_flight.push(total.reserve(4 << 10, count(0)).await.unwrap().unwrap());
        }
        // The allowance's last 4 KiB go; the recount after them sees nothing stored, but all
        // 64 KiB in flight.
        let first = total.reserve(4 << 10, count(0)).await.unwrap();
        assert!(first.is_ok());
        let refused = total.reserve(4 << 10, count(0)).await.unwrap();
        assert_eq!(refused.err(), Some(Refused::StorageFull), "in-flight bytes were counted twice or not at all");
        // Once they commit, the store's count carries them and the reservations let go.
        drop(in_flight);
        drop(first);
        assert_eq!(total.in_flight.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_client_is_charged_until_its_messages_go() {
        let charges = ClientCharges::new(100);
        let (room, later) = (RoomHash([1; 32]), Instant::now() + Duration::from_secs(60));
        let (a, b) = (MessageId([1; 16]), MessageId([2; 16]));
        assert_eq!(charges.charge(client(1), room, a, 60, later), Ok(true));
        assert_eq!(charges.charge(client(1), room, a, 60, later), Ok(false), "a resend is charged once");
        assert_eq!(charges.charge(client(1), room, b, 60, later), Err(Refused::ClientFull));
        assert_eq!(charges.charge(client(2), room, b, 60, later), Ok(true), "another client is not affected");
        charges.freed(&room, &a);
        assert_eq!(charges.waiting(client(1)), 0);
        assert_eq!(charges.clients(), 1, "a block with nothing waiting is forgotten");
        charges.refund(&room, &b);
        assert_eq!(charges.clients(), 0);
    }

    #[test]
    fn charges_go_at_their_expiry_even_unheard() {
        let charges = ClientCharges::new(100);
        let now = Instant::now();
        let room = RoomHash([1; 32]);
        charges.charge(client(1), room, MessageId([1; 16]), 50, now + Duration::from_secs(1)).unwrap();
        charges.charge(client(1), room, MessageId([2; 16]), 30, now + Duration::from_secs(9)).unwrap();
        charges.expire(now + Duration::from_secs(2));
        assert_eq!(charges.waiting(client(1)), 30);
        charges.expire(now + Duration::from_secs(10));
        assert_eq!(charges.clients(), 0);
    }
}
