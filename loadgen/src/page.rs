//! A page without a browser: the room model ([`RoomModel`]) driven by Tokio, a WebSocket and
//! timers, exactly as the browser drives it. The faults harness and the integration tests act
//! through it as people do: they send, open what arrives, and watch the room's events.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use app::crypto::{MessageId, RoomKeys};
use app::protocol::ClientFrame;
use app::room::{Card, Effect, NotSent, RoomEvent, RoomModel, Timer};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ClientError, Ws};

/// A socket that cannot be opened within this counts as a failed attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a person does on the page.
enum Action {
    Send(String, oneshot::Sender<Result<MessageId, NotSent>>),
    Open(MessageId),
    /// The network drops the socket (no close frame): the page reconnects as after any loss.
    Drop,
    Typed,
    /// A look at the model (what the person sees).
    Inspect(Box<dyn FnOnce(&RoomModel) + Send>),
}

/// Where a page's next connection goes: asked at every attempt, so a harness can move pages
/// between instances or follow a restarted one to its new port.
pub type RelayAddress = Box<dyn Fn() -> String + Send + Sync>;

/// A running page: act on it, and hear what happens in its room.
pub struct Page {
    actions: mpsc::UnboundedSender<Action>,
    events: mpsc::UnboundedReceiver<RoomEvent>,
    task: JoinHandle<()>,
}

impl Page {
    /// Opens the room of `keys` on the relay at `url` (`ws://host:port/ws`) and keeps it open,
    /// reconnecting as the page does, until it leaves or is dropped (both close the socket
    /// with a close frame: the relay drops the participant at once).
    pub fn open(keys: RoomKeys, url: &str) -> Self {
        let url = url.to_owned();
        Self::open_with(keys, Box::new(move || url.clone()))
    }

    /// [`open`](Self::open), asking `relay` for the address at every connection attempt.
    pub fn open_with(keys: RoomKeys, relay: RelayAddress) -> Self {
        let (actions, actions_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let driver = Driver {
            model: RoomModel::new(keys),
            relay,
            ws: None,
            connect_at: None,
            timers: Vec::new(),
            events: events_tx,
        };
        let task = tokio::spawn(driver.run(actions_rx));
        Self { actions, events, task }
    }

    /// Seals and sends `text` (queued until joined); its id.
    pub async fn send(&self, text: &str) -> Result<MessageId, NotSent> {
        let (tx, rx) = oneshot::channel();
        self.act(Action::Send(text.to_owned(), tx));
        rx.await.unwrap_or(Err(NotSent::NotInRoom))
    }

    /// A click on a sealed card.
    pub fn open_card(&self, id: MessageId) {
        self.act(Action::Open(id));
    }

    /// The network drops the page's socket (no close frame, so the relay keeps the participant
    /// for its grace period): the page reconnects as after any loss, to wherever its relay
    /// address says then (the faults harness moves receivers between instances so).
    pub fn drop_connection(&self) {
        self.act(Action::Drop);
    }

    /// A keystroke in the composer.
    pub fn typed(&self) {
        self.act(Action::Typed);
    }

    /// The cards on the page now, oldest first.
    pub async fn cards(&self) -> Vec<Card> {
        self.inspect(|model| model.cards().to_vec()).await.unwrap_or_default()
    }

    /// What `look` sees of the page's model now; `None` once the page has stopped.
    pub async fn inspect<T: Send + 'static>(&self, look: impl FnOnce(&RoomModel) -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.act(Action::Inspect(Box::new(move |model| {
            let _ = tx.send(look(model));
        })));
        rx.await.ok()
    }

    /// The next thing that happened in the room; `None` once the page has stopped.
    pub async fn next_event(&mut self) -> Option<RoomEvent> {
        self.events.recv().await
    }

    /// Leaves the room (a close frame: the relay drops this participant at once).
    pub async fn leave(self) {
        drop(self.actions);
        let _ = self.task.await;
    }

    fn act(&self, action: Action) {
        let _ = self.actions.send(action);
    }
}

/// The page's loop: its model, its socket and its timers.
struct Driver {
    model: RoomModel,
    relay: RelayAddress,
    ws: Option<Ws>,
    /// When the model asked to (re)connect.
    connect_at: Option<Instant>,
    timers: Vec<(Instant, Timer)>,
    events: mpsc::UnboundedSender<RoomEvent>,
}

impl Driver {
    async fn run(mut self, mut actions: mpsc::UnboundedReceiver<Action>) {
        let start = self.model.start();
        self.carry_out(start).await;
        loop {
            if self.ws.is_none() && self.connect_at.is_some_and(|at| at <= Instant::now()) {
                self.connect_at = None;
                let effects = match tokio::time::timeout(CONNECT_TIMEOUT, client::connect(&(self.relay)())).await {
                    Ok(Ok(ws)) => {
                        self.ws = Some(ws);
                        self.model.on_connected()
                    }
                    _ => self.model.on_closed(),
                };
                self.carry_out(effects).await;
                continue;
            }
            let wake = self.timers.iter().map(|(at, _)| *at).chain(self.connect_at).min();
            let frame = async {
                match self.ws.as_mut() {
                    Some(ws) => ws.next().await,
                    None => std::future::pending().await,
                }
            };
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let effects = tokio::select! {
                action = actions.recv() => match action {
                    Some(action) => self.on_action(action),
                    None => {
                        let effects = self.model.leave();
                        self.carry_out(effects).await;
                        return;
                    }
                },
                frame = frame => match frame {
                    Some(Ok(Message::Text(text))) => self.model.on_text(text.as_str()),
                    Some(Ok(Message::Binary(bytes))) => self.model.on_binary(&bytes),
                    Some(Ok(_)) => Vec::new(),
                    Some(Err(_)) | None => {
                        self.ws = None;
                        self.model.on_closed()
                    }
                },
                () = sleep => self.due_timers(),
            };
            self.carry_out(effects).await;
        }
    }

    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Send(text, reply) => match self.model.send(&text, now_ms()) {
                Ok(effects) => {
                    let id = self.model.cards().last().map(|card| card.id);
                    let _ = reply.send(id.ok_or(NotSent::NotInRoom));
                    effects
                }
                Err(refused) => {
                    let _ = reply.send(Err(refused));
                    Vec::new()
                }
            },
            Action::Open(id) => self.model.open(id),
            Action::Drop => match self.ws.take() {
                // Dropped unclosed: the relay sees the connection end, as after a network loss.
                Some(ws) => {
                    drop(ws);
                    self.model.on_closed()
                }
                None => Vec::new(),
            },
            Action::Typed => self.model.typed(now_ms()),
            Action::Inspect(look) => {
                look(&self.model);
                Vec::new()
            }
        }
    }

    fn due_timers(&mut self) -> Vec<Effect> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.timers.drain(..).partition(|(at, _)| *at <= now);
        self.timers = later;
        due.into_iter().flat_map(|(_, timer)| self.model.on_timer(timer)).collect()
    }

    /// Carries out the model's effects in order, and those of what they lead to (a send that
    /// finds the socket gone is a closed socket).
    async fn carry_out(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Send(frame) => {
                    let Some(ws) = self.ws.as_mut() else { continue };
                    if ws.send(client::text(&frame)).await.is_err() {
                        self.ws = None;
                        queue.extend(self.model.on_closed());
                    }
                }
                Effect::Connect { after } => self.connect_at = Some(Instant::now() + after),
                Effect::Disconnect => {
                    if let Some(mut ws) = self.ws.take() {
                        let _ = ws.close(None).await;
                    }
                }
                Effect::Schedule { timer, after } => self.timers.push((Instant::now() + after, timer)),
                Effect::Event(event) => {
                    let _ = self.events.send(event);
                }
                Effect::SendBinary(bytes) => {
                    let Some(ws) = self.ws.as_mut() else { continue };
                    if ws.send(Message::Binary(bytes.into())).await.is_err() {
                        self.ws = None;
                        queue.extend(self.model.on_closed());
                    }
                }
                Effect::Seal(job) => queue.extend(self.model.chunk_sealed(job.id, job.index, job.seal())),
                Effect::Open(job) => queue.extend(self.model.chunk_opened(job.id, job.index, job.open())),
                // Nowhere to save to: the bytes are dropped (and wiped).
                Effect::Save { .. } => {}
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Opens a socket to `url` and lets a fresh page of the room of `keys` join on it: the socket
/// and the joined page, for a driver of its own (the load generator's journeys).
pub async fn join(url: &str, keys: &RoomKeys) -> Result<(Ws, RoomModel), ClientError> {
    let mut ws = client::connect(url).await?;
    let mut page = RoomModel::new(keys.clone());
    page.start();
    for effect in page.on_connected() {
        if let Effect::Send(frame) = effect {
            ws.send(client::text(&frame)).await.map_err(Box::new)?;
        }
    }
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message.map_err(Box::new)? else { continue };
        let effects = page.on_text(text.as_str());
        if let Some(code) = effects.iter().find_map(|effect| match effect {
            Effect::Event(RoomEvent::Refused(code)) => Some(*code),
            _ => None,
        }) {
            return Err(ClientError::Refused(format!("{code:?}")));
        }
        if effects.contains(&Effect::Event(RoomEvent::Joined)) {
            return Ok((ws, page));
        }
    }
    Err(ClientError::Closed)
}

/// What a measurement driver hears from [`at_once`].
pub enum Step {
    /// A frame to write on the socket.
    Frame(ClientFrame),
    /// Something that happened in the room.
    Event(RoomEvent),
    /// A binary frame (a file's chunk, or a request for one) to write on the socket.
    Binary(Vec<u8>),
}

/// Carries out `effects` as a page would, with a clock that jumps: each timer runs as soon as it
/// is reached, in order with the other effects, so a card counts down and leaves at once. For
/// the load generator's journeys, which measure the relay and must not spend the machine's
/// cores on ten timer wakeups a message. Frames and events go to `on`, which may act on the
/// model and return its new effects (a person opening what arrived); reconnecting is the
/// caller's business (a lost socket ends a measured journey).
pub fn at_once(model: &mut RoomModel, effects: Vec<Effect>, mut on: impl FnMut(&mut RoomModel, Step) -> Vec<Effect>) {
    let mut queue: VecDeque<Effect> = effects.into();
    while let Some(effect) = queue.pop_front() {
        let more = match effect {
            Effect::Send(frame) => on(model, Step::Frame(frame)),
            Effect::Event(event) => on(model, Step::Event(event)),
            Effect::Schedule { timer, .. } => model.on_timer(timer),
            Effect::SendBinary(bytes) => on(model, Step::Binary(bytes)),
            Effect::Seal(job) => model.chunk_sealed(job.id, job.index, job.seal()),
            Effect::Open(job) => model.chunk_opened(job.id, job.index, job.open()),
            Effect::Connect { .. } | Effect::Disconnect | Effect::Save { .. } => Vec::new(),
        };
        queue.extend(more);
    }
}
