//! Per-connection rate limiting and per-address connection counting. Addresses live only in
//! this in-memory map, only while they have a connection open, and are never logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

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

/// Open connections per client address.
#[derive(Debug, Default, Clone)]
pub struct AddressCounter {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Holds one connection's place; gives it back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    counter: AddressCounter,
    address: IpAddr,
}

impl AddressCounter {
    /// A slot for `address` if it holds fewer than `max` connections.
    pub fn try_acquire(&self, address: IpAddr, max: u32) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counter: self.clone(), address })
    }

    /// Addresses with a connection open (a count, for tests).
    pub fn tracked(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address); // forget the address as soon as it has no connection
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
    fn addresses_are_counted_and_forgotten_when_their_last_connection_ends() {
        let counter = AddressCounter::default();
        let addr: IpAddr = [127, 0, 0, 2].into();
        let a = counter.try_acquire(addr, 2).unwrap();
        let b = counter.try_acquire(addr, 2).unwrap();
        assert!(counter.try_acquire(addr, 2).is_none());
        assert!(counter.try_acquire([127, 0, 0, 3].into(), 2).is_some());
        drop(a);
        let c = counter.try_acquire(addr, 2).unwrap();
        drop((b, c));
        assert_eq!(counter.tracked(), 0);
    }
}
