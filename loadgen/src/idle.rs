//! Idle connections: many joined WebSockets that send nothing, to weigh what one costs the
//! server. Rooms are random ids in pairs (no PBKDF2: the server cannot tell the difference, and
//! ten thousand derivations would measure the load generator instead).

use app::crypto::RoomKeys;
use futures::StreamExt as _;
use tokio::task::JoinSet;

use crate::client::ClientError;
use crate::page;

/// Joined, idle connections. Dropping this closes them all.
pub struct IdleConnections {
    tasks: JoinSet<()>,
}

impl IdleConnections {
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// Opens `n` connections to `url`, `parallelism` at a time, each joined to a room shared with
/// one other, and keeps them reading (so pings are answered) until dropped.
pub async fn open(url: &str, n: usize, parallelism: usize) -> Result<IdleConnections, ClientError> {
    // Keys from random input: a room like any other, without a PBKDF2 per room.
    let rooms: Vec<RoomKeys> = (0..n.div_ceil(2)).map(|_| RoomKeys::from_ikm(&app::crypto::random_bytes())).collect();
    let joins = (0..n).map(|i| {
        let room = &rooms[i / 2];
        async move { page::join(url, room).await.map(|(ws, _page)| ws) }
    });
    let mut sockets = futures::stream::iter(joins).buffer_unordered(parallelism.max(1));
    let mut tasks = JoinSet::new();
    while let Some(ws) = sockets.next().await {
        let mut ws = ws?;
        tasks.spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    }
    Ok(IdleConnections { tasks })
}
