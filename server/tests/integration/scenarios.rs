//! One table of message-lifecycle scenarios, run against the pure reference
//! (`server::domain::lifecycle::Ledger`), the SQLite store, the PostgreSQL store, and the
//! messages an instance holds in memory (the held cache in front of the reference, as the relay
//! puts it in front of the store): every step's outcome must be the reference's.
//!
//! The burn rule is stated once, in Rust; the stores' SQL enforces it atomically and is held to
//! it here. This module registers its own tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use server::config::Database;
use server::domain::lifecycle::Ledger;
use server::domain::{
    now_ms, FetchRefusal, Inserted, InstanceId, MessageId, NewMessage, Participant, RoomHash, StoredMessage, Viewed,
    Waiting,
};
use server::relay::held::Held;
use server::store::Store;

use super::helpers::{Backend, TestDatabase};

/// A lifetime long enough never to end during a test.
const LONG: Duration = Duration::from_secs(3600);
/// The backlog limit, unless a step says otherwise.
const BACKLOG: u32 = 10;

/// One step of a scenario. Participants and messages are small numbers.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Participant `n` joins the room.
    Join(u8),
    /// Participant `n` leaves for good.
    Leave(u8),
    /// Message `id` from `from`, with body `body`, lifetime `ttl` and backlog limit `max`.
    Send { id: u8, from: u8, body: u8, ttl: Duration, max: u32 },
    /// Participant `by` fetches message `id`.
    Fetch { id: u8, by: u8 },
    /// Participant `by` confirms it viewed message `id`.
    View { id: u8, by: u8 },
    /// What waits for participant `n`.
    Pending(u8),
    /// The expiry sweep.
    Expire,
    /// Whether message `id` is still stored.
    Exists(u8),
}

fn send(id: u8, from: u8) -> Step {
    Step::Send { id, from, body: id, ttl: LONG, max: BACKLOG }
}

/// What a step answered, in a form every subject gives alike.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    /// `Inserted::New` with its recipients (the expiry time is the clock's, not the rule's).
    Stored(BTreeSet<u8>),
    Exists(Vec<u8>),
    BacklogFull,
    Body(Vec<u8>),
    Refused(FetchRefusal),
    Unknown,
    Viewed(Viewed),
    Ids(BTreeSet<u8>),
    /// Whether a row is stored.
    Present(bool),
}

const ROOM: RoomHash = RoomHash([0x5c; 32]);

fn who(n: u8) -> Participant {
    Participant([n; 32])
}

fn id(n: u8) -> MessageId {
    MessageId([n; 16])
}

fn ids(ids: impl IntoIterator<Item = MessageId>) -> Outcome {
    Outcome::Ids(ids.into_iter().map(|id| id.0[0]).collect())
}

fn inserted(inserted: Inserted) -> Outcome {
    match inserted {
        Inserted::New { recipients, .. } => Outcome::Stored(recipients.iter().map(|p| p.0[0]).collect()),
        Inserted::Exists(body) => Outcome::Exists(body),
        Inserted::RoomBacklogFull => Outcome::BacklogFull,
    }
}

fn fetched(waiting: Option<Waiting>, by: &Participant) -> Outcome {
    match waiting {
        None => Outcome::Unknown,
        Some(waiting) => match waiting.may_be_fetched_by(by) {
            Ok(()) => Outcome::Body(waiting.body),
            Err(refusal) => Outcome::Refused(refusal),
        },
    }
}

/// What a scenario runs against.
enum Subject {
    Reference(Ledger),
    /// A real store, each participant's connection number, and (SQLite) the store's lock.
    Store(Store, BTreeMap<u8, u64>, Option<std::fs::File>),
    /// The held cache in front of the reference: a fetch is answered from memory when the message
    /// is held, and from the reference when not; writes release what the relay releases.
    Held(Ledger, Held),
}

impl Subject {
    async fn apply(&mut self, step: Step) -> Outcome {
        let now = now_ms();
        match (self, step) {
            (Self::Reference(ledger) | Self::Held(ledger, _), Step::Join(n)) => {
                ledger.join(&ROOM, &who(n));
                Outcome::Done
            }
            (Self::Store(store, connections, _), Step::Join(n)) => {
                let connection = connections.len() as u64 + 1;
                connections.insert(n, connection);
                store.join(&ROOM, &who(n), connection, 100).await.unwrap().expect("admitted");
                Outcome::Done
            }
            (Self::Reference(ledger), Step::Leave(n)) => ids(ledger.leave(&ROOM, &who(n))),
            (Self::Held(ledger, held), Step::Leave(n)) => {
                let burned = ledger.leave(&ROOM, &who(n));
                held.release_recipient(&who(n));
                for id in &burned {
                    held.release(id);
                }
                ids(burned)
            }
            (Self::Store(store, connections, _), Step::Leave(n)) => {
                let connection = connections[&n];
                let generation = store.disconnect(&ROOM, &who(n), connection).await.unwrap().expect("connected");
                ids(store.leave(&ROOM, &who(n), generation).await.unwrap().expect("left"))
            }
            (subject, Step::Send { id: n, from, body, ttl, max }) => {
                let (id, sender, body) = (id(n), who(from), vec![body; 8]);
                let message =
                    NewMessage { room: &ROOM, id: &id, body: &body, ttl, sender: &sender, max_pending: max, chunks: 0 };
                match subject {
                    Self::Reference(ledger) => inserted(ledger.insert(&message, now)),
                    Self::Held(ledger, held) => {
                        let answer = ledger.insert(&message, now);
                        if let Inserted::New { recipients, expires_at } = &answer {
                            let kept =
                                StoredMessage { body, sender, recipients: recipients.clone(), expires_at: *expires_at };
                            if held.reserve(id) {
                                held.fill(id, kept, usize::MAX);
                            }
                        }
                        inserted(answer)
                    }
                    Self::Store(store, ..) => inserted(store.insert(message).await.unwrap()),
                }
            }
            (Self::Reference(ledger), Step::Fetch { id: n, by }) => {
                fetched(ledger.get(&ROOM, &id(n), &who(by), now), &who(by))
            }
            (Self::Held(ledger, held), Step::Fetch { id: n, by }) => {
                let waiting = held.get(&id(n), &who(by), now).0.or_else(|| ledger.get(&ROOM, &id(n), &who(by), now));
                fetched(waiting, &who(by))
            }
            (Self::Store(store, ..), Step::Fetch { id: n, by }) => {
                fetched(store.get(&ROOM, &id(n), &who(by)).await.unwrap(), &who(by))
            }
            (Self::Reference(ledger), Step::View { id: n, by }) => {
                Outcome::Viewed(ledger.viewed(&ROOM, &id(n), &who(by)))
            }
            (Self::Held(ledger, held), Step::View { id: n, by }) => {
                let viewed = ledger.viewed(&ROOM, &id(n), &who(by));
                if matches!(viewed, Viewed::Deleted | Viewed::Gone) {
                    held.release(&id(n));
                }
                Outcome::Viewed(viewed)
            }
            (Self::Store(store, ..), Step::View { id: n, by }) => {
                Outcome::Viewed(store.viewed(&ROOM, &id(n), &who(by)).await.unwrap())
            }
            (Self::Reference(ledger) | Self::Held(ledger, _), Step::Pending(n)) => {
                ids(ledger.pending_for(&ROOM, &who(n), now))
            }
            (Self::Store(store, ..), Step::Pending(n)) => {
                ids(store.pending_for(&ROOM, &who(n)).await.unwrap().into_iter().map(|p| p.id))
            }
            (Self::Reference(ledger), Step::Expire) => ids(ledger.expire(now).into_iter().map(|(_, id)| id)),
            (Self::Held(ledger, held), Step::Expire) => {
                let expired: Vec<MessageId> = ledger.expire(now).into_iter().map(|(_, id)| id).collect();
                for id in &expired {
                    held.release(id);
                }
                ids(expired)
            }
            (Self::Store(store, ..), Step::Expire) => {
                ids(store.delete_expired().await.unwrap().into_iter().map(|(_, id)| id))
            }
            (Self::Reference(ledger) | Self::Held(ledger, _), Step::Exists(n)) => {
                Outcome::Present(ledger.exists(&ROOM, &id(n)))
            }
            (Self::Store(store, ..), Step::Exists(n)) => Outcome::Present(store.exists(&ROOM, &id(n)).await.unwrap()),
        }
    }
}

/// Every scenario: a name and its steps. (A table: one scenario a row, as rustfmt would not.)
#[rustfmt::skip]
fn scenarios() -> Vec<(&'static str, Vec<Step>)> {
    use Step::*;
    let expired = Send { id: 1, from: 1, body: 1, ttl: Duration::ZERO, max: BACKLOG };
    let limited = |id, ttl| Send { id, from: 1, body: id, ttl, max: 2 };
    let once = |body| Send { id: 1, from: 1, body, ttl: LONG, max: 1 };
    vec![
        ("a two-person room: send, fetch, view, burn", vec![
            Join(1), Join(2), send(1, 1), Pending(2), Pending(1), Fetch { id: 1, by: 2 }, View { id: 1, by: 2 },
            Exists(1), Fetch { id: 1, by: 2 }, View { id: 1, by: 2 }, Pending(2),
        ]),
        ("three people: it burns at the last recipient's view", vec![
            Join(1), Join(2), Join(3), send(1, 1), View { id: 1, by: 2 }, View { id: 1, by: 2 }, Pending(2),
            Pending(3), Fetch { id: 1, by: 2 }, View { id: 1, by: 3 }, Exists(1),
        ]),
        ("the sender and a latecomer may not fetch", vec![
            Join(1), Join(2), send(1, 1), Join(3), Fetch { id: 1, by: 1 }, Fetch { id: 1, by: 3 }, Pending(3),
            View { id: 1, by: 3 }, Exists(1), Fetch { id: 1, by: 2 },
        ]),
        ("a message sent to nobody is open to the first other participant", vec![
            Join(1), send(1, 1), Pending(1), Fetch { id: 1, by: 1 }, Join(2), Pending(2), Fetch { id: 1, by: 2 },
            View { id: 1, by: 2 }, Exists(1),
        ]),
        ("a leave burns what the others have viewed", vec![
            Join(1), Join(2), Join(3), send(1, 1), send(2, 1), View { id: 1, by: 2 }, Leave(3), Exists(1),
            Exists(2), Pending(2),
        ]),
        ("a message whose recipients all left is open", vec![
            Join(1), Join(2), send(1, 1), Leave(2), Exists(1), Join(3), Pending(3), Pending(1),
            Fetch { id: 1, by: 3 }, View { id: 1, by: 3 }, Exists(1),
        ]),
        ("a viewer leaving changes nothing", vec![
            Join(1), Join(2), Join(3), send(1, 1), View { id: 1, by: 2 }, Leave(2), Exists(1), Pending(3),
            View { id: 1, by: 3 }, Exists(1),
        ]),
        ("unviewed messages expire", vec![
            Join(1), Join(2), expired, send(2, 1), Pending(2), Fetch { id: 1, by: 2 }, Expire, Exists(1), Exists(2),
            View { id: 1, by: 2 }, Expire,
        ]),
        ("the backlog limit refuses, and expired messages do not count", vec![
            Join(1), Join(2), limited(1, LONG), limited(2, Duration::ZERO), limited(3, LONG), limited(4, LONG),
            Exists(4), View { id: 1, by: 2 }, limited(4, LONG), Pending(2),
        ]),
        ("a resend is recognised, even in a full room, and a changed body is not stored", vec![
            Join(1), Join(2), once(1), once(1), once(9), Fetch { id: 1, by: 2 }, Pending(2),
        ]),
        ("an id is free again once its message burned", vec![
            Join(1), Join(2), send(1, 1), View { id: 1, by: 2 }, send(1, 2), Pending(1), Fetch { id: 1, by: 1 },
        ]),
    ]
}

async fn run(subject: &mut Subject, steps: &[Step]) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        outcomes.push(subject.apply(*step).await);
    }
    outcomes
}

/// Runs every scenario on the reference and on `make()`'s subject (fresh for each scenario),
/// and asserts equal outcomes step by step.
async fn agrees_with_the_reference<F, Fut>(what: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Subject, Option<TestDatabase>)>,
{
    for (name, steps) in scenarios() {
        let expected = run(&mut Subject::Reference(Ledger::default()), &steps).await;
        let (mut subject, db) = make().await;
        let got = run(&mut subject, &steps).await;
        for (i, (step, (want, got))) in steps.iter().zip(expected.iter().zip(&got)).enumerate() {
            assert_eq!(got, want, "{what}, scenario {name:?}, step {i} ({step:?})");
        }
        if let Subject::Store(store, _, lock) = subject {
            store.close().await;
            drop(lock);
        }
        drop(db);
    }
}

async fn store_on(backend: Backend) -> (Subject, Option<TestDatabase>) {
    let db = TestDatabase::new(backend);
    let database = match backend {
        Backend::Sqlite => Database::Sqlite { path: db.dir.path().join("test.db") },
        Backend::Postgres => Database::postgres(db.url.parse().expect("a PostgreSQL URL")),
    };
    let (store, lock) = Store::connect(&database, InstanceId::generate(), true).await.expect("store opens");
    (Subject::Store(store, BTreeMap::new(), lock), Some(db))
}

#[test]
fn the_reference_answers_every_scenario_as_its_own_unit_tests_say() {
    // The reference is checked by its unit tests (`domain/lifecycle.rs`); here, that the
    // table's scenarios are not vacuous: each has a step whose outcome is neither `Done` nor
    // an empty list, so a subject that did nothing could not agree with it.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for (name, steps) in scenarios() {
        let outcomes = rt.block_on(run(&mut Subject::Reference(Ledger::default()), &steps));
        let telling = outcomes.iter().filter(|o| !matches!(o, Outcome::Done | Outcome::Ids(_))).count();
        assert!(telling >= 2, "scenario {name:?} tells too little: {outcomes:?}");
    }
}

#[tokio::test]
async fn the_held_cache_answers_as_the_reference() {
    agrees_with_the_reference("held", || async { (Subject::Held(Ledger::default(), Held::default()), None) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_answers_as_the_reference() {
    agrees_with_the_reference("sqlite", || store_on(Backend::Sqlite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_answers_as_the_reference() {
    agrees_with_the_reference("postgres", || store_on(Backend::Postgres)).await;
}
