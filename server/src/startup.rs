//! Wires configuration, store, hub and routes into a running [`Application`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::FromRef;
use axum::serve::ListenerExt as _;
use leptos::config::{Env, LeptosOptions};
use tokio::net::TcpListener;

use crate::at_rest::{KeyRing, ServerKey};
use crate::bus::InstanceId;
use crate::config::{Config, Database, IpNet, Limits};
use crate::store::{Store, HEARTBEAT_INTERVAL};
use crate::ws::hub::{EventKind, Hub};
use crate::ws::limits::AddressCounter;

/// File name of the generated key, beside the SQLite database.
pub const KEY_FILE_NAME: &str = "ephemeral-chat.key";
/// How long start-up waits for the first LISTEN (PostgreSQL) before serving anyway.
const LISTEN_WAIT: Duration = Duration::from_secs(10);
/// Slowest expiry sweep: an expired message waits at most this long for deletion.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// What every connection shares.
pub struct Relay {
    /// This process, among the instances sharing a PostgreSQL database.
    pub instance: InstanceId,
    pub store: Store,
    pub hub: Hub,
    pub keys: KeyRing,
    pub message_ttl: Duration,
    pub session_grace: Duration,
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub limits: Limits,
    /// Open connections per client address; never logged or stored.
    pub addresses: AddressCounter,
    /// Where joins and leaves ask for presence counts.
    pub presence: crate::presence::Presence,
    /// Times the link to the other instances was re-established (PostgreSQL).
    pub bus_reconnects: std::sync::atomic::AtomicU64,
}

/// axum state: the Leptos options for page rendering and the relay for `/ws`.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub relay: Arc<Relay>,
    /// Send Strict-Transport-Security (PUBLIC_URL is https).
    pub hsts: bool,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// A bound, ready server. Tests build it on port 0 and read [`Application::port`].
pub struct Application {
    listener: TcpListener,
    state: AppState,
    presence_queue: crate::presence::PresenceQueue,
    /// SQLite: held until the server stops, so no second server opens the same file.
    _lock: Option<std::fs::File>,
}

impl Application {
    /// Opens the store, resolves the key and binds the port. Fails with the setting to fix.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let database = config.database()?;
        let keys = resolve_keys(&config, &database)?;
        let instance = InstanceId::generate();
        let (store, lock) = Store::connect(&database, instance).await.with_context(|| match &database {
            Database::Sqlite { path } => format!("cannot open SQLite database {}", path.display()),
            Database::Postgres(_) => "cannot open PostgreSQL database (check DATABASE_URL / PG* settings)".into(),
        })?;
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let listener = TcpListener::bind(addr).await.with_context(|| format!("PORT: cannot listen on {addr}"))?;
        let local = listener.local_addr().context("PORT: cannot read the bound address")?;
        let leptos_options = LeptosOptions::builder()
            .output_name("ephemeral-chat")
            .site_root(config.site_root.clone())
            .site_pkg_dir("pkg")
            .site_addr(local)
            .env(Env::PROD)
            .build();
        let (presence, presence_queue) = crate::presence::Presence::new();
        let relay = Arc::new(Relay {
            instance,
            store,
            hub: Hub::default(),
            keys,
            message_ttl: config.message_ttl,
            session_grace: config.session_grace,
            allowed_origins: config.allowed_origins.iter().cloned().chain(config.public_url.clone()).collect(),
            trusted_proxies: config.trusted_proxies.clone(),
            limits: config.limits,
            addresses: AddressCounter::new(
                config.limits.max_connections_per_address,
                config.limits.connects_per_second_per_address,
                config.limits.connect_burst_per_address,
            ),
            presence,
            bus_reconnects: Default::default(),
        });
        tracing::info!(
            backend = match database {
                Database::Sqlite { .. } => "sqlite",
                Database::Postgres(_) => "postgres",
            },
            "store ready"
        );
        let hsts = config.public_url.as_deref().is_some_and(|url| url.starts_with("https://"));
        Ok(Self { listener, state: AppState { leptos_options, relay, hsts }, presence_queue, _lock: lock })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The relay, for tests that inspect the store.
    pub fn relay(&self) -> Arc<Relay> {
        self.state.relay.clone()
    }

    /// Serves until SIGINT or SIGTERM, sweeping expired messages meanwhile.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let relay = self.state.relay.clone();
        // Aborted when this future ends or is dropped (a test stopping the server in-process):
        // no background task outlives its server.
        let mut tasks = BackgroundTasks::default();
        tasks.spawn(sweep_expired(relay.clone()));
        tasks.spawn(drop_absent_recipients(relay.clone()));
        tasks.spawn(heartbeat(relay.clone()));
        tasks.spawn(crate::presence::run(relay.clone(), self.presence_queue));
        if let Some(pool) = relay.store.postgres_pool() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tasks.spawn(crate::bus::listen(relay.clone(), (*pool.connect_options()).clone(), tx));
            if tokio::time::timeout(LISTEN_WAIT, rx).await.is_err() {
                tracing::warn!("serving before listening for other instances' events (still trying)");
            }
        }
        let router = crate::routes::router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(port = self.listener.local_addr().map(|a| a.port()).unwrap_or_default(), "listening");
        let served = tokio::select! {
            served = axum::serve(self.listener.tap_io(no_delay), router) => served.context("server failed"),
            () = shutdown_signal() => Ok(()),
        };
        drop(tasks);
        relay.store.close().await;
        tracing::info!("stopped");
        served
    }
}

/// Frames are small and each one is awaited by someone: send each at once instead of letting
/// Nagle's algorithm hold it for the peer's delayed ACK (40 ms on Linux).
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
}

/// Tasks that run beside the server and stop with it.
#[derive(Default)]
struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl BackgroundTasks {
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// The at-rest keys: `ENCRYPTION_KEY` (and `ENCRYPTION_KEY_PREVIOUS`), else (SQLite only) the
/// key file beside the database.
fn resolve_keys(config: &Config, database: &Database) -> anyhow::Result<KeyRing> {
    if let Some(keys) = config.key_ring()? {
        return Ok(keys);
    }
    match database {
        Database::Postgres(_) => {
            anyhow::bail!(
                "ENCRYPTION_KEY is required with PostgreSQL (every instance must share it): 64 hex characters"
            )
        }
        Database::Sqlite { path } => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let key = load_or_create_key(&dir.join(KEY_FILE_NAME))?;
            tracing::warn!(
                "ENCRYPTION_KEY is unset: using the key file beside the database; it protects a copy \
                 of the database file, not a copy of the whole data directory"
            );
            Ok(KeyRing::new(key, None)?)
        }
    }
}

/// Reads the key file, or creates it (mode 0600) with a fresh key.
fn load_or_create_key(path: &PathBuf) -> anyhow::Result<ServerKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            ServerKey::from_hex(text.trim()).map_err(|err| anyhow::anyhow!("key file {}: {err}", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
            }
            let key = ServerKey::generate();
            write_private(path, key.to_hex().as_bytes())
                .with_context(|| format!("cannot write key file {}", path.display()))?;
            tracing::info!("generated a new at-rest key file");
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("cannot read key file {}", path.display())),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Deletes expired messages now and then, telling their rooms.
async fn sweep_expired(relay: Arc<Relay>) {
    let period = (relay.message_ttl / 4).clamp(Duration::from_secs(1), MAX_SWEEP_INTERVAL);
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        match relay.store.delete_expired().await {
            Ok(expired) => {
                for (room, id) in expired {
                    relay.hub.publish(&room, None, EventKind::Expired(id));
                }
            }
            Err(err) => tracing::error!("expiry sweep failed: {err}"),
        }
    }
}

/// After a restart, recipients are named in the store but nobody is connected: those that do
/// not come back within the grace period have left, as if they had left at the restart.
async fn drop_absent_recipients(relay: Arc<Relay>) {
    tokio::time::sleep(relay.session_grace).await;
    let named = match relay.store.recipient_participants().await {
        Ok(named) => named,
        Err(err) => return tracing::error!("cannot list recipients after start-up: {err}"),
    };
    for (room, who) in named {
        match relay.store.is_participant(&room, &who).await {
            Ok(true) => {}
            Ok(false) => crate::ws::session::participant_left(&relay, &room, &who).await,
            Err(err) => tracing::error!("cannot check a recipient after start-up: {err}"),
        }
    }
}

/// Renews this instance's participant rows, and drops those of instances that stopped renewing
/// theirs (they died without cleaning up), telling the rooms here what that changed.
async fn heartbeat(relay: Arc<Relay>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        relay.hub.forget_fetched_before(relay.message_ttl);
        if let Err(err) = relay.store.heartbeat().await {
            tracing::error!("participant heartbeat failed: {err}");
        }
        match relay.store.reap(relay.session_grace).await {
            Ok(reaped) => {
                for room in reaped {
                    for id in room.deleted {
                        relay.hub.publish(&room.room, None, EventKind::Deleted(id));
                    }
                    relay.presence.changed(room.room, None).await;
                }
            }
            Err(err) => tracing::error!("dropping vanished instances' participants failed: {err}"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
