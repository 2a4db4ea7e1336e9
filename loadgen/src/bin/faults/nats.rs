//! The NATS side of a fault run, beside its nats-server (`loadgen::target::NatsServer`): a TCP
//! proxy of the run's own between the relays and it, whose connections the run cuts.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::error::FaultError;

/// A TCP proxy on 127.0.0.1 to one port, whose open connections can all be cut at once (the
/// relays' NATS connections, cut as a network fault would, while the server stays up).
pub struct Proxy {
    pub port: u16,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(to: u16) -> Result<Self, FaultError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let links = links.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let link = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", to)).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut links = links.lock().unwrap_or_else(PoisonError::into_inner);
                    links.retain(|link| !link.is_finished());
                    links.push(link);
                }
            }
        });
        Ok(Self { port, links, accept })
    }

    /// Cuts every connection open through the proxy (both sockets closed at once); returns how
    /// many. New connections go through as before.
    pub fn cut(&self) -> usize {
        let links: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.links.lock().unwrap_or_else(PoisonError::into_inner));
        let open = links.iter().filter(|link| !link.is_finished()).count();
        links.iter().for_each(JoinHandle::abort);
        open
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
