//! Per-connection rate limiting, and per-address limits on connections open and on new
//! connections per second. Addresses live only in this in-memory map, only while they have a
//! connection open or opened one in the last few seconds, and are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ClientBlock;

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            last: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    /// Whether the bucket would be full at `now` (nothing taken recently).
    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_second >= self.burst
    }

    fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A budget of bytes per second (`TRANSFER_BYTES_PER_SECOND`), with a burst of one second's
/// worth. Unlike the frame bucket it refuses nothing: it says how long to wait before the bytes
/// asked for may move, so a transfer past it slows to the budget.
#[derive(Debug)]
pub struct ByteBudget {
    /// May go below zero: bytes taken ahead of the refill, which the next wait pays for.
    tokens: f64,
    per_second: f64,
    last: Instant,
}

impl ByteBudget {
    pub fn new(per_second: u64) -> Self {
        #[allow(clippy::cast_precision_loss)] // settings far below 2^52
        let per_second = per_second as f64;
        Self { tokens: per_second, per_second, last: Instant::now() }
    }

    /// Takes `bytes`; returns how long to wait before they may move (zero within the budget).
    pub fn take(&mut self, bytes: usize) -> Duration {
        self.take_at(bytes, Instant::now())
    }

    fn take_at(&mut self, bytes: usize, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        #[allow(clippy::cast_precision_loss)] // a frame's length
        let bytes = bytes as f64;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second) - bytes;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }
}

/// Per client address: connections open, and a token bucket of new connections, so that an
/// address that reconnects as fast as it can is refused before the WebSocket handshake.
/// Addresses are held in memory only: while they have a connection open, and after their last
/// one only until their bucket has refilled (`burst / per_second` seconds); never logged.
#[derive(Debug, Clone)]
pub struct AddressCounter {
    state: Arc<Mutex<Addresses>>,
    max_open: u32,
    connects_per_second: u32,
    connect_burst: u32,
}

#[derive(Debug)]
struct Addresses {
    by_address: HashMap<ClientBlock, Address>,
    last_sweep: Instant,
}

#[derive(Debug)]
struct Address {
    open: u32,
    connects: TokenBucket,
}

/// Why a connection from an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRefusal {
    /// It holds `max_open` connections already.
    TooMany,
    /// It opens connections faster than its bucket allows.
    TooFast,
}

/// Holds one connection's place; gives it back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    counter: AddressCounter,
    address: ClientBlock,
}

impl AddressCounter {
    pub fn new(max_open: u32, connects_per_second: u32, connect_burst: u32) -> Self {
        let state = Addresses { by_address: HashMap::new(), last_sweep: Instant::now() };
        Self { state: Arc::new(Mutex::new(state)), max_open, connects_per_second, connect_burst }
    }

    /// A slot for a new connection from `address`, unless it holds `max_open` connections or
    /// has used up its connects.
    pub fn try_acquire(&self, address: ClientBlock) -> Result<AddressSlot, AddressRefusal> {
        self.try_acquire_at(address, Instant::now())
    }

    fn try_acquire_at(&self, address: ClientBlock, now: Instant) -> Result<AddressSlot, AddressRefusal> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget, about once a second, the addresses with nothing open whose bucket is full again.
        if now.saturating_duration_since(state.last_sweep).as_secs() >= 1 {
            state.last_sweep = now;
            state.by_address.retain(|_, a| a.open > 0 || !a.connects.is_full_at(now));
        }
        let (per_second, burst) = (self.connects_per_second, self.connect_burst);
        let entry = state
            .by_address
            .entry(address)
            .or_insert_with(|| Address { open: 0, connects: TokenBucket::new(per_second, burst) });
        if entry.open >= self.max_open {
            return Err(AddressRefusal::TooMany);
        }
        if !entry.connects.try_take_at(now) {
            return Err(AddressRefusal::TooFast);
        }
        entry.open += 1;
        Ok(AddressSlot { counter: self.clone(), address })
    }

    /// Addresses held in memory (a count, for tests).
    pub fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).by_address.len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut state = self.counter.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(address) = state.by_address.get_mut(&self.address) {
            address.open = address.open.saturating_sub(1);
            if address.open == 0 && address.connects.is_full_at(now) {
                state.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn ip(last: u8) -> ClientBlock {
        ClientBlock::of(IpAddr::from([127, 0, 0, last]), 64)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket { tokens: 3.0, burst: 3.0, per_second: 2.0, last: start };
        assert!((0..3).all(|_| bucket.try_take_at(start)));
        assert!(!bucket.try_take_at(start));
        assert!(bucket.try_take_at(start + Duration::from_millis(500)));
        assert!(!bucket.try_take_at(start + Duration::from_millis(600)));
        // Idle time refills up to the burst, no more.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take_at(later)));
        assert!(!bucket.try_take_at(later));
    }

    #[test]
    fn a_byte_budget_delays_past_its_second_of_burst_and_refuses_nothing() {
        let start = Instant::now();
        let mut budget = ByteBudget { tokens: 1000.0, per_second: 1000.0, last: start };
        assert_eq!(budget.take_at(600, start), Duration::ZERO);
        assert_eq!(budget.take_at(400, start), Duration::ZERO);
        // Past the burst: the wait is what the budget needs to refill the debt.
        assert_eq!(budget.take_at(500, start), Duration::from_millis(500));
        assert_eq!(budget.take_at(500, start), Duration::from_millis(1000));
        // Paid back over time; idle time refills to one second's worth, no more.
        assert_eq!(budget.take_at(0, start + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(budget.take_at(1000, start + Duration::from_secs(60)), Duration::ZERO);
        assert!(budget.take_at(1, start + Duration::from_secs(60)) > Duration::ZERO);
    }

    #[test]
    fn addresses_are_counted_and_forgotten_when_their_last_connection_ends() {
        let counter = AddressCounter::new(2, 100, 100);
        let (addr, other) = (ip(2), ip(3));
        let start = Instant::now();
        let a = counter.try_acquire_at(addr, start).unwrap();
        let b = counter.try_acquire_at(addr, start).unwrap();
        assert_eq!(counter.try_acquire_at(addr, start).unwrap_err(), AddressRefusal::TooMany);
        assert!(counter.try_acquire_at(other, start).is_ok());
        drop(a);
        let c = counter.try_acquire_at(addr, start).unwrap();
        drop((b, c));
        // Once its bucket has refilled (a second at most here), nothing of either is kept.
        let later = start + Duration::from_secs(2);
        drop(counter.try_acquire_at(ip(4), later).unwrap());
        assert_eq!(counter.tracked(), 1, "only the address just seen");
    }

    #[test]
    fn an_address_that_reconnects_too_fast_is_refused_until_its_bucket_refills() {
        let counter = AddressCounter::new(100, 2, 3);
        let (addr, other) = (ip(2), ip(3));
        let start = Instant::now();
        for _ in 0..3 {
            drop(counter.try_acquire_at(addr, start).unwrap());
        }
        assert_eq!(counter.try_acquire_at(addr, start).unwrap_err(), AddressRefusal::TooFast);
        assert!(counter.try_acquire_at(other, start).is_ok(), "another address is not affected");
        assert!(counter.try_acquire_at(addr, start + Duration::from_millis(500)).is_ok());
        // Kept while its bucket refills, forgotten by the sweep once it has.
        assert_eq!(counter.tracked(), 2);
        let later = start + Duration::from_secs(10);
        drop(counter.try_acquire_at(ip(4), later).unwrap());
        assert_eq!(counter.tracked(), 1, "only the address just seen is kept");
    }
}
