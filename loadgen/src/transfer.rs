//! File transfers through the relay, as pages make them: a sender's page uploads a file and sends
//! its card, the receiver's page opens the card, downloads and decrypts the chunks, and confirms
//! it viewed, which burns it. Each pair is one room; `pairs` run at once.
//!
//! The sealing and opening are the room model's own (Rust AES-GCM here, as every driver without
//! WebCrypto does), so the figures are a native client's, on the same cores as the relay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use app::crypto::RoomKeys;
use app::room::{Effect, RoomEvent, RoomModel};
use futures::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
use crate::page;

/// What one round of transfers measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferReport {
    /// Bytes of each file.
    pub size: u64,
    /// Transfers at once (one room each).
    pub pairs: usize,
    /// Transfers that completed: stored, downloaded, opened to the bytes sent, and burned.
    pub completed: usize,
    /// Median seconds from `send_file` to the card stored (`sent`).
    pub upload_s: f64,
    /// Median seconds from the click on the card to the file decrypted whole.
    pub download_s: f64,
    /// Seconds from the first upload's start to the last burn.
    pub wall_s: f64,
    /// File bytes moved up and down over the wall time, in MB/s (10^6 bytes): `2 × size × pairs
    /// / wall_s`.
    pub throughput_mb_s: f64,
}

/// Runs `pairs` transfers of `size` random bytes at once through the relay at `url`.
pub async fn run(url: &str, size: usize, pairs: usize) -> anyhow::Result<TransferReport> {
    let keys: Vec<RoomKeys> = (0..pairs).map(|i| RoomKeys::from_ikm(&rand_ikm(i))).collect();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for keys in keys {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move { one(&url, &keys, size).await }));
    }
    let mut uploads = Vec::new();
    let mut downloads = Vec::new();
    for task in tasks {
        let (up, down) = task.await??;
        uploads.push(up.as_secs_f64());
        downloads.push(down.as_secs_f64());
    }
    let wall_s = start.elapsed().as_secs_f64();
    Ok(TransferReport {
        size: size as u64,
        pairs,
        completed: uploads.len(),
        upload_s: median(&mut uploads),
        download_s: median(&mut downloads),
        wall_s,
        throughput_mb_s: 2.0 * size as f64 * pairs as f64 / wall_s / 1e6,
    })
}

fn rand_ikm(_: usize) -> [u8; 32] {
    app::crypto::random_bytes()
}

/// One transfer in a room of its own: (upload time, download time).
async fn one(url: &str, keys: &RoomKeys, size: usize) -> anyhow::Result<(Duration, Duration)> {
    let (mut sender_ws, mut sender) = page::join(url, keys).await?;
    let (mut receiver_ws, mut receiver) = page::join(url, keys).await?;
    let bytes: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8).collect();
    let started = Instant::now();
    let effects = sender.send_file("bench.png", "image/png", bytes.clone(), now_ms())?;
    let id = sender.cards().last().map(|card| card.id).ok_or_else(|| anyhow::anyhow!("no card"))?;
    drive(&mut sender_ws, &mut sender, effects, |event| *event == RoomEvent::Stored(id)).await?;
    let uploaded = started.elapsed();
    // The receiver hears of it (or already did), opens it, and confirms it viewed once whole.
    drive(&mut receiver_ws, &mut receiver, Vec::new(), |event| *event == RoomEvent::Arrived(id)).await?;
    let opening = Instant::now();
    let effects = receiver.open(id);
    drive(&mut receiver_ws, &mut receiver, effects, |event| *event == RoomEvent::Opened(id)).await?;
    let downloaded = opening.elapsed();
    let shown = receiver.card(id).map(|card| &card.state);
    anyhow::ensure!(
        matches!(shown, Some(app::room::CardState::File(got)) if got.0[..] == bytes[..]),
        "the file opened is not the file sent"
    );
    drive(&mut receiver_ws, &mut receiver, Vec::new(), |event| *event == RoomEvent::Burned(id)).await?;
    let _ = sender_ws.close(None).await;
    let _ = receiver_ws.close(None).await;
    Ok((uploaded, downloaded))
}

/// Carries out `effects` and what the relay's frames lead to, until `until` holds for an event.
async fn drive(
    ws: &mut Ws,
    model: &mut RoomModel,
    effects: Vec<Effect>,
    until: impl Fn(&RoomEvent) -> bool,
) -> anyhow::Result<()> {
    let mut queue: VecDeque<Effect> = effects.into();
    let mut done = false;
    loop {
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Send(frame) => ws.send(client::text(&frame)).await.map_err(Box::new)?,
                Effect::SendBinary(bytes) => ws.send(Message::Binary(bytes.into())).await.map_err(Box::new)?,
                Effect::Seal(job) => queue.extend(model.chunk_sealed(job.id, job.index, job.seal())),
                Effect::Open(job) => queue.extend(model.chunk_opened(job.id, job.index, job.open())),
                Effect::Event(RoomEvent::Refused(code)) => anyhow::bail!("refused: {code:?}"),
                Effect::Event(event) => done |= until(&event),
                // Timers (countdowns, typing) and the rest are no part of a transfer.
                Effect::Schedule { .. } | Effect::Connect { .. } | Effect::Disconnect | Effect::Save { .. } => {}
            }
        }
        if done {
            return Ok(());
        }
        let message = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no frame for 60 s"))?
            .ok_or_else(|| anyhow::anyhow!("the relay closed the socket"))?
            .map_err(Box::new)?;
        queue.extend(match message {
            Message::Text(text) => model.on_text(text.as_str()),
            Message::Binary(bytes) => model.on_binary(&bytes),
            _ => Vec::new(),
        });
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
