//! The daemon: shared context, the objects it serves, and start-up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use dynamod_dbus::error::UNKNOWN_OBJECT;
use dynamod_dbus::object::{Interface, Props, Reply};
use dynamod_dbus::zbus::wire::ObjectPath;
use dynamod_dbus::zbus::{Connection, Message};
use dynamod_dbus::{Call, Method, MethodError, Service, Signals};

use crate::args::Options;
use crate::cgroup::{CgroupError, Cgroups};
use crate::devices::DeviceConfig;
use crate::iface::{MANAGER, SEAT, SESSION, USER};
use crate::paths::{self, Target};
use crate::policy::Caller;
use crate::rundir::RuntimeDirs;
use crate::state::{Seat, Session, State};
use crate::statefiles::StateFiles;
use crate::vt::Vt;
use crate::{manager, procs, props, seat, session, user};

/// The bus name.
pub const NAME: &str = "org.freedesktop.login1";

/// Starting the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A bus operation failed.
    #[error(transparent)]
    Bus(#[from] dynamod_dbus::BusError),
    /// Session cgroups could not be set up.
    #[error("set up session cgroups")]
    Cgroup(#[source] CgroupError),
    /// A configuration value is unusable.
    #[error("{0}")]
    Config(String),
    /// Watching the bus for disconnecting controllers failed.
    #[error("watch the bus for disconnecting clients")]
    Watch(#[source] dynamod_dbus::zbus::Error),
}

/// Everything the objects share.
#[derive(Debug)]
pub struct Context {
    /// The command line.
    pub opts: Options,
    state: Mutex<State>,
    /// Where broadcast signals go.
    pub signals: Signals,
    conn: OnceLock<Connection>,
    /// Session cgroups, when enabled.
    pub cgroups: Option<Cgroups>,
    /// Runtime directories.
    pub rundirs: RuntimeDirs,
    /// Device lookup.
    pub devices: DeviceConfig,
    /// Virtual terminals of seat0, when the machine has them.
    pub vt: Option<Vt>,
    /// The sd-login state files.
    pub statefiles: StateFiles,
    /// Signalled whenever an inhibitor goes away.
    pub inhibitors_changed: tokio::sync::Notify,
    /// Serializes creating and removing runtime directories, so a user's delayed removal can
    /// never unmount the directory of a session that has just started.
    pub rundir_lock: tokio::sync::Mutex<()>,
    /// procfs.
    pub proc_root: PathBuf,
}

impl Context {
    /// A context for `opts`: sets up cgroups and the seat, without touching the bus.
    pub fn new(opts: Options) -> Result<Self, StartError> {
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| crate::rundir::mem_total(&t))
            .unwrap_or(1 << 30);
        let size = crate::rundir::parse_size(&opts.runtime_dir_size, mem)
            .map_err(|e| StartError::Config(format!("--runtime-dir-size: {e}")))?;
        let cgroups = Cgroups::setup(&opts.cgroup_root, Path::new("/proc/self/mountinfo"))
            .map_err(StartError::Cgroup)?;
        if let Some(cg) = &cgroups {
            cg.remove_stale();
        }
        let vt = Vt::detect(&opts.dev, &opts.sysfs);
        let devices = DeviceConfig {
            dev: opts.dev.clone(),
            sys: opts.sysfs.clone(),
            udev_data: opts.udev_data.clone(),
            allowed: opts.allowed_devices.clone(),
        };
        let rundirs = RuntimeDirs {
            root: opts.runtime_dir_root.clone(),
            size,
            inodes: (size / 4096).max(1024),
        };
        let mut state = State::new();
        state.seats.insert(
            "seat0".to_owned(),
            Seat {
                id: "seat0".to_owned(),
                active: None,
                can_tty: vt.is_some(),
                can_graphical: has_graphics(&opts.sysfs),
            },
        );
        let statefiles = StateFiles::new(opts.state_dir.clone());
        Ok(Self {
            opts,
            state: Mutex::new(state),
            signals: Signals::new(),
            conn: OnceLock::new(),
            cgroups,
            rundirs,
            devices,
            vt,
            statefiles,
            inhibitors_changed: tokio::sync::Notify::new(),
            rundir_lock: tokio::sync::Mutex::new(()),
            proc_root: PathBuf::from("/proc"),
        })
    }

    /// The state, locked. Never held across an await.
    pub fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves data that is still consistent enough to serve
        // (every mutation is a few assignments), so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bus connection (for signals to one peer).
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.get()
    }

    /// Records the bus connection.
    pub fn set_connection(&self, conn: Connection) {
        self.signals.add(conn.clone());
        let _ = self.conn.set(conn);
    }

    /// The session `pid` belongs to: through its cgroup, else by walking up to a session
    /// leader.
    pub fn session_of_pid(&self, pid: u32) -> Option<String> {
        if let Some(cg) = &self.cgroups
            && let Ok(text) =
                std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup"))
            && let Some(id) = cg.session_of(&text)
            && self.state().sessions.contains_key(&id)
        {
            return Some(id);
        }
        let chain = procs::ancestry(&self.proc_root, pid);
        let st = self.state();
        chain.iter().find_map(|p| {
            st.sessions
                .values()
                .find(|s| {
                    !s.closing && s.leader == p.pid && s.leader_start.is_none_or(|t| t == p.start)
                })
                .map(|s| s.id.clone())
        })
    }

    /// Who is calling `call`: uid, pid and session (its process's, else its user's display
    /// session).
    pub async fn caller(&self, call: &Call) -> Result<Caller, MethodError> {
        let uid = call.caller().await?.uid;
        let pid = dynamod_dbus::auth::caller_pid(call.connection(), call.message())
            .await
            .ok()
            .flatten();
        let session = pid
            .and_then(|p| self.session_of_pid(p))
            .or_else(|| self.state().user_display(uid));
        Ok(Caller { uid, pid, session })
    }

    /// Sends a signal to one peer (a session's controller).
    pub async fn unicast<B>(&self, dest: &str, path: &str, iface: &str, member: &str, body: &B)
    where
        B: serde::Serialize + dynamod_dbus::zbus::wire::DynamicType,
    {
        let Some(conn) = self.connection() else {
            return;
        };
        if let Err(e) = conn
            .emit_signal(Some(dest), path, iface, member, body)
            .await
        {
            tracing::debug!(signal = member, dest, "cannot send a signal: {e}");
        }
    }

    /// Emits a Manager signal.
    pub async fn manager_signal<B>(&self, member: &str, body: &B)
    where
        B: serde::Serialize + dynamod_dbus::zbus::wire::DynamicType,
    {
        self.signals
            .emit(paths::MANAGER, MANAGER.name, member, body)
            .await;
    }

    /// PropertiesChanged for `names` of the Manager.
    pub async fn manager_changed(&self, names: &[&str]) {
        let mut p = props::manager(self, &self.state());
        p.retain(names);
        self.signals
            .properties_changed(paths::MANAGER, MANAGER.name, &p)
            .await;
    }

    /// PropertiesChanged for `names` of session `id` (nothing if it is gone).
    pub async fn session_changed(&self, id: &str, names: &[&str]) {
        let p = {
            let st = self.state();
            st.sessions.get(id).map(|s| props::session(self, &st, s))
        };
        if let Some(mut p) = p {
            p.retain(names);
            self.signals
                .properties_changed(&paths::session(id), SESSION.name, &p)
                .await;
        }
    }

    /// PropertiesChanged for `names` of seat `id`.
    pub async fn seat_changed(&self, id: &str, names: &[&str]) {
        let p = {
            let st = self.state();
            st.seats.get(id).map(|s| props::seat(&st, s))
        };
        if let Some(mut p) = p {
            p.retain(names);
            self.signals
                .properties_changed(&paths::seat(id), SEAT.name, &p)
                .await;
        }
    }

    /// PropertiesChanged for `names` of user `uid`.
    pub async fn user_changed(&self, uid: u32, names: &[&str]) {
        let p = {
            let st = self.state();
            st.users.get(&uid).map(|u| props::user(&st, u))
        };
        if let Some(mut p) = p {
            p.retain(names);
            self.signals
                .properties_changed(&paths::user(uid), USER.name, &p)
                .await;
        }
    }

    /// Rewrites the sd-login state files from the current state.
    pub fn save(&self) {
        let st = self.state();
        self.statefiles.write_all(&st);
    }
}

/// Whether the machine has a DRM card (`<sysfs>/class/drm/card*`).
fn has_graphics(sysfs: &Path) -> bool {
    std::fs::read_dir(sysfs.join("class/drm"))
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("card") && !n.contains('-')
            })
        })
        .unwrap_or(false)
}

/// The session behind an escaped label.
pub fn session_by_label<'a>(st: &'a State, label: &str) -> Option<&'a Session> {
    st.sessions
        .values()
        .find(|s| paths::escape_label(&s.id) == label)
}

/// The seat id behind an escaped label.
pub fn seat_by_label(st: &State, label: &str) -> Option<String> {
    st.seats
        .keys()
        .find(|id| paths::escape_label(id) == label)
        .cloned()
}

/// The [`Service`] behind `org.freedesktop.login1`.
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

fn unknown_object(path: &str) -> MethodError {
    MethodError::new(UNKNOWN_OBJECT, format!("Unknown object '{path}'."))
}

impl Service for Daemon {
    async fn resolve(&self, path: String, conn: &Connection, msg: &Message) -> String {
        let alias = |dir: &str| {
            path.strip_prefix(dir)
                .and_then(|r| r.strip_prefix('/'))
                .filter(|r| *r == "self" || *r == "auto")
                .map(str::to_owned)
        };
        let (dir, which) = if let Some(w) = alias(paths::SESSION_DIR) {
            (paths::SESSION_DIR, w)
        } else if let Some(w) = alias(paths::SEAT_DIR) {
            (paths::SEAT_DIR, w)
        } else if let Some(w) = alias(paths::USER_DIR).filter(|w| w == "self") {
            (paths::USER_DIR, w)
        } else {
            return path;
        };
        let uid = dynamod_dbus::auth::caller(conn, msg)
            .await
            .ok()
            .map(|c| c.uid);
        let pid = dynamod_dbus::auth::caller_pid(conn, msg)
            .await
            .ok()
            .flatten();
        let own = pid.and_then(|p| self.ctx.session_of_pid(p));
        let session = match which.as_str() {
            "auto" => own.or_else(|| uid.and_then(|u| self.ctx.state().user_display(u))),
            _ => own,
        };
        let resolved = match dir {
            paths::SESSION_DIR => session.map(|s| paths::session(&s)),
            paths::SEAT_DIR => session
                .and_then(|s| self.ctx.state().sessions.get(&s)?.seat.clone())
                .map(|seat| paths::seat(&seat)),
            _ => uid
                .filter(|u| self.ctx.state().users.contains_key(u))
                .map(paths::user),
        };
        resolved.unwrap_or(path)
    }

    async fn object(&self, path: &str) -> Option<Vec<&'static Interface>> {
        let st = self.ctx.state();
        match paths::classify(path) {
            Target::Manager => Some(vec![&MANAGER]),
            Target::Session(label) => session_by_label(&st, &label).map(|_| vec![&SESSION]),
            Target::Seat(label) => seat_by_label(&st, &label).map(|_| vec![&SEAT]),
            Target::User(uid) => st.users.contains_key(&uid).then(|| vec![&USER]),
            Target::Node => Some(Vec::new()),
            Target::Unknown => None,
        }
    }

    async fn children(&self, path: &str) -> Vec<String> {
        let st = self.ctx.state();
        match path {
            "/" => vec!["org".into()],
            "/org" => vec!["freedesktop".into()],
            "/org/freedesktop" => vec!["login1".into()],
            paths::MANAGER => vec!["session".into(), "seat".into(), "user".into()],
            paths::SESSION_DIR => st
                .sessions_in_order()
                .iter()
                .map(|s| paths::escape_label(&s.id))
                .collect(),
            paths::SEAT_DIR => st.seats.keys().map(|s| paths::escape_label(s)).collect(),
            paths::USER_DIR => st.users.keys().map(|u| format!("_{u}")).collect(),
            _ => Vec::new(),
        }
    }

    async fn properties(
        &self,
        path: &str,
        _iface: &'static Interface,
    ) -> Result<Props, MethodError> {
        let st = self.ctx.state();
        match paths::classify(path) {
            Target::Manager => Ok(props::manager(&self.ctx, &st)),
            Target::Session(label) => session_by_label(&st, &label)
                .map(|s| props::session(&self.ctx, &st, s))
                .ok_or_else(|| unknown_object(path)),
            Target::Seat(label) => seat_by_label(&st, &label)
                .and_then(|id| st.seats.get(&id))
                .map(|s| props::seat(&st, s))
                .ok_or_else(|| unknown_object(path)),
            Target::User(uid) => st
                .users
                .get(&uid)
                .map(|u| props::user(&st, u))
                .ok_or_else(|| unknown_object(path)),
            Target::Node | Target::Unknown => Err(unknown_object(path)),
        }
    }

    async fn call(
        &self,
        call: Call,
        iface: &'static Interface,
        method: &'static Method,
    ) -> Result<Reply, MethodError> {
        let target = paths::classify(call.path());
        let ctx = &self.ctx;
        match (iface.name, target) {
            (n, Target::Manager) if n == MANAGER.name => {
                manager::call(ctx, &call, method.name).await
            }
            (n, Target::Session(label)) if n == SESSION.name => {
                let id = session_by_label(&ctx.state(), &label)
                    .map(|s| s.id.clone())
                    .ok_or_else(|| unknown_object(call.path()))?;
                session::call(ctx, &call, &id, method.name).await
            }
            (n, Target::Seat(label)) if n == SEAT.name => {
                let id = seat_by_label(&ctx.state(), &label)
                    .ok_or_else(|| unknown_object(call.path()))?;
                seat::call(ctx, &call, &id, method.name).await
            }
            (n, Target::User(uid)) if n == USER.name => {
                user::call(ctx, &call, uid, method.name).await
            }
            _ => Err(unknown_object(call.path())),
        }
    }
}

/// Connects, serves the objects, owns the name, announces the seat, tells the service manager
/// it is ready, and runs until the bus connection closes.
pub async fn run(opts: Options) -> Result<(), StartError> {
    let ctx = Arc::new(Context::new(opts)?);
    let stream = dynamod_dbus::bus::connect(ctx.opts.bus.as_deref()).await?;
    let conn = Connection::from(&stream);
    ctx.set_connection(conn.clone());
    let watcher = crate::watch::name_watcher(&conn)
        .await
        .map_err(StartError::Watch)?;
    tokio::spawn(crate::watch::controllers(Arc::clone(&ctx), watcher));
    tokio::spawn(crate::watch::closing_sessions(Arc::clone(&ctx)));
    if let Some(vt) = &ctx.vt {
        tokio::spawn(crate::watch::active_vt(Arc::clone(&ctx), vt.clone()));
    }
    let serving = tokio::spawn(dynamod_dbus::server::serve(
        stream,
        Arc::new(Daemon::new(Arc::clone(&ctx))),
    ));
    dynamod_dbus::bus::own_names(&conn, &[NAME]).await?;
    ctx.save();
    let seats: Vec<String> = ctx.state().seats.keys().cloned().collect();
    for s in seats {
        ctx.manager_signal("SeatNew", &(s.as_str(), seat_path(&s)))
            .await;
    }
    tracing::info!(
        cgroups = ctx
            .cgroups
            .as_ref()
            .map(|c| c.root().display().to_string())
            .unwrap_or_else(|| "none".into()),
        vt = ctx.vt.is_some(),
        "serving {NAME}"
    );
    if let Err(e) = dynamod_dbus::notify::notify("READY=1") {
        tracing::warn!("cannot notify readiness: {e}");
    }
    let _ = serving.await;
    Err(StartError::Bus(dynamod_dbus::BusError::Closed))
}

/// An object path value for bodies and properties (logind's paths are valid by
/// construction: escaped labels only).
pub fn object_path(path: String) -> ObjectPath<'static> {
    ObjectPath::from_string_unchecked(path)
}

/// The object path of seat `id`, as a value.
pub fn seat_path(id: &str) -> ObjectPath<'static> {
    object_path(paths::seat(id))
}

/// The object path of session `id`, as a value.
pub fn session_path(id: &str) -> ObjectPath<'static> {
    object_path(paths::session(id))
}

/// The object path of user `uid`, as a value.
pub fn user_path(uid: u32) -> ObjectPath<'static> {
    object_path(paths::user(uid))
}
