//! Wires configuration, store, hub and routes into a running [`Application`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use leptos::config::{Env, LeptosOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::at_rest::{KeyRing, ServerKey};
use crate::bus::nats::{self, SubjectKey};
use crate::bus::{self, BusEvent, BusIdentity, Outbox};
use crate::config::{ssl_mode_name, Config, Database};
use crate::domain::bounds::{BUS_QUEUE, LISTEN_WAIT, STOP_WAIT};
use crate::domain::InstanceId;
use crate::relay::hub::Hub;
use crate::relay::presence::{self, Presence, PresenceQueue};
use crate::relay::{quota, tasks, Relay};
use crate::routes::connections::{self, ConnectionLimits};
use crate::routes::tls::Tls;
use crate::routes::{self, AppState};
use crate::store::{Store, StoreError};
use crate::telemetry::metrics;
use crate::ws::limits::AddressCounter;

/// File name of the generated key, beside the SQLite database.
pub const KEY_FILE_NAME: &str = "ephemeral-chat.key";

/// A bound, ready server. Tests build it on port 0 and read [`Application::port`].
pub struct Application {
    listener: TcpListener,
    /// The relay's own TLS (`TLS_CERT`), if it serves HTTPS.
    tls: Option<Tls>,
    /// The metrics listener (`METRICS_ADDR`) and the recorder it renders.
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
    state: AppState,
    presence_queue: PresenceQueue,
    stop: watch::Sender<bool>,
    open_sockets: mpsc::Receiver<()>,
    /// NATS (`BUS_URL`): the bus task, and what it hears, started with the server.
    nats: Option<NatsBus>,
    /// SQLite: held until the server stops, so no second server opens the same file.
    _lock: Option<std::fs::File>,
}

/// The NATS bus, connected (or connecting) but not yet running.
struct NatsBus {
    run: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    heard: mpsc::Receiver<BusEvent>,
}

impl Application {
    /// Opens the store, resolves the key and binds the port. Fails with the setting to fix.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let database = config.database()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::load(cert.clone(), key.clone())?),
            _ => None,
        };
        let keys = resolve_keys(&config, &database)?;
        let nats_settings = config.bus()?;
        let instance = InstanceId::generate();
        let (store, lock) = Store::connect(&database, instance, nats_settings.is_none())
            .await
            .map_err(|err| cannot_open(err, &database))?;
        let identity = match &nats_settings {
            Some(_) => SubjectKey::new(&keys).identity(),
            None => BusIdentity::Postgres,
        };
        let others = store.register(&identity.as_text()).await.context("cannot register this instance")?;
        if let Some(other) = others.first() {
            anyhow::bail!(
                "BUS_URL: another instance over this database carries room events on {}, and this one would on {}; \
                 they would not hear each other. Every instance over one database needs the same BUS_URL (unset \
                 for LISTEN/NOTIFY) and, with NATS, the same ENCRYPTION_KEY (and ENCRYPTION_KEY_PREVIOUS)",
                BusIdentity::describe(other),
                BusIdentity::describe(&identity.as_text()),
            );
        }
        let (outbox, nats) = match &nats_settings {
            Some(settings) => {
                let (events, heard) = mpsc::channel::<BusEvent>(BUS_QUEUE);
                let (link, run) = nats::start(settings, SubjectKey::new(&keys), instance, events).await?;
                (Outbox::nats(link), Some(NatsBus { run: Box::pin(run), heard }))
            }
            None => (Outbox::in_the_store(), None),
        };
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let listener = TcpListener::bind(addr).await.with_context(|| format!("PORT: cannot listen on {addr}"))?;
        let local = listener.local_addr().context("PORT: cannot read the bound address")?;
        let metrics = match config.metrics_addr {
            Some(addr) => {
                let handle = metrics::install()?;
                let listener =
                    TcpListener::bind(addr).await.with_context(|| format!("METRICS_ADDR: cannot listen on {addr}"))?;
                Some((listener, handle))
            }
            None => None,
        };
        let leptos_options = LeptosOptions::builder()
            .output_name("ephemeral-chat")
            .site_root(config.site_root.clone())
            .site_pkg_dir("pkg")
            .site_addr(local)
            .env(Env::PROD)
            .build();
        let (presence, presence_queue) = Presence::new();
        let relay = Arc::new(Relay {
            instance,
            store,
            hub: Arc::new(Hub::new(config.limits.max_stored_bytes_per_address, outbox)),
            keys,
            message_ttl: config.message_ttl,
            session_grace: config.session_grace,
            limits: config.limits,
            presence,
            bus_reconnects: Default::default(),
            bus_heard: Default::default(),
            stored: Arc::new(quota::Total::new(config.limits.max_stored_bytes)),
        });
        tracing::info!(
            backend = match database {
                Database::Sqlite { .. } => "sqlite",
                Database::Postgres { .. } => "postgres",
            },
            bus = match (&database, &nats) {
                (Database::Sqlite { .. }, _) => "none",
                (_, Some(_)) => "nats",
                (_, None) => "postgres",
            },
            "store ready"
        );
        let (stop, stopping) = watch::channel(false);
        let (open_sockets_tx, open_sockets) = mpsc::channel(1);
        let limits = config.limits;
        let state = AppState {
            leptos_options,
            relay,
            hsts: tls.is_some() || config.public_url.as_deref().is_some_and(|url| url.starts_with("https://")),
            allowed_origins: config.allowed_origins.iter().cloned().chain(config.public_url.clone()).collect(),
            trusted_proxies: config.trusted_proxies.clone().into(),
            addresses: AddressCounter::new(
                limits.max_connections_per_address,
                limits.connects_per_second_per_address,
                limits.connect_burst_per_address,
            ),
            ipv6_prefix: limits.ipv6_prefix,
            public_scheme: if tls.is_some() {
                Some("https")
            } else {
                config.public_url.as_deref().map(|url| if url.starts_with("https://") { "https" } else { "http" })
            },
            stopping,
            open_sockets: open_sockets_tx,
        };
        Ok(Self { listener, tls, metrics, state, presence_queue, stop, open_sockets, nats, _lock: lock })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The metrics listener's port, if `METRICS_ADDR` is set (useful with port 0).
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().and_then(|(listener, _)| listener.local_addr().ok()).map(|a| a.port())
    }

    /// The relay, for tests that inspect the store.
    pub fn relay(&self) -> Arc<Relay> {
        self.state.relay.clone()
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully: no new connection is accepted,
    /// every socket is closed with "going away" and its participant kept as after a network
    /// loss (nothing burns), in-flight writes finish, and the store is closed.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { listener, tls, metrics, state, presence_queue, stop, mut open_sockets, nats, _lock } = self;
        let relay = state.relay.clone();
        // Aborted when this future ends or is dropped (a test stopping the server in-process):
        // no background task outlives its server.
        let mut tasks = spawn_tasks(&relay, presence_queue, nats).await;
        if let Some(tls) = &tls {
            tasks.spawn(tls.clone().reload_on_hangup());
        }
        if let Some((listener, handle)) = metrics {
            let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
            tasks.spawn(routes::metrics::serve(listener, handle, relay.clone(), stop.subscribe()));
            tracing::info!(port, "serving metrics");
        }
        let limits = relay.limits;
        let connection_limits = ConnectionLimits {
            max_connections: limits.max_connections as usize,
            header_timeout: limits.header_timeout,
            keepalive_timeout: limits.keepalive_timeout,
        };
        let router = routes::router(state);
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        tracing::info!(port, tls = tls.is_some(), "listening");
        let serving = connections::serve(listener, router, connection_limits, tls, stop.subscribe());
        tokio::pin!(serving);
        tokio::select! {
            () = &mut serving => {}
            () = shutdown_signal() => {
                // Every socket closes; the HTTP side stops accepting and lets requests finish.
                let _ = stop.send(true);
                serving.await;
            }
        }
        // The sockets were upgraded out of the HTTP server's hands: wait for them on their own.
        if tokio::time::timeout(STOP_WAIT, open_sockets.recv()).await.is_err() {
            tracing::warn!("stopping with sockets still open after {STOP_WAIT:?}");
        }
        // What the sockets' ends told the other instances reaches them before the bus stops.
        relay.hub.drained().await;
        drop(tasks);
        if let Err(err) = relay.store.unregister().await {
            tracing::warn!("cannot remove this instance's registration: {err}");
        }
        relay.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts the relay's background tasks and, on PostgreSQL, the bus (NATS, or LISTEN), waiting
/// (a bounded time) until it listens.
async fn spawn_tasks(relay: &Arc<Relay>, presence_queue: PresenceQueue, nats: Option<NatsBus>) -> BackgroundTasks {
    let mut tasks = BackgroundTasks::default();
    let (store, hub) = (relay.store.clone(), relay.hub.clone());
    tasks.spawn(tasks::sweep_expired(store.clone(), hub.clone(), relay.message_ttl));
    tasks.spawn(tasks::drop_absent_recipients(store.clone(), hub.clone(), relay.session_grace));
    tasks.spawn(tasks::heartbeat(
        store.clone(),
        hub.clone(),
        relay.presence.clone(),
        relay.message_ttl,
        relay.session_grace,
    ));
    tasks.spawn(presence::run(hub.clone(), store.clone(), presence_queue));
    let heard = match (nats, store.postgres_connect_options()) {
        (Some(NatsBus { run, heard }), _) => {
            tasks.spawn(run);
            Some(heard)
        }
        (None, Some(options)) => {
            let (events, heard) = mpsc::channel::<BusEvent>(BUS_QUEUE);
            tasks.spawn(bus::postgres::listen(relay.instance, options, events));
            Some(heard)
        }
        (None, None) => None,
    };
    if let Some(heard) = heard {
        let (ready, listening) = oneshot::channel();
        tasks.spawn(tasks::hear_other_instances(
            hub,
            relay.presence.clone(),
            relay.bus_reconnects.clone(),
            relay.bus_heard.clone(),
            heard,
            ready,
        ));
        if tokio::time::timeout(LISTEN_WAIT, listening).await.is_err() {
            tracing::warn!("serving before listening for other instances' events (still trying)");
        }
    }
    tasks
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

/// Why the store could not be opened, in one line naming what to fix. A TLS failure says which
/// `sslmode` asked for it and what that mode checks.
fn cannot_open(err: StoreError, database: &Database) -> anyhow::Error {
    let options = match database {
        Database::Sqlite { path } => {
            return anyhow::Error::new(err).context(format!("cannot open SQLite database {}", path.display()))
        }
        Database::Postgres { options, .. } => options,
    };
    let chain: Vec<&(dyn std::error::Error + 'static)> = {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        std::iter::from_fn(|| {
            let current = source?;
            source = current.source();
            Some(current)
        })
        .collect()
    };
    // rustls's error comes either as sqlx's TLS error or inside the I/O error of the handshake.
    let tls_cause = chain.iter().find_map(|e| {
        if let Some(sqlx::Error::Tls(inner)) = e.downcast_ref::<sqlx::Error>() {
            return Some(inner.to_string());
        }
        let io = e.downcast_ref::<std::io::Error>()?;
        io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).map(ToString::to_string)
    });
    let Some(cause) = tls_cause else {
        return anyhow::Error::new(err).context("cannot open PostgreSQL database (check DATABASE_URL / PG* settings)");
    };
    let mode = ssl_mode_name(options.get_ssl_mode());
    let checks = match mode {
        "verify-full" => {
            " (verify-full: the certificate must chain to sslrootcert or a public root, and name the host connected to)"
        }
        "verify-ca" => " (verify-ca: the certificate must chain to sslrootcert or a public root)",
        _ => "",
    };
    anyhow::anyhow!("cannot open PostgreSQL database: TLS with sslmode={mode} failed: {cause}{checks}")
}

/// The at-rest keys: `ENCRYPTION_KEY` (and `ENCRYPTION_KEY_PREVIOUS`), else (SQLite only) the
/// key file beside the database.
fn resolve_keys(config: &Config, database: &Database) -> anyhow::Result<KeyRing> {
    if let Some(keys) = config.key_ring()? {
        return Ok(keys);
    }
    match database {
        Database::Postgres { .. } => {
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
            refuse_if_shared(path)?;
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

/// A key file other users could read (or change) is refused: whoever reads it and a copy of the
/// database reads the server's layer.
fn refuse_if_shared(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "key file {} is open to other users (mode {:o}): run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    Ok(())
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
