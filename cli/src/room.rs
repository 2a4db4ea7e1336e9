//! The room model ([`RoomModel`]) driven by Tokio: a WebSocket, the model's timers, and its
//! chunk work done in Rust. The commands act on the model (send, open, save) and read what
//! happened from the [`RoomEvent`]s each step returns.
//!
//! Waiting ([`Room::wait`]) and acting on what woke it ([`Room::handle`]) are two steps, so a
//! command can wait on the room and on its own input at once (`tokio::select!`) and lose
//! nothing: only the wait is ever cancelled, never a write.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use app::crypto::RoomKeys;
use app::protocol::ErrorCode;
use app::room::lifetime_words;
use app::room::{Effect, RoomEvent, RoomModel, Timer};
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::failure::Failure;
use crate::target::Target;
use crate::terminal::say;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connection attempt that takes longer than this has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What woke the room.
pub enum Wake {
    /// A frame, or the socket's end (`None`, or an error).
    Frame(Option<Result<Message, tungstenite::Error>>),
    /// A timer of the model is due.
    Timer,
    /// The model asked to connect, and the wait is over.
    Connect,
}

/// What the sender chooses for what it sends, as the model takes them.
#[derive(Default)]
pub struct Choices {
    pub name: Option<String>,
    /// How long it waits unread, in seconds (one of the relay's offer).
    pub expires: Option<u32>,
    /// How long it stays on screen once opened, in seconds.
    pub view: Option<u32>,
}

/// One page of a room, in a terminal.
pub struct Room {
    model: RoomModel,
    url: String,
    ws: Option<Ws>,
    connect_at: Option<Instant>,
    timers: Vec<(Instant, Timer)>,
    /// Whether a join ever succeeded: until then, a relay that cannot be reached is a failure,
    /// not a reason to try again.
    joined_once: bool,
}

impl Room {
    /// The room of `keys` on the relay's WebSocket `url`, not yet connected.
    pub fn new(keys: RoomKeys, url: String) -> Self {
        Self { model: RoomModel::new(keys), url, ws: None, connect_at: None, timers: Vec::new(), joined_once: false }
    }

    pub fn model(&self) -> &RoomModel {
        &self.model
    }

    /// Derives the room's keys, joins it, and says so (with the fingerprint to compare).
    pub async fn enter(target: &Target, quiet: bool) -> Result<Self, Failure> {
        let keys = RoomKeys::derive(&target.code);
        let fingerprint = keys.fingerprint.display();
        say(quiet, &format!("Joining the room on {} (fingerprint {fingerprint})…", target.relay.origin()));
        let mut room = Self::new(keys, target.relay.ws_url());
        room.join().await?;
        let here = match room.model.participants() {
            1 => "only you are here".to_owned(),
            n => format!("{n} people here"),
        };
        say(quiet, &format!("Joined: {here}."));
        Ok(room)
    }

    /// Connects and waits until the room is joined: the relay unreachable, or refusing the
    /// join (a full room), is a failure.
    pub async fn join(&mut self) -> Result<Vec<RoomEvent>, Failure> {
        let mut seen = self.act(RoomModel::start).await?;
        loop {
            // A full room halts the model; other refusals of a join are tried again by it.
            if seen.contains(&RoomEvent::Refused(ErrorCode::RoomFull)) {
                let why = self.model.notice().unwrap_or(ErrorCode::RoomFull.describe()).to_owned();
                return Err(Failure::refused(ErrorCode::RoomFull, why));
            }
            if seen.contains(&RoomEvent::Joined) {
                return Ok(seen);
            }
            seen = self.next().await?;
        }
    }

    /// Runs `step` on the model and carries out its effects: what happened.
    pub async fn act(&mut self, step: impl FnOnce(&mut RoomModel) -> Vec<Effect>) -> Result<Vec<RoomEvent>, Failure> {
        let effects = step(&mut self.model);
        self.carry_out(effects).await
    }

    /// Waits for what comes next and acts on it.
    pub async fn next(&mut self) -> Result<Vec<RoomEvent>, Failure> {
        let wake = self.wait().await;
        self.handle(wake).await
    }

    /// Waits for a frame, a timer or the time to connect. Cancel-safe.
    pub async fn wait(&mut self) -> Wake {
        if self.ws.is_none() && self.connect_at.is_some_and(|at| at <= Instant::now()) {
            return Wake::Connect;
        }
        let wake_at = self.timers.iter().map(|(at, _)| *at).chain(self.connect_at).min();
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let frame = async {
            match self.ws.as_mut() {
                Some(ws) => ws.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = frame => Wake::Frame(frame),
            () = sleep => if self.ws.is_none() && self.connect_at.is_some_and(|at| at <= Instant::now()) {
                Wake::Connect
            } else {
                Wake::Timer
            },
        }
    }

    /// Acts on what woke the room: what happened.
    pub async fn handle(&mut self, wake: Wake) -> Result<Vec<RoomEvent>, Failure> {
        let effects = match wake {
            Wake::Connect => {
                self.connect_at = None;
                match tokio::time::timeout(CONNECT_TIMEOUT, connect(&self.url)).await {
                    Ok(Ok(ws)) => {
                        self.ws = Some(ws);
                        self.model.on_connected()
                    }
                    Ok(Err(failure)) if !self.joined_once => return Err(failure),
                    Err(_) if !self.joined_once => {
                        return Err(Failure::Unreachable(format!("cannot reach the relay at {}: timed out", self.url)))
                    }
                    _ => self.model.on_closed(),
                }
            }
            Wake::Frame(Some(Ok(Message::Text(text)))) => self.model.on_text(text.as_str()),
            Wake::Frame(Some(Ok(Message::Binary(bytes)))) => self.model.on_binary(&bytes),
            Wake::Frame(Some(Ok(_))) => Vec::new(),
            Wake::Frame(Some(Err(_)) | None) => {
                self.ws = None;
                self.model.on_closed()
            }
            Wake::Timer => {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) = self.timers.drain(..).partition(|(at, _)| *at <= now);
                self.timers = later;
                due.into_iter().flat_map(|(_, timer)| self.model.on_timer(timer)).collect()
            }
        };
        self.carry_out(effects).await
    }

    /// Hands the sender's choices to the model: a lifetime the relay does not offer is its
    /// refusal (`bad_ttl`), a name the spec does not allow a usage error.
    pub fn choose(&mut self, choices: &Choices) -> Result<(), Failure> {
        if let Some(seconds) = choices.expires.filter(|s| !self.model.lifetimes().contains(s)) {
            let message = match self.model.limits().message_ttl {
                _ if self.model.lifetimes().is_empty() => {
                    "this relay does not let a sender choose how long a message waits".to_owned()
                }
                ttl => format!(
                    "this relay keeps an unread message at most {}: --expires {} is longer",
                    lifetime_words(ttl),
                    lifetime_words(seconds.into())
                ),
            };
            return Err(Failure::refused(ErrorCode::BadTtl, message));
        }
        if let Some(name) = &choices.name {
            self.model.set_name(name).map_err(|bad| Failure::Usage(format!("--name: {bad}")))?;
        }
        self.model.set_lifetime(choices.expires);
        self.model.set_view_time(choices.view);
        Ok(())
    }

    /// Leaves the room: a close frame, so the relay drops this participant at once.
    pub async fn leave(&mut self) {
        let _ = self.act(RoomModel::leave).await;
    }

    /// Carries out the model's effects in order, and those they lead to; returns the events.
    async fn carry_out(&mut self, effects: Vec<Effect>) -> Result<Vec<RoomEvent>, Failure> {
        let mut events = Vec::new();
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Send(frame) => {
                    let text = serde_json::to_string(&frame).expect("invariant: client frames are plain data");
                    self.write(Message::text(text), &mut queue).await;
                }
                Effect::SendBinary(bytes) => self.write(Message::Binary(bytes.into()), &mut queue).await,
                Effect::Connect { after } => self.connect_at = Some(Instant::now() + after),
                Effect::Disconnect => {
                    if let Some(mut ws) = self.ws.take() {
                        let _ = ws.close(None).await;
                    }
                }
                Effect::Schedule { timer, after } => self.timers.push((Instant::now() + after, timer)),
                Effect::Event(event) => {
                    if event == RoomEvent::Joined {
                        self.joined_once = true;
                    }
                    events.push(event);
                }
                Effect::Seal(job) => queue.extend(self.model.chunk_sealed(job.id, job.index, job.seal())),
                Effect::Open(job) => queue.extend(self.model.chunk_opened(job.id, job.index, job.open())),
                // The commands write a file from its card before they save it (so a file that
                // cannot be written is never burned): the copy handed over is dropped, and wiped.
                Effect::Save { .. } => {}
            }
        }
        Ok(events)
    }

    /// Writes a frame; a socket found gone is a closed socket.
    async fn write(&mut self, message: Message, queue: &mut VecDeque<Effect>) {
        let Some(ws) = self.ws.as_mut() else { return };
        if ws.send(message).await.is_err() {
            self.ws = None;
            queue.extend(self.model.on_closed());
        }
    }
}

/// Opens the WebSocket. A relay that answers the upgrade with 429 refuses (too many
/// connections from this address); any other failure is a relay that cannot be reached.
async fn connect(url: &str) -> Result<Ws, Failure> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) if response.status() == 429 => Err(Failure::Refused {
            code: "http_429".into(),
            message: "too many connections from this address; try again in a moment".into(),
        }),
        Err(tungstenite::Error::Http(response)) => Err(Failure::Unreachable(format!(
            "{url} answered HTTP {} instead of a WebSocket: is it an Ephemeral Chat relay? (a static \
             bundle's link does not name its relay: pass --relay)",
            response.status().as_u16()
        ))),
        Err(err) => Err(Failure::Unreachable(format!("cannot reach the relay at {url}: {err}"))),
    }
}
