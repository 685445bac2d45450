//! The daemon: one bus connection serving three objects, and the state they share.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dynamod_dbus::{Call, Interface, Method, MethodError, Props, Reply, Service, Signals};

use crate::args::Options;
use crate::{hostname, locale, timedate};

/// The bus names this daemon owns.
pub const NAMES: [&str; 3] = [
    "org.freedesktop.hostname1",
    "org.freedesktop.timedate1",
    "org.freedesktop.locale1",
];

/// State shared by the three objects.
#[derive(Debug)]
pub struct Context {
    /// The command line.
    pub opts: Options,
    /// Where PropertiesChanged goes.
    pub signals: Signals,
    /// The transient hostname set with `SetHostname`, if any.
    pub transient: Mutex<Option<String>>,
    /// Serializes changes, so two callers never interleave writes to the same file.
    pub changes: tokio::sync::Mutex<()>,
}

impl Context {
    /// A context for `opts`.
    pub fn new(opts: Options) -> Self {
        Self {
            opts,
            signals: Signals::new(),
            transient: Mutex::new(None),
            changes: tokio::sync::Mutex::new(()),
        }
    }

    /// `rel` under `/etc` of the configured root.
    pub fn etc(&self, rel: &str) -> PathBuf {
        self.opts.root.join("etc").join(rel)
    }

    /// The configured root.
    pub fn root(&self) -> &Path {
        &self.opts.root
    }

    /// Emits PropertiesChanged for the properties `names` of `iface` at `path`, with their new
    /// values read from `props`.
    pub async fn changed(&self, path: &str, iface: &Interface, props: Props, names: &[&str]) {
        let mut props = props;
        props.retain(names);
        self.signals
            .properties_changed(path, iface.name, &props)
            .await;
    }
}

/// The [`Service`] behind all three names.
#[derive(Debug, Clone)]
pub struct Daemon {
    ctx: Arc<Context>,
}

impl Daemon {
    /// A daemon around `ctx`.
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

impl Service for Daemon {
    async fn object(&self, path: &str) -> Option<Vec<&'static Interface>> {
        match path {
            hostname::PATH => Some(vec![&hostname::INTERFACE]),
            timedate::PATH => Some(vec![&timedate::INTERFACE]),
            locale::PATH => Some(vec![&locale::INTERFACE]),
            "/" | "/org" | "/org/freedesktop" => Some(Vec::new()),
            _ => None,
        }
    }

    async fn children(&self, path: &str) -> Vec<String> {
        let names: &[&str] = match path {
            "/" => &["org"],
            "/org" => &["freedesktop"],
            "/org/freedesktop" => &["hostname1", "timedate1", "locale1"],
            _ => &[],
        };
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    async fn properties(
        &self,
        path: &str,
        _iface: &'static Interface,
    ) -> Result<Props, MethodError> {
        match path {
            hostname::PATH => Ok(hostname::properties(&self.ctx)),
            timedate::PATH => Ok(timedate::properties(&self.ctx).await),
            locale::PATH => Ok(locale::properties(&self.ctx)),
            _ => Err(MethodError::new(
                dynamod_dbus::error::UNKNOWN_OBJECT,
                format!("Unknown object '{path}'."),
            )),
        }
    }

    async fn call(
        &self,
        call: Call,
        _iface: &'static Interface,
        method: &'static Method,
    ) -> Result<Reply, MethodError> {
        match call.path() {
            hostname::PATH => hostname::call(&self.ctx, &call, method.name).await,
            timedate::PATH => timedate::call(&self.ctx, &call, method.name).await,
            locale::PATH => locale::call(&self.ctx, &call, method.name).await,
            _ => Err(MethodError::new(
                dynamod_dbus::error::UNKNOWN_OBJECT,
                format!("Unknown object '{}'.", call.path()),
            )),
        }
    }
}

/// Connects, serves the three objects, owns the names, tells the service manager it is ready,
/// and runs until the bus connection closes.
pub async fn run(opts: Options) -> Result<(), dynamod_dbus::BusError> {
    let stream = dynamod_dbus::bus::connect(opts.bus.as_deref()).await?;
    let conn = dynamod_dbus::zbus::Connection::from(&stream);
    let ctx = Arc::new(Context::new(opts));
    ctx.signals.add(conn.clone());
    let serving = tokio::spawn(dynamod_dbus::server::serve(
        stream,
        Arc::new(Daemon::new(Arc::clone(&ctx))),
    ));
    dynamod_dbus::bus::own_names(&conn, &NAMES).await?;
    tracing::info!("serving {}", NAMES.join(", "));
    match dynamod_dbus::notify::notify("READY=1") {
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot notify readiness: {e}"),
    }
    let _ = serving.await;
    Err(dynamod_dbus::BusError::Closed)
}
