//! One-off: what a bus task's wake-up costs with N followed rooms, tokio-stream's StreamMap
//! against futures' SelectAll (the relay's `bus/nats.rs` before and after).
use std::time::Instant;

use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamMap;

const MESSAGES: usize = 20_000;

fn rooms(n: usize) -> (Vec<mpsc::UnboundedSender<u64>>, Vec<UnboundedReceiverStream<u64>>) {
    (0..n).map(|_| mpsc::unbounded_channel()).map(|(tx, rx)| (tx, UnboundedReceiverStream::new(rx))).unzip()
}

fn pick(i: usize, n: usize) -> usize {
    (i.wrapping_mul(2654435761)) % n
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for n in [32usize, 1_000, 10_000] {
        let (txs, rxs) = rooms(n);
        let mut map = StreamMap::new();
        for (k, rx) in rxs.into_iter().enumerate() {
            map.insert(k, rx);
        }
        let start = Instant::now();
        for i in 0..MESSAGES {
            txs[pick(i, n)].send(i as u64).unwrap();
            map.next().await.unwrap();
        }
        let stream_map = start.elapsed().as_nanos() as f64 / MESSAGES as f64;

        let (txs, rxs) = rooms(n);
        let mut all: SelectAll<BoxStream<'static, (usize, u64)>> = SelectAll::new();
        let mut stops = Vec::new();
        for (k, rx) in rxs.into_iter().enumerate() {
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            all.push(rx.take_until(stopped).map(move |m| (k, m)).boxed());
        }
        let start = Instant::now();
        for i in 0..MESSAGES {
            txs[pick(i, n)].send(i as u64).unwrap();
            all.next().await.unwrap();
        }
        let select_all = start.elapsed().as_nanos() as f64 / MESSAGES as f64;
        println!("{n:>6} rooms: StreamMap {stream_map:>9.0} ns per message, SelectAll {select_all:>6.0} ns");
        drop(stops);
    }
}
