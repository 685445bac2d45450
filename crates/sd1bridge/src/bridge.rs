//! The bridge: the systemd1 objects backed by svmgr, the jobs that carry out starts and stops,
//! and the connections (the bus and `/run/systemd/private`) it serves them on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dynamod_dbus::object::{Interface, Props, Reply};
use dynamod_dbus::svmgr::{self, SvmgrError};
use dynamod_dbus::zbus::wire::ObjectPath;
use dynamod_dbus::{Call, Method, MethodError, Service, Signals};
use dynamod_proto::{Request, ServiceDetail, ServiceState, ShutdownKind};

use crate::args::Options;
use crate::interfaces::{JOB, MANAGER, MANAGER_PATH, SERVICE, UNIT};
use crate::jobs::{JobInfo, Jobs};
use crate::units::{self, Clocks, object_path, service_name, unit_name, unit_path};
use crate::{glob, procs};

/// The bus name the bridge owns.
pub const NAME: &str = "org.freedesktop.systemd1";

const UNIT_DIR: &str = "/org/freedesktop/systemd1/unit";
const JOB_DIR: &str = "/org/freedesktop/systemd1/job";

/// Job modes systemd accepts for `StartUnit` and friends.
const JOB_MODES: [&str; 9] = [
    "replace",
    "fail",
    "isolate",
    "ignore-dependencies",
    "ignore-requirements",
    "flush",
    "triggering",
    "replace-irreversibly",
    "restart-dependencies",
];

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    Start,
    Stop,
    Restart,
    TryRestart,
}

impl JobKind {
    fn type_name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::TryRestart => "try-restart",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Start => "start units",
            Self::Stop => "stop units",
            Self::Restart | Self::TryRestart => "restart units",
        }
    }
}

fn sd_error(name: &str, message: impl Into<String>) -> MethodError {
    MethodError::new(&format!("org.freedesktop.systemd1.{name}"), message)
}

fn no_such_unit(unit: &str) -> MethodError {
    sd_error("NoSuchUnit", format!("Unit {unit} not found."))
}

fn svmgr_failed(e: SvmgrError) -> MethodError {
    let cause = std::error::Error::source(&e)
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    MethodError::failed(format!("dynamod-svmgr: {e}{cause}"))
}

fn check_unit_name(unit: &str) -> Result<(), MethodError> {
    let ok = !unit.is_empty()
        && unit.len() <= 256
        && unit.contains('.')
        && !unit.contains('/')
        && !unit.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(MethodError::invalid_args(format!(
            "Unit name {unit} is not valid."
        )))
    }
}

/// Shared state.
#[derive(Debug)]
pub struct Context {
    opts: Options,
    signals: Signals,
    jobs: Jobs,
    proc_root: PathBuf,
}

/// The [`Service`] behind `org.freedesktop.systemd1`.
#[derive(Debug, Clone)]
pub struct Bridge {
    ctx: Arc<Context>,
}

impl Bridge {
    /// A bridge for `opts`.
    pub fn new(opts: Options) -> Self {
        Self {
            ctx: Arc::new(Context {
                opts,
                signals: Signals::new(),
                jobs: Jobs::new(),
                proc_root: PathBuf::from("/proc"),
            }),
        }
    }

    /// The connections signals go to.
    pub fn signals(&self) -> &Signals {
        &self.ctx.signals
    }

    fn socket(&self) -> &Path {
        &self.ctx.opts.control_socket
    }

    async fn detail(&self, service: &str) -> Result<Option<ServiceDetail>, MethodError> {
        svmgr::status(self.socket(), service)
            .await
            .map_err(svmgr_failed)
    }

    /// The service behind `unit`, or `NoSuchUnit`.
    async fn existing(&self, unit: &str) -> Result<(String, ServiceDetail), MethodError> {
        let service = service_name(unit).ok_or_else(|| no_such_unit(unit))?;
        let detail = self
            .detail(service)
            .await?
            .ok_or_else(|| no_such_unit(unit))?;
        Ok((service.to_owned(), detail))
    }

    fn job_ref(&self, unit: &str) -> Option<(u32, String)> {
        self.ctx
            .jobs
            .for_unit(unit)
            .map(|j| (j.id, units::job_path(j.id)))
    }

    fn cgroup_of(detail: &ServiceDetail) -> String {
        detail
            .cgroup
            .as_deref()
            .map(|c| procs::cgroup_display(Path::new(c), &procs::cgroup2_mounts()))
            .unwrap_or_default()
    }

    async fn manager_properties(&self) -> Props {
        let list = svmgr::list(self.socket()).await.ok();
        let state = svmgr::system_state(self.socket()).await.ok();
        let clocks = Clocks::now();
        let services = list.as_deref().unwrap_or_default();
        let failed = services
            .iter()
            .filter(|s| s.state == ServiceState::Failed)
            .count() as u32;
        let settled = services
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    ServiceState::Running
                        | ServiceState::Done
                        | ServiceState::Failed
                        | ServiceState::Blocked
                        | ServiceState::Invalid
                        | ServiceState::Stopped
                )
            })
            .count();
        let progress = match &state {
            Some(s) if s.startup_complete => 1.0,
            _ if services.is_empty() => 0.0,
            _ => settled as f64 / services.len() as f64,
        };
        let userspace = state
            .as_ref()
            .map_or(0, |s| clocks.realtime_us.saturating_sub(s.uptime_ms * 1000));
        let (user_rt, user_mt) = clocks.pair(userspace);
        let (active_jobs, installed, failed_jobs) = self.ctx.jobs.counts();
        let unit_path = vec!["/etc/dynamod/services".to_owned()];
        let mut p = Props::new();
        p.add("Version", concat!("dynamod ", env!("CARGO_PKG_VERSION")))
            .add("Features", "")
            .add(
                "Virtualization",
                dynamod_dbus::platform::virtualization(&Default::default()),
            )
            .add("Architecture", dynamod_dbus::platform::architecture())
            .add("Tainted", "");
        for name in ["Firmware", "Loader", "Kernel", "InitRD", "Finish"] {
            let (rt, mt): (&'static str, &'static str) = match name {
                "Firmware" => ("FirmwareTimestamp", "FirmwareTimestampMonotonic"),
                "Loader" => ("LoaderTimestamp", "LoaderTimestampMonotonic"),
                "Kernel" => ("KernelTimestamp", "KernelTimestampMonotonic"),
                "InitRD" => ("InitRDTimestamp", "InitRDTimestampMonotonic"),
                _ => ("FinishTimestamp", "FinishTimestampMonotonic"),
            };
            p.add(rt, 0u64).add(mt, 0u64);
        }
        p.add("UserspaceTimestamp", user_rt)
            .add("UserspaceTimestampMonotonic", user_mt)
            .add("NNames", services.len() as u32)
            .add("NFailedUnits", failed)
            .add("NJobs", active_jobs)
            .add("NInstalledJobs", installed)
            .add("NFailedJobs", failed_jobs)
            .add("Progress", progress)
            .add("Environment", Vec::<String>::new())
            .add("ConfirmSpawn", false)
            .add("ShowStatus", false)
            .add("UnitPath", unit_path)
            .add("DefaultStandardOutput", "journal")
            .add("DefaultStandardError", "inherit")
            .add("ControlGroup", "")
            .add(
                "SystemState",
                // svmgr's states are systemd's words; "offline" when svmgr cannot be reached.
                state.map_or_else(|| "offline".to_owned(), |s| s.state),
            )
            .add("ExitCode", 0u8)
            .add("DefaultTimeoutStartUSec", 30_000_000u64)
            .add("DefaultTimeoutStopUSec", 10_000_000u64)
            .add("DefaultRestartUSec", 1_000_000u64)
            .add("DefaultStartLimitIntervalUSec", 60_000_000u64)
            .add("DefaultStartLimitBurst", 5u32);
        p
    }

    async fn unit_rows(&self) -> Result<Vec<units::UnitRow>, MethodError> {
        let list = svmgr::list(self.socket()).await.map_err(svmgr_failed)?;
        Ok(list
            .iter()
            .map(|s| {
                let unit = unit_name(&s.name);
                let job = self
                    .ctx
                    .jobs
                    .for_unit(&unit)
                    .map(|j| (j.id, j.kind.to_owned(), units::job_path(j.id)));
                units::unit_row(&s.name, s.state, job)
            })
            .collect())
    }

    async fn processes(&self, unit: &str) -> Result<Vec<(String, u32, String)>, MethodError> {
        // The root slice holds everything: what `systemctl status` shows without a unit.
        if unit == "-.slice" {
            let list = svmgr::list(self.socket()).await.map_err(svmgr_failed)?;
            let mut all = Vec::new();
            for s in list.iter().filter(|s| s.pid.is_some()) {
                if let Ok(procs) = Box::pin(self.processes(&unit_name(&s.name))).await {
                    all.extend(procs.into_iter().map(|(cg, pid, cmd)| {
                        (if cg.is_empty() { "/".to_owned() } else { cg }, pid, cmd)
                    }));
                }
            }
            return Ok(all);
        }
        let (_, detail) = self.existing(unit).await?;
        let cgroup = Self::cgroup_of(&detail);
        let pids = self.unit_pids(&detail);
        Ok(pids
            .into_iter()
            .filter_map(|pid| {
                let cmd = procs::cmdline(&self.ctx.proc_root, pid);
                u32::try_from(pid).ok().map(|p| (cgroup.clone(), p, cmd))
            })
            .collect())
    }

    /// The unit's processes: its cgroup's, else its main process's session.
    fn unit_pids(&self, detail: &ServiceDetail) -> Vec<i32> {
        if let Some(cg) = detail.cgroup.as_deref() {
            let pids = procs::cgroup_procs(Path::new(cg));
            if !pids.is_empty() {
                return pids;
            }
        }
        match detail.summary.pid {
            Some(main) => {
                let mut pids = procs::session_members(&self.ctx.proc_root, main);
                if !pids.contains(&main) {
                    pids.insert(0, main);
                }
                pids
            }
            None => Vec::new(),
        }
    }

    async fn enqueue(
        &self,
        call: &Call,
        unit: &str,
        mode: &str,
        kind: JobKind,
    ) -> Result<Reply, MethodError> {
        if !JOB_MODES.contains(&mode) {
            return Err(MethodError::invalid_args(format!(
                "Job mode {mode} invalid."
            )));
        }
        call.require_root(kind.verb()).await?;
        if mode == "isolate" {
            return Err(MethodError::not_supported(
                "Job mode isolate is not supported by dynamod.",
            ));
        }
        check_unit_name(unit)?;
        if let Some(shutdown) = shutdown_kind(unit) {
            if kind != JobKind::Start {
                return Err(sd_error(
                    "JobTypeNotApplicable",
                    format!(
                        "Job type {} is not applicable for unit {unit}.",
                        kind.type_name()
                    ),
                ));
            }
            let req = Request::Shutdown { kind: shutdown };
            return Ok(self.job_reply(unit, "start", Some(req)));
        }
        let (service, detail) = self.existing(unit).await?;
        if detail.summary.state == ServiceState::Invalid && kind != JobKind::Stop {
            return Err(sd_error(
                "BadUnitSetting",
                format!(
                    "Unit {unit} has a bad unit file setting: {}",
                    detail.summary.reason.unwrap_or_default()
                ),
            ));
        }
        let names = vec![service];
        let request = match kind {
            JobKind::Start => Some(Request::Start {
                names,
                no_block: false,
            }),
            JobKind::Stop => Some(Request::Stop {
                names,
                no_block: false,
            }),
            JobKind::Restart => Some(Request::Restart {
                names,
                no_block: false,
            }),
            // try-restart of a unit that is not running has nothing to do: the job is done.
            JobKind::TryRestart => {
                let (active, _) = units::active_state(detail.summary.state);
                matches!(active, "active" | "activating").then_some(Request::Restart {
                    names,
                    no_block: false,
                })
            }
        };
        Ok(self.job_reply(unit, kind.type_name(), request))
    }

    /// Registers a job, answers with its path, and once the answer is sent announces it, runs
    /// `request` (`None`: nothing to do) and announces its end.
    fn job_reply(&self, unit: &str, kind: &'static str, request: Option<Request>) -> Reply {
        let job = self.ctx.jobs.begin(unit, kind);
        let path = units::job_path(job.id);
        let me = self.clone();
        Reply::new(object_path(path)).then(async move { me.run_job(job, request).await })
    }

    async fn run_job(&self, job: JobInfo, request: Option<Request>) {
        let path = object_path(units::job_path(job.id));
        self.ctx
            .signals
            .emit(
                MANAGER_PATH,
                MANAGER.name,
                "JobNew",
                &(job.id, path.clone(), job.unit.as_str()),
            )
            .await;
        let result = match request {
            None => "done",
            Some(req) => match svmgr::request(self.socket(), req, None).await {
                Ok(_) => "done",
                Err(e) => {
                    tracing::info!(unit = %job.unit, job = job.id, "job failed: {e}");
                    "failed"
                }
            },
        };
        self.ctx.jobs.finish(job.id, result != "done");
        self.ctx
            .signals
            .emit(
                MANAGER_PATH,
                MANAGER.name,
                "JobRemoved",
                &(job.id, path, job.unit.as_str(), result),
            )
            .await;
    }

    async fn kill(
        &self,
        call: &Call,
        unit: &str,
        whom: &str,
        signal: i32,
    ) -> Result<Reply, MethodError> {
        call.require_root("kill unit processes").await?;
        if !(1..=64).contains(&signal) {
            return Err(MethodError::invalid_args("Signal number out of range."));
        }
        let (service, detail) = self.existing(unit).await?;
        let whom = whom.strip_suffix("-fail").unwrap_or(whom);
        match whom {
            "main" => {
                let pid = detail
                    .summary
                    .pid
                    .ok_or_else(|| sd_error("NoSuchProcess", "No main process to kill"))?;
                let failed = |e: std::io::Error| {
                    MethodError::failed(format!("Failed to kill PID {pid}: {e}"))
                };
                // The pidfd is opened first and svmgr must still report this PID afterwards,
                // so a recycled PID is never signalled.
                let fd = dynamod_sys::process::pidfd_open(pid).map_err(failed)?;
                let now = self.detail(&service).await?.and_then(|d| d.summary.pid);
                if now != Some(pid) {
                    return Err(sd_error("NoSuchProcess", "The main process just changed"));
                }
                dynamod_sys::process::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), signal)
                    .map_err(failed)?;
                Ok(Reply::empty())
            }
            "control" => Err(sd_error("NoSuchProcess", "No control process to kill")),
            "all" => {
                let cgroup = detail.cgroup.clone();
                let main = detail.summary.pid;
                let proc_root = self.ctx.proc_root.clone();
                for pid in self.unit_pids(&detail) {
                    let proc_root = proc_root.clone();
                    let cgroup = cgroup.clone();
                    let member = move || match (&cgroup, main) {
                        (Some(cg), _) => procs::cgroup_procs(Path::new(cg)).contains(&pid),
                        (None, Some(m)) => {
                            pid == m || procs::stat(&proc_root, pid).is_some_and(|s| s.sid == m)
                        }
                        (None, None) => false,
                    };
                    if let Err(e) = procs::signal(pid, signal, member) {
                        tracing::debug!(pid, "cannot signal: {e}");
                    }
                }
                Ok(Reply::empty())
            }
            other => Err(MethodError::invalid_args(format!(
                "Invalid whom argument: {other}"
            ))),
        }
    }

    async fn unit_by_pid(&self, call: &Call, pid: u32) -> Result<Reply, MethodError> {
        let pid = if pid == 0 {
            dynamod_dbus::auth::caller_pid(call.connection(), call.message())
                .await
                .ok()
                .flatten()
                .ok_or_else(|| MethodError::failed("Cannot find the caller's PID."))?
        } else {
            pid
        };
        let list = svmgr::list(self.socket()).await.map_err(svmgr_failed)?;
        let mains: Vec<(i32, String)> = list
            .iter()
            .filter_map(|s| s.pid.map(|p| (p, s.name.clone())))
            .collect();
        let pid_i = i32::try_from(pid).map_err(|_| MethodError::invalid_args("Invalid PID."))?;
        match procs::owner(&self.ctx.proc_root, pid_i, &mains) {
            Some(service) => Ok(Reply::new(object_path(unit_path(&unit_name(&service))))),
            None => Err(sd_error(
                "NoUnitForPID",
                format!("PID {pid} does not belong to any loaded unit."),
            )),
        }
    }

    async fn simple_svmgr(
        &self,
        call: &Call,
        what: &str,
        req: Request,
    ) -> Result<Reply, MethodError> {
        call.require_root(what).await?;
        svmgr::request(self.socket(), req, Some(svmgr::QUICK_TIMEOUT))
            .await
            .map_err(svmgr_failed)?;
        Ok(Reply::empty())
    }

    async fn manager_call(&self, call: &Call, name: &str) -> Result<Reply, MethodError> {
        match name {
            "GetUnit" => {
                let unit: String = call.args()?;
                check_unit_name(&unit)?;
                if shutdown_kind(&unit).is_none() {
                    self.existing(&unit)
                        .await
                        .map_err(|_| sd_error("NoSuchUnit", format!("Unit {unit} not loaded.")))?;
                }
                Ok(Reply::new(object_path(unit_path(&unit))))
            }
            "LoadUnit" => {
                let unit: String = call.args()?;
                check_unit_name(&unit)?;
                Ok(Reply::new(object_path(unit_path(&unit))))
            }
            "GetUnitByPID" => {
                let pid: u32 = call.args()?;
                self.unit_by_pid(call, pid).await
            }
            "StartUnit"
            | "StopUnit"
            | "RestartUnit"
            | "TryRestartUnit"
            | "ReloadOrRestartUnit"
            | "ReloadOrTryRestartUnit" => {
                let (unit, mode): (String, String) = call.args()?;
                let kind = match name {
                    "StartUnit" => JobKind::Start,
                    "StopUnit" => JobKind::Stop,
                    "RestartUnit" | "ReloadOrRestartUnit" => JobKind::Restart,
                    _ => JobKind::TryRestart,
                };
                self.enqueue(call, &unit, &mode, kind).await
            }
            "ReloadUnit" => {
                let (unit, _mode): (String, String) = call.args()?;
                call.require_root("reload units").await?;
                self.existing(&unit).await?;
                Err(sd_error(
                    "JobTypeNotApplicable",
                    format!("Job type reload is not applicable for unit {unit}."),
                ))
            }
            "KillUnit" => {
                let (unit, whom, signal): (String, String, i32) = call.args()?;
                self.kill(call, &unit, &whom, signal).await
            }
            "ResetFailedUnit" | "ResetFailed" | "ClearJobs" => {
                call.require_root("reset units and jobs").await?;
                Err(MethodError::not_supported(format!(
                    "{name} is not supported by dynamod: svmgr keeps a failed service failed \
                     until it is started again."
                )))
            }
            "GetUnitProcesses" => {
                let unit: String = call.args()?;
                Ok(Reply::new(self.processes(&unit).await?))
            }
            "GetJob" => {
                let id: u32 = call.args()?;
                match self.ctx.jobs.get(id) {
                    Some(j) => Ok(Reply::new(object_path(units::job_path(j.id)))),
                    None => Err(sd_error("NoSuchJob", format!("Job {id} does not exist."))),
                }
            }
            "CancelJob" => {
                let id: u32 = call.args()?;
                call.require_root("cancel jobs").await?;
                if self.ctx.jobs.get(id).is_none() {
                    return Err(sd_error("NoSuchJob", format!("Job {id} does not exist.")));
                }
                Err(MethodError::not_supported(
                    "Cancelling a job is not supported by dynamod: svmgr finishes what it started.",
                ))
            }
            "ListUnits" => Ok(Reply::new(self.unit_rows().await?)),
            "ListUnitsFiltered" | "ListUnitsByPatterns" => {
                let (states, patterns): (Vec<String>, Vec<String>) = if name == "ListUnitsFiltered"
                {
                    (call.args()?, Vec::new())
                } else {
                    call.args()?
                };
                let rows = self.unit_rows().await?;
                Ok(Reply::new(filter_rows(rows, &states, &patterns)))
            }
            "ListUnitsByNames" => {
                let names: Vec<String> = call.args()?;
                let rows = self.unit_rows().await?;
                let out: Vec<units::UnitRow> = names
                    .iter()
                    .map(|n| {
                        rows.iter()
                            .find(|r| &r.0 == n)
                            .cloned()
                            .unwrap_or_else(|| not_found_row(n))
                    })
                    .collect();
                Ok(Reply::new(out))
            }
            "ListJobs" => {
                let jobs: Vec<(
                    u32,
                    String,
                    String,
                    String,
                    ObjectPath<'static>,
                    ObjectPath<'static>,
                )> = self
                    .ctx
                    .jobs
                    .list()
                    .into_iter()
                    .map(|j| {
                        (
                            j.id,
                            j.unit.clone(),
                            j.kind.to_owned(),
                            "running".to_owned(),
                            object_path(units::job_path(j.id)),
                            object_path(unit_path(&j.unit)),
                        )
                    })
                    .collect();
                Ok(Reply::new(jobs))
            }
            "Subscribe" | "Unsubscribe" => Ok(Reply::empty()),
            "Reload" => {
                call.require_root("reload the service manager").await?;
                let signals = &self.ctx.signals;
                signals
                    .emit(MANAGER_PATH, MANAGER.name, "Reloading", &true)
                    .await;
                let r = svmgr::request(self.socket(), Request::Reload, Some(svmgr::QUICK_TIMEOUT))
                    .await;
                signals
                    .emit(MANAGER_PATH, MANAGER.name, "Reloading", &false)
                    .await;
                r.map_err(svmgr_failed)?;
                Ok(Reply::empty())
            }
            "PowerOff" | "Reboot" | "Halt" => {
                let kind = match name {
                    "PowerOff" => ShutdownKind::Poweroff,
                    "Reboot" => ShutdownKind::Reboot,
                    _ => ShutdownKind::Halt,
                };
                self.simple_svmgr(call, "shut the system down", Request::Shutdown { kind })
                    .await
            }
            "GetUnitFileState" => {
                let file: String = call.args()?;
                let unit = Path::new(&file)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let unit = unit.strip_suffix(".toml").map_or(unit.clone(), unit_name);
                self.existing(&unit)
                    .await
                    .map_err(|_| no_such_unit(&unit))?;
                Ok(Reply::new("static"))
            }
            other => Err(MethodError::new(
                dynamod_dbus::error::UNKNOWN_METHOD,
                format!("Unknown method '{other}'."),
            )),
        }
    }

    async fn unit_call(
        &self,
        call: &Call,
        unit: &str,
        iface: &Interface,
        name: &str,
    ) -> Result<Reply, MethodError> {
        if iface.name == SERVICE.name {
            // GetProcesses is the only Service method.
            return Ok(Reply::new(self.processes(unit).await?));
        }
        match name {
            "Start" | "Stop" | "Restart" | "TryRestart" | "ReloadOrRestart"
            | "ReloadOrTryRestart" => {
                let mode: String = call.args()?;
                let kind = match name {
                    "Start" => JobKind::Start,
                    "Stop" => JobKind::Stop,
                    "Restart" | "ReloadOrRestart" => JobKind::Restart,
                    _ => JobKind::TryRestart,
                };
                self.enqueue(call, unit, &mode, kind).await
            }
            "Reload" => {
                call.require_root("reload units").await?;
                Err(sd_error(
                    "JobTypeNotApplicable",
                    format!("Job type reload is not applicable for unit {unit}."),
                ))
            }
            "Kill" => {
                let (whom, signal): (String, i32) = call.args()?;
                self.kill(call, unit, &whom, signal).await
            }
            "ResetFailed" => {
                call.require_root("reset units").await?;
                Err(MethodError::not_supported(
                    "ResetFailed is not supported by dynamod.",
                ))
            }
            other => Err(MethodError::new(
                dynamod_dbus::error::UNKNOWN_METHOD,
                format!("Unknown method '{other}'."),
            )),
        }
    }
}

fn shutdown_kind(unit: &str) -> Option<ShutdownKind> {
    match unit {
        "poweroff.target" => Some(ShutdownKind::Poweroff),
        "reboot.target" => Some(ShutdownKind::Reboot),
        "halt.target" => Some(ShutdownKind::Halt),
        _ => None,
    }
}

fn not_found_row(unit: &str) -> units::UnitRow {
    (
        unit.to_owned(),
        unit.to_owned(),
        "not-found".to_owned(),
        "inactive".to_owned(),
        "dead".to_owned(),
        String::new(),
        object_path(unit_path(unit)),
        0,
        String::new(),
        object_path("/".to_owned()),
    )
}

/// Rows whose load, active or sub state is in `states` and whose name matches one of
/// `patterns` (an empty list matches everything).
fn filter_rows(
    rows: Vec<units::UnitRow>,
    states: &[String],
    patterns: &[String],
) -> Vec<units::UnitRow> {
    rows.into_iter()
        .filter(|r| states.is_empty() || states.iter().any(|s| *s == r.2 || *s == r.3 || *s == r.4))
        .filter(|r| patterns.is_empty() || patterns.iter().any(|p| glob::matches(p, &r.0)))
        .collect()
}

impl Service for Bridge {
    async fn object(&self, path: &str) -> Option<Vec<&'static Interface>> {
        match path {
            "/" | "/org" | "/org/freedesktop" | UNIT_DIR | JOB_DIR => Some(Vec::new()),
            MANAGER_PATH => Some(vec![&MANAGER]),
            _ => {
                if let Some(unit) = units::unit_from_path(path) {
                    return Some(if service_name(&unit).is_some() {
                        vec![&UNIT, &SERVICE]
                    } else {
                        vec![&UNIT]
                    });
                }
                let id: u32 = path.strip_prefix(units::JOB_PREFIX)?.parse().ok()?;
                self.ctx.jobs.get(id).map(|_| vec![&JOB])
            }
        }
    }

    async fn children(&self, path: &str) -> Vec<String> {
        match path {
            "/" => vec!["org".to_owned()],
            "/org" => vec!["freedesktop".to_owned()],
            "/org/freedesktop" => vec!["systemd1".to_owned()],
            MANAGER_PATH => vec!["unit".to_owned(), "job".to_owned()],
            UNIT_DIR => svmgr::list(self.socket())
                .await
                .map(|l| {
                    l.iter()
                        .map(|s| units::escape_label(&unit_name(&s.name)))
                        .collect()
                })
                .unwrap_or_default(),
            JOB_DIR => self
                .ctx
                .jobs
                .list()
                .iter()
                .map(|j| j.id.to_string())
                .collect(),
            _ => Vec::new(),
        }
    }

    async fn properties(
        &self,
        path: &str,
        iface: &'static Interface,
    ) -> Result<Props, MethodError> {
        if iface.name == MANAGER.name {
            return Ok(self.manager_properties().await);
        }
        if iface.name == JOB.name {
            let job = path
                .strip_prefix(units::JOB_PREFIX)
                .and_then(|id| id.parse::<u32>().ok())
                .and_then(|id| self.ctx.jobs.get(id))
                .ok_or_else(|| sd_error("NoSuchJob", format!("No job at {path}.")))?;
            let mut p = Props::new();
            p.add("Id", job.id)
                .add(
                    "Unit",
                    (job.unit.clone(), object_path(unit_path(&job.unit))),
                )
                .add("JobType", job.kind)
                .add("State", "running")
                .add("ActivationDetails", Vec::<(String, String)>::new());
            return Ok(p);
        }
        let unit = units::unit_from_path(path)
            .ok_or_else(|| MethodError::invalid_args(format!("No unit at {path}.")))?;
        let detail = match service_name(&unit) {
            Some(service) => self.detail(service).await?,
            None => None,
        };
        let clocks = match svmgr::system_state(self.socket()).await {
            Ok(st) => Clocks::now().with_svmgr_uptime(st.uptime_ms),
            Err(_) => Clocks::now(),
        };
        if iface.name == SERVICE.name {
            let cgroup = detail.as_ref().map(Self::cgroup_of).unwrap_or_default();
            return Ok(units::service_properties(detail.as_ref(), cgroup, &clocks));
        }
        Ok(units::unit_properties(
            &unit,
            detail.as_ref(),
            self.job_ref(&unit),
            &clocks,
        ))
    }

    async fn call(
        &self,
        call: Call,
        iface: &'static Interface,
        method: &'static Method,
    ) -> Result<Reply, MethodError> {
        if iface.name == MANAGER.name {
            return self.manager_call(&call, method.name).await;
        }
        if iface.name == JOB.name {
            call.require_root("cancel jobs").await?;
            return Err(MethodError::not_supported(
                "Cancelling a job is not supported by dynamod: svmgr finishes what it started.",
            ));
        }
        let unit = units::unit_from_path(call.path())
            .ok_or_else(|| MethodError::invalid_args("Not a unit object."))?;
        self.unit_call(&call, &unit, iface, method.name).await
    }
}

/// Marks the system as "booted with systemd" for sd_booted(3) and creates the directory of the
/// private socket.
fn prepare_run_dir(run: &Path) -> Result<(), dynamod_dbus::BusError> {
    let dir = run.join("systemd/system");
    std::fs::create_dir_all(&dir).map_err(|source| dynamod_dbus::BusError::Listen {
        path: dir.clone(),
        source,
    })
}

/// Connects, serves the bus and the private socket, owns the name, tells the service manager
/// it is ready, and runs until the bus connection closes.
pub async fn run(opts: Options) -> Result<(), dynamod_dbus::BusError> {
    prepare_run_dir(&opts.run_dir)?;
    let private = (!opts.no_private_socket).then(|| opts.run_dir.join("systemd/private"));
    let stream = dynamod_dbus::bus::connect(opts.bus.as_deref()).await?;
    let conn = dynamod_dbus::zbus::Connection::from(&stream);
    let bridge = Arc::new(Bridge::new(opts));
    bridge.signals().add(conn.clone());
    let serving = tokio::spawn(dynamod_dbus::server::serve(stream, Arc::clone(&bridge)));
    if let Some(path) = private {
        let listener = dynamod_dbus::server::bind_private(&path)?;
        tokio::spawn(dynamod_dbus::server::serve_p2p(
            listener,
            Arc::clone(&bridge),
            bridge.signals().clone(),
        ));
    }
    dynamod_dbus::bus::own_names(&conn, &[NAME]).await?;
    tracing::info!("serving {NAME}");
    if let Err(e) = dynamod_dbus::notify::notify("READY=1") {
        tracing::warn!("cannot notify readiness: {e}");
    }
    let _ = serving.await;
    Err(dynamod_dbus::BusError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn bridge() -> Bridge {
        Bridge::new(Options::parse_from([
            "dynamod-sd1bridge",
            "--control-socket",
            "/nonexistent/control.sock",
        ]))
    }

    #[tokio::test]
    async fn manager_properties_match_the_interface_even_without_svmgr() {
        let b = bridge();
        let p = b.properties(MANAGER_PATH, &MANAGER).await.unwrap();
        assert_eq!(p.mismatches(&MANAGER), Vec::<String>::new());
        assert!(units::is_str(p.get("SystemState"), "offline"));
        assert!(units::is_str(
            p.get("Architecture"),
            dynamod_dbus::platform::architecture()
        ));
    }

    #[tokio::test]
    async fn unit_and_service_properties_match_their_interfaces() {
        let b = bridge();
        let path = unit_path("web.target");
        let u = b.properties(&path, &UNIT).await.unwrap();
        assert_eq!(u.mismatches(&UNIT), Vec::<String>::new());
        let c = Clocks::now();
        let s = units::service_properties(None, String::new(), &c);
        assert_eq!(s.mismatches(&SERVICE), Vec::<String>::new());
        let u = units::unit_properties("x.service", None, Some((3, units::job_path(3))), &c);
        assert_eq!(u.mismatches(&UNIT), Vec::<String>::new());
    }

    #[tokio::test]
    async fn objects_exist_for_every_unit_path_and_only_for_active_jobs() {
        let b = bridge();
        assert_eq!(
            b.object(&unit_path("a.service")).await.unwrap().len(),
            2,
            "Unit and Service"
        );
        assert_eq!(b.object(&unit_path("a.socket")).await.unwrap().len(), 1);
        assert!(b.object(&units::job_path(1)).await.is_none());
        let job = b.ctx.jobs.begin("a.service", "start");
        assert!(b.object(&units::job_path(job.id)).await.is_some());
        let p = b.properties(&units::job_path(job.id), &JOB).await.unwrap();
        assert_eq!(p.mismatches(&JOB), Vec::<String>::new());
        assert!(b.object("/org/freedesktop/other").await.is_none());
    }

    #[test]
    fn rows_filter_by_state_and_pattern() {
        let rows = vec![
            units::unit_row("web", ServiceState::Running, None),
            units::unit_row("db", ServiceState::Failed, None),
            units::unit_row("cron", ServiceState::Stopped, None),
        ];
        let names = |rows: Vec<units::UnitRow>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(names(filter_rows(rows.clone(), &[], &[])).len(), 3);
        assert_eq!(
            names(filter_rows(rows.clone(), &["failed".into()], &[])),
            ["db.service"]
        );
        assert_eq!(
            names(filter_rows(
                rows.clone(),
                &["running".into()],
                &["w*".into()]
            )),
            ["web.service"]
        );
        assert!(filter_rows(rows, &["active".into()], &["db*".into()]).is_empty());
    }

    #[test]
    fn unit_names_are_checked_before_use() {
        assert!(check_unit_name("web.service").is_ok());
        for bad in ["", "web", "a/b.service", "x\n.service"] {
            assert!(check_unit_name(bad).is_err(), "{bad:?}");
        }
    }
}
