//! How dynamod services look as systemd units: names (`<service>.service`), object paths
//! (systemd's label escaping), states, and the `Unit` and `Service` properties.

use std::time::{SystemTime, UNIX_EPOCH};

use dynamod_dbus::Props;
use dynamod_dbus::zbus::wire::{ObjectPath, Variant};
use dynamod_proto::{ExitStatus, ServiceDetail, ServiceState};

/// Where unit objects live.
pub const UNIT_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
/// Where job objects live.
pub const JOB_PREFIX: &str = "/org/freedesktop/systemd1/job/";

/// The targets that stand for a system shutdown.
pub const SHUTDOWN_TARGETS: [&str; 3] = ["poweroff.target", "reboot.target", "halt.target"];

/// A D-Bus path label for `name` the way sd-bus escapes it (`bus_label_escape`): ASCII
/// letters are kept, digits too except in first position, every other byte becomes `_xx`
/// (lowercase hex); the empty string becomes `_`.
pub fn escape_label(name: &str) -> String {
    if name.is_empty() {
        return "_".to_owned();
    }
    let mut out = String::with_capacity(name.len() * 3);
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The reverse of [`escape_label`]; `None` for a label that is not a valid escape.
pub fn unescape_label(label: &str) -> Option<String> {
    if label == "_" {
        return Some(String::new());
    }
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = label.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The object path of unit `name`.
pub fn unit_path(name: &str) -> String {
    format!("{UNIT_PREFIX}{}", escape_label(name))
}

/// The unit name an object path stands for.
pub fn unit_from_path(path: &str) -> Option<String> {
    let label = path.strip_prefix(UNIT_PREFIX)?;
    if label.contains('/') {
        return None;
    }
    unescape_label(label).filter(|n| !n.is_empty())
}

/// The object path of job `id`.
pub fn job_path(id: u32) -> String {
    format!("{JOB_PREFIX}{id}")
}

/// The unit name of service `name`.
pub fn unit_name(service: &str) -> String {
    format!("{service}.service")
}

/// The service behind a unit name (`x.service` → `x`); `None` for other unit types.
pub fn service_name(unit: &str) -> Option<&str> {
    unit.strip_suffix(".service").filter(|s| !s.is_empty())
}

/// A valid D-Bus object path from a string this module built.
pub fn object_path(path: String) -> ObjectPath<'static> {
    ObjectPath::try_from(path).unwrap_or_else(|_| ObjectPath::from_static_str_unchecked("/"))
}

/// systemd's active state and sub-state for a dynamod service state.
pub fn active_state(state: ServiceState) -> (&'static str, &'static str) {
    match state {
        ServiceState::Running => ("active", "running"),
        // A oneshot that completed stays "active (exited)", like RemainAfterExit=yes: what it
        // set up holds, and dependents count it as satisfied.
        ServiceState::Done => ("active", "exited"),
        ServiceState::Waiting => ("activating", "start-pre"),
        ServiceState::Starting => ("activating", "start"),
        ServiceState::Restarting => ("activating", "auto-restart"),
        ServiceState::Stopping => ("deactivating", "stop-sigterm"),
        ServiceState::Failed => ("failed", "failed"),
        ServiceState::Stopped | ServiceState::Blocked | ServiceState::Invalid => {
            ("inactive", "dead")
        }
    }
}

/// systemd's load state for a service state.
pub fn load_state(state: ServiceState) -> &'static str {
    if state == ServiceState::Invalid {
        "bad-setting"
    } else {
        "loaded"
    }
}

/// The one-line description shown by `systemctl list-units`.
pub fn description(service: &str) -> String {
    format!("dynamod service {service}")
}

/// systemd's `Result=` for a service.
pub fn result(detail: &ServiceDetail) -> &'static str {
    if detail.summary.state != ServiceState::Failed {
        return "success";
    }
    let reason = detail.summary.reason.as_deref().unwrap_or_default();
    if reason.contains("timeout") || reason.contains("timed out") {
        return "timeout";
    }
    match detail.last_exit.map(|e| e.status) {
        Some(ExitStatus::Signaled(_)) => "signal",
        Some(ExitStatus::Exited(c)) if c != 0 => "exit-code",
        _ => "resources",
    }
}

/// systemd's `Restart=` for a restart policy.
pub fn restart_setting(policy: &str) -> &'static str {
    match policy {
        "permanent" => "always",
        "transient" => "on-failure",
        _ => "no",
    }
}

/// Clocks sampled once, to express wall-clock times as monotonic ones too, and svmgr's own
/// times (milliseconds since it started) as wall-clock times.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    /// Now, µs since the epoch.
    pub realtime_us: u64,
    /// Now, µs of CLOCK_MONOTONIC.
    pub monotonic_us: u64,
    /// When svmgr started, µs since the epoch, if known.
    pub svmgr_start_us: Option<u64>,
}

impl Clocks {
    /// The current time on both clocks.
    pub fn now() -> Self {
        let realtime_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let monotonic_us =
            dynamod_sys::nix::time::clock_gettime(dynamod_sys::nix::time::ClockId::CLOCK_MONOTONIC)
                .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
                .unwrap_or(0);
        Self {
            realtime_us,
            monotonic_us,
            svmgr_start_us: None,
        }
    }

    /// The same clocks, knowing svmgr has been up for `uptime_ms`.
    pub fn with_svmgr_uptime(mut self, uptime_ms: u64) -> Self {
        self.svmgr_start_us = Some(self.realtime_us.saturating_sub(uptime_ms * 1000));
        self
    }

    /// A svmgr time (ms since it started) as µs since the epoch; 0 when unknown.
    pub fn from_svmgr(&self, ms: Option<u64>) -> u64 {
        match (self.svmgr_start_us, ms) {
            (Some(start), Some(ms)) => start + ms * 1000,
            _ => 0,
        }
    }

    /// A wall-clock time in µs (0 = never) and its monotonic counterpart.
    pub fn pair(&self, realtime_us: u64) -> (u64, u64) {
        if realtime_us == 0 {
            return (0, 0);
        }
        let ago = self.realtime_us.saturating_sub(realtime_us);
        (realtime_us, self.monotonic_us.saturating_sub(ago).max(1))
    }
}

fn add_pair(p: &mut Props, name: &'static str, mono: &'static str, c: &Clocks, t: u64) {
    let (rt, mt) = c.pair(t);
    p.add(name, rt).add(mono, mt);
}

/// An active job on a unit: its id and path.
pub type JobRef = Option<(u32, String)>;

/// The `org.freedesktop.systemd1.Unit` properties of unit `unit`; `detail` is `None` when no
/// service has that name (systemd's `not-found` stub).
pub fn unit_properties(
    unit: &str,
    detail: Option<&ServiceDetail>,
    job: JobRef,
    c: &Clocks,
) -> Props {
    let mut p = Props::new();
    let (job_id, job_path) = job.unwrap_or((0, "/".to_owned()));
    let names = |list: &[String]| list.iter().map(|s| unit_name(s)).collect::<Vec<_>>();
    let (load, active, sub, fragment, load_error) = match detail {
        Some(d) => {
            let (a, s) = active_state(d.summary.state);
            let error = if d.summary.state == ServiceState::Invalid {
                (
                    "org.freedesktop.systemd1.BadSetting".to_owned(),
                    d.summary.reason.clone().unwrap_or_default(),
                )
            } else {
                (String::new(), String::new())
            };
            (
                load_state(d.summary.state),
                a,
                s,
                d.file.clone().unwrap_or_default(),
                error,
            )
        }
        None => (
            "not-found",
            "inactive",
            "dead",
            String::new(),
            (
                "org.freedesktop.systemd1.NoSuchUnit".to_owned(),
                format!("Unit {unit} not found."),
            ),
        ),
    };
    let empty: Vec<String> = Vec::new();
    let (requires, wants, after) = match detail {
        Some(d) => (names(&d.requires), names(&d.wants), names(&d.after)),
        None => (empty.clone(), empty.clone(), empty.clone()),
    };
    let since = detail
        .and_then(|d| d.since_unix_ms)
        .map_or(0, |ms| ms * 1000);
    let is_active = active == "active";
    let is_inactive = matches!(active, "inactive" | "failed");
    let spawned = detail.map_or(0, |d| c.from_svmgr(d.spawned_ms));
    let ready = detail.map_or(0, |d| c.from_svmgr(d.ready_ms));
    let spawned = if spawned == 0 { since } else { spawned };
    let ready = if ready == 0 { since } else { ready };
    p.add("Id", unit.to_owned())
        .add("Names", vec![unit.to_owned()])
        .add("Following", "")
        .add("Requires", requires)
        .add("Requisite", empty.clone())
        .add("Wants", wants)
        .add("BindsTo", empty.clone())
        .add("PartOf", empty.clone())
        .add("RequiredBy", empty.clone())
        .add("WantedBy", empty.clone())
        .add("Conflicts", empty.clone())
        .add("Before", empty.clone())
        .add("After", after)
        .add("OnFailure", empty.clone())
        .add("Triggers", empty.clone())
        .add("TriggeredBy", empty.clone())
        .add("Documentation", empty.clone())
        .add(
            "Description",
            match service_name(unit) {
                Some(s) if detail.is_some() => description(s),
                _ => unit.to_owned(),
            },
        )
        .add("LoadState", load)
        .add("ActiveState", active)
        .add("FreezerState", "running")
        .add("SubState", sub)
        .add("FragmentPath", fragment)
        .add("SourcePath", "")
        .add("DropInPaths", empty.clone())
        .add(
            "UnitFileState",
            if detail.is_some() { "static" } else { "" },
        )
        .add("UnitFilePreset", "");
    add_pair(
        &mut p,
        "StateChangeTimestamp",
        "StateChangeTimestampMonotonic",
        c,
        since,
    );
    add_pair(
        &mut p,
        "InactiveExitTimestamp",
        "InactiveExitTimestampMonotonic",
        c,
        if is_inactive { 0 } else { spawned },
    );
    add_pair(
        &mut p,
        "ActiveEnterTimestamp",
        "ActiveEnterTimestampMonotonic",
        c,
        if is_active { ready } else { 0 },
    );
    add_pair(
        &mut p,
        "ActiveExitTimestamp",
        "ActiveExitTimestampMonotonic",
        c,
        0,
    );
    add_pair(
        &mut p,
        "InactiveEnterTimestamp",
        "InactiveEnterTimestampMonotonic",
        c,
        if is_inactive { since } else { 0 },
    );
    let exists = detail.is_some();
    p.add("CanStart", exists)
        .add("CanStop", exists)
        .add("CanReload", false)
        .add("CanIsolate", false)
        .add("CanFreeze", false)
        .add("Job", (job_id, object_path(job_path)))
        .add("StopWhenUnneeded", false)
        .add("RefuseManualStart", false)
        .add("RefuseManualStop", false)
        .add("AllowIsolate", false)
        .add("DefaultDependencies", false)
        .add("IgnoreOnIsolate", false)
        .add("NeedDaemonReload", false)
        .add("Markers", empty.clone())
        .add("JobTimeoutUSec", u64::MAX)
        .add("ConditionResult", true)
        .add("AssertResult", true)
        .add("ConditionTimestamp", 0u64)
        .add("ConditionTimestampMonotonic", 0u64)
        .add("AssertTimestamp", 0u64)
        .add("AssertTimestampMonotonic", 0u64)
        .add("LoadError", load_error)
        .add("Transient", false)
        .add("Perpetual", false)
        .add("InvocationID", Vec::<u8>::new())
        .add("CollectMode", "inactive")
        .add("Refs", empty);
    p
}

/// One entry of `ExecStart`: path, argv, ignore-failure, start and exit times (realtime,
/// monotonic), pid, exit code kind, status.
pub type ExecEntry = (String, Vec<String>, bool, u64, u64, u64, u64, u32, i32, i32);

/// `CLD_EXITED` / `CLD_KILLED` from waitid(2), as systemd reports exit codes.
fn exit_code(status: Option<ExitStatus>) -> (i32, i32) {
    match status {
        Some(ExitStatus::Exited(c)) => (1, c),
        Some(ExitStatus::Signaled(s)) => (2, s),
        None => (0, 0),
    }
}

/// The `org.freedesktop.systemd1.Service` properties of a service (defaults for an unknown
/// one, so that `systemctl show` of a missing unit still prints a full record).
pub fn service_properties(detail: Option<&ServiceDetail>, cgroup: String, c: &Clocks) -> Props {
    let mut p = Props::new();
    let pid = detail
        .and_then(|d| d.summary.pid)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    let since = detail
        .and_then(|d| d.since_unix_ms)
        .map_or(0, |ms| ms * 1000);
    let spawned = detail.map_or(0, |d| c.from_svmgr(d.spawned_ms));
    let since = if spawned == 0 { since } else { spawned };
    let exit = detail.and_then(|d| d.last_exit);
    let exit_at = exit.map_or(0, |e| e.at_unix_ms * 1000);
    let running = pid != 0;
    let (code, status) = if running {
        (0, 0)
    } else {
        exit_code(exit.map(|e| e.status))
    };
    let (start_rt, start_mt) = c.pair(if running { since } else { 0 });
    let (exit_rt, exit_mt) = c.pair(if running { 0 } else { exit_at });
    let exec: Vec<ExecEntry> = match detail {
        Some(d) if !d.exec.is_empty() => vec![(
            d.exec[0].clone(),
            d.exec.clone(),
            false,
            start_rt,
            start_mt,
            exit_rt,
            exit_mt,
            pid,
            code,
            status,
        )],
        _ => Vec::new(),
    };
    let usage = detail.and_then(|d| d.usage);
    let none = u64::MAX;
    p.add(
        "Type",
        detail.map_or("simple".to_owned(), |d| {
            if d.summary.kind.is_empty() {
                "simple".to_owned()
            } else {
                d.summary.kind.clone()
            }
        }),
    )
    .add("ExitType", "main")
    .add(
        "Restart",
        restart_setting(detail.map_or("", |d| d.restart_policy.as_str())),
    )
    .add("PIDFile", "")
    .add(
        "NotifyAccess",
        if detail.is_some_and(|d| d.summary.kind == "notify") {
            "main"
        } else {
            "none"
        },
    )
    .add("RestartUSec", 0u64)
    .add("TimeoutStartUSec", none)
    .add("TimeoutStopUSec", none)
    .add("RuntimeMaxUSec", none)
    .add("WatchdogUSec", 0u64)
    .add(
        "RemainAfterExit",
        detail.is_some_and(|d| d.summary.kind == "oneshot"),
    )
    .add("MainPID", pid)
    .add("ControlPID", 0u32)
    .add("BusName", "")
    .add(
        "StatusText",
        detail
            .filter(|d| d.summary.state != ServiceState::Failed)
            .and_then(|d| d.summary.reason.clone())
            .unwrap_or_default(),
    )
    .add("StatusErrno", 0i32)
    .add("Result", detail.map_or("success", result))
    .add("ReloadResult", "success")
    .add("CleanResult", "success")
    .add("UID", u32::MAX)
    .add("GID", u32::MAX)
    .add("NRestarts", detail.map_or(0, |d| d.restarts))
    .add("OOMPolicy", "stop")
    .add("ExecMainStartTimestamp", start_rt)
    .add("ExecMainStartTimestampMonotonic", start_mt)
    .add("ExecMainExitTimestamp", exit_rt)
    .add("ExecMainExitTimestampMonotonic", exit_mt)
    .add("ExecMainPID", pid)
    .add("ExecMainCode", code)
    .add("ExecMainStatus", status)
    .add("ExecStart", exec)
    .add("ControlGroup", cgroup)
    .add(
        "MemoryCurrent",
        usage.and_then(|u| u.memory_current).unwrap_or(none),
    )
    .add(
        "CPUUsageNSec",
        usage
            .and_then(|u| u.cpu_usec)
            .map_or(none, |us| us.saturating_mul(1000)),
    )
    .add("TasksCurrent", usage.and_then(|u| u.tasks).unwrap_or(none))
    .add("KillMode", "control-group")
    .add("KillSignal", 15i32);
    p
}

/// One row of `ListUnits`: name, description, load, active, sub, following, unit path, job id,
/// job type, job path.
pub type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    ObjectPath<'static>,
    u32,
    String,
    ObjectPath<'static>,
);

/// The `ListUnits` row of a service.
pub fn unit_row(service: &str, state: ServiceState, job: Option<(u32, String, String)>) -> UnitRow {
    let unit = unit_name(service);
    let (active, sub) = active_state(state);
    let (job_id, job_type, job_path) = job.unwrap_or((0, String::new(), "/".to_owned()));
    (
        unit.clone(),
        description(service),
        load_state(state).to_owned(),
        active.to_owned(),
        sub.to_owned(),
        String::new(),
        object_path(unit_path(&unit)),
        job_id,
        job_type,
        object_path(job_path),
    )
}

/// Whether a variant is a string equal to `s` (for tests and filters).
pub fn is_str(v: Option<&Variant<'_>>, s: &str) -> bool {
    matches!(v, Some(Variant::Str(x)) if x.as_str() == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamod_proto::{ExitInfo, ServiceSummary};

    fn detail(state: ServiceState) -> ServiceDetail {
        ServiceDetail {
            summary: ServiceSummary {
                name: "web".into(),
                state,
                pid: (state == ServiceState::Running).then_some(42),
                supervisor: "root".into(),
                kind: "simple".into(),
                reason: None,
            },
            file: Some("/etc/dynamod/services/web.toml".into()),
            exec: vec!["/bin/web".into(), "--port".into(), "80".into()],
            restart_policy: "permanent".into(),
            readiness: "none".into(),
            since_ms: Some(1000),
            since_unix_ms: Some(1_700_000_000_000),
            restarts: 2,
            next_restart_ms: None,
            last_exit: Some(ExitInfo {
                status: ExitStatus::Exited(3),
                at_unix_ms: 1_699_999_999_000,
            }),
            cgroup: None,
            usage: None,
            recent_logs: vec![],
            log_dropped: 0,
            requires: vec!["db".into()],
            wants: vec![],
            after: vec!["net".into()],
            spawned_ms: Some(500),
            ready_ms: Some(600),
        }
    }

    #[test]
    fn labels_escape_like_sd_bus() {
        assert_eq!(escape_label("sshd.service"), "sshd_2eservice");
        assert_eq!(
            escape_label("avahi-daemon.service"),
            "avahi_2ddaemon_2eservice"
        );
        assert_eq!(escape_label("getty@tty1.service"), "getty_40tty1_2eservice");
        assert_eq!(escape_label("9p.mount"), "_39p_2emount");
        assert_eq!(escape_label("a_b"), "a_5fb");
        assert_eq!(escape_label(""), "_");
        for name in ["sshd.service", "9p.mount", "a_b", "getty@tty1.service", ""] {
            assert_eq!(unescape_label(&escape_label(name)).as_deref(), Some(name));
        }
        assert_eq!(unescape_label("bad_zz"), None);
        assert_eq!(unescape_label("bad_2"), None);
    }

    #[test]
    fn unit_paths_round_trip() {
        let p = unit_path("web.service");
        assert_eq!(p, "/org/freedesktop/systemd1/unit/web_2eservice");
        assert_eq!(unit_from_path(&p).as_deref(), Some("web.service"));
        assert_eq!(unit_from_path("/org/freedesktop/systemd1/unit/a/b"), None);
        assert_eq!(service_name("web.service"), Some("web"));
        assert_eq!(service_name("web.target"), None);
    }

    #[test]
    fn states_map_to_systemd_active_and_sub_states() {
        assert_eq!(active_state(ServiceState::Running), ("active", "running"));
        assert_eq!(active_state(ServiceState::Done), ("active", "exited"));
        assert_eq!(
            active_state(ServiceState::Starting),
            ("activating", "start")
        );
        assert_eq!(active_state(ServiceState::Stopped), ("inactive", "dead"));
        assert_eq!(active_state(ServiceState::Failed), ("failed", "failed"));
        assert_eq!(load_state(ServiceState::Invalid), "bad-setting");
    }

    #[test]
    fn failure_results_name_the_cause() {
        let mut d = detail(ServiceState::Failed);
        assert_eq!(result(&d), "exit-code");
        d.last_exit = Some(ExitInfo {
            status: ExitStatus::Signaled(9),
            at_unix_ms: 1,
        });
        assert_eq!(result(&d), "signal");
        d.summary.reason = Some("readiness timed out after 30s".into());
        assert_eq!(result(&d), "timeout");
        assert_eq!(result(&detail(ServiceState::Running)), "success");
    }

    #[test]
    fn a_running_service_reports_pid_timestamps_and_dependencies() {
        let c = Clocks {
            realtime_us: 1_700_000_010_000_000,
            monotonic_us: 50_000_000,
            svmgr_start_us: None,
        };
        let d = detail(ServiceState::Running);
        let u = unit_properties("web.service", Some(&d), None, &c);
        assert!(is_str(u.get("ActiveState"), "active"));
        assert!(is_str(u.get("SubState"), "running"));
        assert!(is_str(
            u.get("FragmentPath"),
            "/etc/dynamod/services/web.toml"
        ));
        assert_eq!(
            u.get("ActiveEnterTimestamp"),
            Some(&Variant::from(1_700_000_000_000_000u64))
        );
        assert_eq!(
            u.get("ActiveEnterTimestampMonotonic"),
            Some(&Variant::from(40_000_000u64))
        );
        let with_svmgr = c.with_svmgr_uptime(10_000);
        let u2 = unit_properties("web.service", Some(&d), None, &with_svmgr);
        assert_eq!(
            u2.get("ActiveEnterTimestamp"),
            Some(&Variant::from(1_700_000_000_600_000u64))
        );
        assert_eq!(
            u.get("Requires"),
            Some(&Variant::from(vec!["db.service".to_owned()]))
        );
        let s = service_properties(Some(&d), String::new(), &c);
        assert_eq!(s.get("MainPID"), Some(&Variant::from(42u32)));
        assert_eq!(s.get("NRestarts"), Some(&Variant::from(2u32)));
        assert!(is_str(s.get("Restart"), "always"));
    }

    #[test]
    fn an_unknown_unit_is_a_not_found_stub() {
        let c = Clocks::now();
        let u = unit_properties("nope.service", None, None, &c);
        assert!(is_str(u.get("LoadState"), "not-found"));
        assert!(is_str(u.get("ActiveState"), "inactive"));
    }

    #[test]
    fn a_stopped_service_reports_its_last_exit() {
        let c = Clocks::now();
        let d = detail(ServiceState::Stopped);
        let s = service_properties(Some(&d), String::new(), &c);
        assert_eq!(s.get("MainPID"), Some(&Variant::from(0u32)));
        assert_eq!(s.get("ExecMainCode"), Some(&Variant::from(1i32)));
        assert_eq!(s.get("ExecMainStatus"), Some(&Variant::from(3i32)));
    }
}
