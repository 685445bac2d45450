//! Parsing one service file into a [`ServiceConfig`].
//!
//! The whole file is read even after an error, so one run reports every problem. Besides the
//! model, the parser keeps the positions the cross-file checks need (the name, the supervisor,
//! each dependency), so those checks can point into the file too.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use toml::de::DeValue;

use crate::model::{
    BindMount, CgroupLimits, Dependencies, Limit, LogConfig, Namespace, NamespaceConfig,
    ProtectSystem, ROOT_SUPERVISOR, Readiness, ReadinessConfig, RestartConfig, RestartPolicy,
    ServiceConfig, ServiceType, ShutdownConfig, UserSpec,
};
use crate::source::Pos;
use crate::value::{self, validate_env_name};
use crate::walk::{Ctx, Item, Schema, Tbl, quote};
use crate::{Diagnostic, Severity, parse_document};

const TOP: &[&str] = &[
    "service",
    "restart",
    "readiness",
    "dependencies",
    "cgroup",
    "namespace",
    "shutdown",
    "log",
];
const SERVICE: &[&str] = &[
    "name",
    "supervisor",
    "exec",
    "workdir",
    "type",
    "environment",
    "environment-file",
    "pidfile",
    "tty",
    "main",
    "user",
];
const USER: &[&str] = &["user", "group", "supplementary-groups"];
const RESTART: &[&str] = &[
    "policy",
    "delay",
    "max-delay",
    "max-restarts",
    "max-restart-window",
    "reset-after",
    "success-exit-codes",
];
const READINESS: &[&str] = &["type", "port", "host", "check-exec", "interval", "timeout"];
const DEPENDENCIES: &[&str] = &["requires", "wants", "after", "before"];
const CGROUP: &[&str] = &[
    "memory-max",
    "memory-high",
    "cpu-weight",
    "cpu-max",
    "pids-max",
    "io-weight",
];
const NAMESPACE: &[&str] = &["enable", "bind-mounts", "private-tmp", "protect-system"];
const BIND_MOUNT: &[&str] = &["source", "target", "writable"];
const SHUTDOWN: &[&str] = &["stop-signal", "stop-timeout", "stop-exec"];
const LOG: &[&str] = &["max-size", "max-files"];

/// Every table of a service file, for "it belongs in [restart]" hints.
const SCHEMA: Schema = &[
    ("[service]", SERVICE),
    ("[service.user]", USER),
    ("[restart]", RESTART),
    ("[readiness]", READINESS),
    ("[dependencies]", DEPENDENCIES),
    ("[cgroup]", CGROUP),
    ("[namespace]", NAMESPACE),
    ("[shutdown]", SHUTDOWN),
    ("[log]", LOG),
];

/// Default `max-delay` when the file does not set one (raised to `delay` if that is longer).
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

/// The kind of a dependency reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DepKind {
    Requires,
    Wants,
    After,
    Before,
}

impl DepKind {
    /// The key in `[dependencies]`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Requires => "requires",
            Self::Wants => "wants",
            Self::After => "after",
            Self::Before => "before",
        }
    }
}

/// One name in a `[dependencies]` list, with its position.
#[derive(Debug, Clone)]
pub(crate) struct DepRef {
    pub kind: DepKind,
    pub name: String,
    pub pos: Pos,
}

/// What parsing one service file produced, valid or not.
#[derive(Debug)]
pub(crate) struct ServiceOutcome {
    /// The service, when the file has no error.
    pub config: Option<ServiceConfig>,
    /// The name and its position, when the name is valid.
    pub name: Option<(String, Pos)>,
    /// The supervisor (default `root` when the document parsed) and the position of the key.
    pub supervisor: Option<(String, Option<Pos>)>,
    /// The position of `main = true`.
    pub main: Option<Pos>,
    /// The dependency names in file order.
    pub deps: Vec<DepRef>,
    /// Warnings and errors, in position order.
    pub diags: Vec<Diagnostic>,
}

/// Parses a service file; never panics.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> ServiceOutcome {
    let mut outcome = ServiceOutcome {
        config: None,
        name: None,
        supervisor: None,
        main: None,
        deps: Vec::new(),
        diags: Vec::new(),
    };
    let (mut cx, doc) = match parse_document(path, bytes) {
        Ok(parsed) => parsed,
        Err(diag) => {
            outcome.diags.push(diag);
            return outcome;
        }
    };
    let root = Tbl::root(&doc);
    let config = read_service(&mut cx, &root, &mut outcome);
    if !cx.has_errors() {
        outcome.config = config;
    }
    cx.diags.sort_by_key(|d| (d.line, d.col));
    outcome.diags = cx.diags;
    outcome
}

/// Reads the whole document; `None` when a required part is missing or unreadable.
fn read_service(
    cx: &mut Ctx<'_>,
    root: &Tbl<'_, '_>,
    out: &mut ServiceOutcome,
) -> Option<ServiceConfig> {
    cx.check_keys(root, TOP, SCHEMA);
    let tables = |cx: &mut Ctx<'_>, key: &str| {
        root.get(key)
            .and_then(|item| cx.table(key.to_owned(), item))
    };
    let service = tables(cx, "service");
    let restart = tables(cx, "restart")
        .map(|t| read_restart(cx, &t))
        .unwrap_or_default();
    let readiness = tables(cx, "readiness");
    let deps = tables(cx, "dependencies")
        .map(|t| read_deps(cx, &t, out))
        .unwrap_or_default();
    let cgroup = tables(cx, "cgroup")
        .map(|t| read_cgroup(cx, &t))
        .unwrap_or_default();
    let namespace = tables(cx, "namespace")
        .map(|t| read_namespace(cx, &t))
        .unwrap_or_default();
    let shutdown = tables(cx, "shutdown")
        .map(|t| read_shutdown(cx, &t))
        .unwrap_or_default();
    let log = tables(cx, "log")
        .map(|t| read_log(cx, &t))
        .unwrap_or_default();

    let readiness = readiness
        .map(|t| read_readiness(cx, &t))
        .unwrap_or_default();

    let Some(service) = service else {
        if root.get("service").is_none() {
            cx.report_at(
                Pos::START,
                Severity::Error,
                "missing table [service]".to_owned(),
            );
        }
        return None;
    };
    let mut config = read_service_table(cx, &service, out)?;
    config.readiness = readiness;
    // A notify service proves readiness over $NOTIFY_SOCKET unless [readiness] says otherwise.
    let readiness_type_given = root
        .get("readiness")
        .and_then(|r| r.get_ref().get("type"))
        .is_some();
    if config.kind == ServiceType::Notify && !readiness_type_given {
        config.readiness.kind = Readiness::Notify;
    }
    config.restart = restart;
    config.deps = deps;
    config.cgroup = cgroup;
    config.namespace = namespace;
    config.shutdown = shutdown;
    config.log = log;
    Some(config)
}

/// Reads `[service]` (and `[service.user]`); `None` without a valid `name` and `exec`.
fn read_service_table(
    cx: &mut Ctx<'_>,
    t: &Tbl<'_, '_>,
    out: &mut ServiceOutcome,
) -> Option<ServiceConfig> {
    cx.check_keys(t, SERVICE, SCHEMA);
    let name = match t.get("name") {
        Some(item) => {
            let name = cx.name("service.name", item);
            if let Some(n) = &name {
                out.name = Some((n.clone(), cx.pos(&item.span())));
                warn_if_not_stem(cx, n, item);
            }
            name
        }
        None => {
            cx.error(
                &t.span,
                "missing required key `name` in [service]".to_owned(),
            );
            None
        }
    };
    let supervisor = match t.get("supervisor") {
        Some(item) => {
            let sup = cx.name("service.supervisor", item);
            if let Some(s) = &sup {
                out.supervisor = Some((s.clone(), Some(cx.pos(&item.span()))));
            }
            sup
        }
        None => {
            out.supervisor = Some((ROOT_SUPERVISOR.to_owned(), None));
            Some(ROOT_SUPERVISOR.to_owned())
        }
    };
    let exec = match t.get("exec") {
        Some(item) => cx.command("service.exec", item),
        None => {
            cx.error(
                &t.span,
                "missing required key `exec` in [service]".to_owned(),
            );
            None
        }
    };
    let mut kind = ServiceType::Simple;
    let kinds = [
        ("simple", ServiceType::Simple),
        ("oneshot", ServiceType::Oneshot),
        ("forking", ServiceType::Forking),
        ("notify", ServiceType::Notify),
    ];
    if let Some(k) = cx.field(t, "type", |cx, p, i| cx.choice(p, i, &kinds)) {
        kind = k;
    }
    let workdir = cx.field(t, "workdir", Ctx::abs_path);
    let environment = t
        .get("environment")
        .map(|item| read_environment(cx, item))
        .unwrap_or_default();
    let environment_file = cx.field(t, "environment-file", Ctx::abs_path);
    let pidfile = cx.field(t, "pidfile", Ctx::abs_path);
    if let Some(item) = t.get("pidfile").filter(|_| kind != ServiceType::Forking) {
        let msg = "`service.pidfile` is only used when `service.type` is \"forking\"".to_owned();
        cx.warning(&item.span(), msg);
    }
    let tty = cx.field(t, "tty", Ctx::abs_path);
    let main = cx.field(t, "main", Ctx::boolean).unwrap_or(false);
    if main {
        out.main = t.get("main").map(|item| cx.pos(&item.span()));
    }
    let user = t
        .get("user")
        .and_then(|item| cx.table("service.user".to_owned(), item));
    let user = user.and_then(|u| read_user(cx, &u));
    Some(ServiceConfig {
        name: name?,
        file: cx.src.path.to_path_buf(),
        supervisor: supervisor?,
        exec: exec?,
        workdir,
        kind,
        environment,
        environment_file,
        pidfile,
        tty,
        main,
        user,
        restart: RestartConfig::default(),
        readiness: ReadinessConfig::default(),
        deps: Dependencies::default(),
        cgroup: CgroupLimits::default(),
        namespace: NamespaceConfig::default(),
        shutdown: ShutdownConfig::default(),
        log: LogConfig::default(),
    })
}

/// Warns when a name differs from the file stem (`nginx` in `web.toml`).
pub(crate) fn warn_if_not_stem(cx: &mut Ctx<'_>, name: &str, item: &Item<'_>) {
    let path = cx.src.path;
    let stem = path.file_stem().map(|s| s.to_string_lossy());
    if stem.as_deref().is_some_and(|stem| stem != name) {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        let file = quote(&file);
        cx.warning(
            &item.span(),
            format!("name `{name}` does not match the file name `{file}`"),
        );
    }
}

/// Reads `[service] environment`: string values under valid variable names.
fn read_environment(cx: &mut Ctx<'_>, item: &Item<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(t) = cx.table("service.environment".to_owned(), item) else {
        return env;
    };
    let mut entries: Vec<_> = t.map.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let name = key.get_ref().as_ref();
        let path = t.key_path(name);
        if validate_env_name(name).is_err() {
            let shown = quote(name);
            let msg = format!(
                "invalid environment variable name `{shown}` in [service.environment]: it must be \
                 non-empty and contain neither `=` nor NUL"
            );
            cx.error(&key.span(), msg);
            continue;
        }
        if let Some(v) = cx.string(&path, value) {
            env.insert(name.to_owned(), v.to_owned());
        }
    }
    env
}

/// Reads `[service.user]`; `None` when it names nobody.
fn read_user(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> Option<UserSpec> {
    cx.check_keys(t, USER, SCHEMA);
    let user = cx.field(t, "user", Ctx::id_spec);
    let group = cx.field(t, "group", Ctx::id_spec);
    let mut supplementary_groups = Vec::new();
    if let Some(item) = t.get("supplementary-groups") {
        let path = "service.user.supplementary-groups";
        let items = cx
            .array(path, item, "an array of group names or numbers")
            .unwrap_or_default();
        for (i, element) in items.iter().enumerate() {
            if let Some(id) = cx.id_spec(&format!("{path}[{i}]"), element) {
                supplementary_groups.push(id);
            }
        }
    }
    let spec = UserSpec {
        user,
        group,
        supplementary_groups,
    };
    (spec != UserSpec::default()).then_some(spec)
}

/// Reads `[restart]`.
fn read_restart(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> RestartConfig {
    cx.check_keys(t, RESTART, SCHEMA);
    let mut r = RestartConfig::default();
    let policies = [
        ("permanent", RestartPolicy::Permanent),
        ("transient", RestartPolicy::Transient),
        ("temporary", RestartPolicy::Temporary),
    ];
    if let Some(p) = cx.field(t, "policy", |cx, p, i| cx.choice(p, i, &policies)) {
        r.policy = p;
    }
    if let Some(d) = cx.field(t, "delay", Ctx::duration) {
        r.delay = d;
    }
    r.max_delay = DEFAULT_MAX_DELAY.max(r.delay);
    if let Some(item) = t.get("max-delay")
        && let Some(d) = cx.duration("restart.max-delay", item)
    {
        if d < r.delay {
            let msg = format!(
                "`restart.max-delay` ({}) must not be shorter than `restart.delay` ({})",
                show_duration(d),
                show_duration(r.delay)
            );
            cx.error(&item.span(), msg);
        }
        r.max_delay = d;
    }
    let max = i64::from(u32::MAX);
    if let Some(n) = cx.field(t, "max-restarts", |cx, p, i| cx.integer(p, i, 0..=max)) {
        r.max_restarts = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(d) = cx.field(t, "max-restart-window", Ctx::nonzero_duration) {
        r.max_restart_window = d;
    }
    if let Some(d) = cx.field(t, "reset-after", Ctx::duration) {
        r.reset_after = d;
    }
    if let Some(item) = t.get("success-exit-codes") {
        let path = "restart.success-exit-codes";
        let items = cx
            .array(path, item, "an array of exit codes (0-255)")
            .unwrap_or_default();
        for (i, element) in items.iter().enumerate() {
            if let Some(code) = cx.integer(&format!("{path}[{i}]"), element, 0..=255) {
                let code = i32::try_from(code).unwrap_or_default();
                if !r.success_exit_codes.contains(&code) {
                    r.success_exit_codes.push(code);
                }
            }
        }
    }
    r
}

/// A duration the way a user would write it (`1m30s`, `250ms`).
pub(crate) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Reads `[readiness]`.
fn read_readiness(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> ReadinessConfig {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        None,
        Notify,
        TcpPort,
        Exec,
        Fd,
    }
    cx.check_keys(t, READINESS, SCHEMA);
    let kinds = [
        ("none", Kind::None),
        ("notify", Kind::Notify),
        ("tcp-port", Kind::TcpPort),
        ("exec", Kind::Exec),
        ("fd", Kind::Fd),
    ];
    let kind_item = t.get("type");
    let kind = kind_item.and_then(|item| cx.choice("readiness.type", item, &kinds));
    let port = cx.field(t, "port", |cx, p, i| cx.integer(p, i, 1..=65535));
    let port = port.and_then(|p| u16::try_from(p).ok());
    let host = t.get("host").and_then(|item| {
        let text = cx.string("readiness.host", item)?;
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let shown = quote(text);
                let msg = format!(
                    "invalid address `{shown}` for `readiness.host`: expected an IP address such \
                     as 127.0.0.1 or ::1"
                );
                cx.error(&item.span(), msg);
                None
            }
        }
    });
    let check_exec = cx.field(t, "check-exec", Ctx::command);
    let interval = cx.field(t, "interval", Ctx::nonzero_duration);
    let mut config = ReadinessConfig::default();
    if let Some(d) = cx.field(t, "timeout", Ctx::nonzero_duration) {
        config.timeout = d;
    }

    // Parameters of another readiness type are ignored: say so rather than stay silent.
    let kind_word = kind
        .and_then(|k| kinds.iter().find(|(_, v)| *v == k))
        .map(|(w, _)| *w);
    let used_by: [(&str, Kind, &str); 4] = [
        ("port", Kind::TcpPort, "tcp-port"),
        ("host", Kind::TcpPort, "tcp-port"),
        ("check-exec", Kind::Exec, "exec"),
        ("interval", Kind::Exec, "exec"),
    ];
    if kind.is_some() || kind_item.is_none() {
        for (key, wanted, word) in used_by {
            if let Some(item) = t.get(key).filter(|_| kind.unwrap_or(Kind::None) != wanted) {
                let msg = format!(
                    "`readiness.{key}` is ignored unless `readiness.type` is \"{word}\"{}",
                    kind_word
                        .map(|w| format!(" (it is \"{w}\")"))
                        .unwrap_or_default()
                );
                cx.warning(&item.span(), msg);
            }
        }
    }

    let needs = |cx: &mut Ctx<'_>, key: &str, word: &str| {
        let span = kind_item.map(|i| i.span()).unwrap_or(t.span.clone());
        if t.get(key).is_none() {
            cx.error(
                &span,
                format!("`readiness.type` \"{word}\" needs `readiness.{key}`"),
            );
        }
    };
    config.kind = match kind {
        None | Some(Kind::None) => Readiness::None,
        Some(Kind::Notify) => Readiness::Notify,
        Some(Kind::Fd) => Readiness::Fd,
        Some(Kind::TcpPort) => {
            needs(cx, "port", "tcp-port");
            Readiness::TcpPort {
                port: port.unwrap_or(1),
                host: host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            }
        }
        Some(Kind::Exec) => {
            needs(cx, "check-exec", "exec");
            Readiness::Exec {
                check_exec: check_exec.unwrap_or_default(),
                interval: interval.unwrap_or(Duration::from_secs(1)),
            }
        }
    };
    config
}

/// Reads `[dependencies]`, recording every reference with its position.
fn read_deps(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>, out: &mut ServiceOutcome) -> Dependencies {
    cx.check_keys(t, DEPENDENCIES, SCHEMA);
    let mut deps = Dependencies::default();
    let mut refs = Vec::new();
    for kind in [
        DepKind::Requires,
        DepKind::Wants,
        DepKind::After,
        DepKind::Before,
    ] {
        let key = kind.key();
        let Some(item) = t.get(key) else { continue };
        let path = t.key_path(key);
        let items = cx
            .array(&path, item, "an array of service names")
            .unwrap_or_default();
        let list = match kind {
            DepKind::Requires => &mut deps.requires,
            DepKind::Wants => &mut deps.wants,
            DepKind::After => &mut deps.after,
            DepKind::Before => &mut deps.before,
        };
        for (i, element) in items.iter().enumerate() {
            let Some(name) = cx.name(&format!("{path}[{i}]"), element) else {
                continue;
            };
            if list.contains(&name) {
                cx.warning(
                    &element.span(),
                    format!("`{name}` is listed twice in `{path}`"),
                );
                continue;
            }
            refs.push(DepRef {
                kind,
                name: name.clone(),
                pos: cx.pos(&element.span()),
            });
            list.push(name);
        }
    }
    refs.sort_by_key(|r| r.pos);
    out.deps = refs;
    deps
}

/// Reads `[cgroup]`.
fn read_cgroup(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> CgroupLimits {
    cx.check_keys(t, CGROUP, SCHEMA);
    let weight = |cx: &mut Ctx<'_>, key: &str| {
        let item = t.get(key)?;
        let w = cx.integer(&t.key_path(key), item, 1..=10_000)?;
        u32::try_from(w).ok()
    };
    let cpu_max = t.get("cpu-max").and_then(|item| {
        let text = cx.string("cgroup.cpu-max", item)?;
        value::parse_cpu_max(text)
            .map_err(|err| cx.bad_value("cgroup.cpu-max", item, "value", text, &err))
            .ok()
    });
    let pids_max = t.get("pids-max").and_then(|item| match item.get_ref() {
        DeValue::String(s) if s.as_ref() == "max" => Some(Limit::Max),
        DeValue::Integer(_) => cx
            .integer("cgroup.pids-max", item, 1..=i64::MAX)
            .and_then(|n| u64::try_from(n).ok())
            .map(Limit::Value),
        _ => {
            cx.wrong_type("cgroup.pids-max", item, "a number of processes or \"max\"");
            None
        }
    });
    CgroupLimits {
        memory_max: cx.field(t, "memory-max", Ctx::size),
        memory_high: cx.field(t, "memory-high", Ctx::size),
        cpu_weight: weight(cx, "cpu-weight"),
        cpu_max,
        pids_max,
        io_weight: weight(cx, "io-weight"),
    }
}

/// Reads `[namespace]`; mount options add `mnt` to `enable`.
fn read_namespace(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> NamespaceConfig {
    cx.check_keys(t, NAMESPACE, SCHEMA);
    let mut ns = NamespaceConfig::default();
    if let Some(item) = t.get("enable") {
        let items = cx
            .array("namespace.enable", item, "an array of namespace names")
            .unwrap_or_default();
        for (i, element) in items.iter().enumerate() {
            let path = format!("namespace.enable[{i}]");
            let Some(text) = cx.string(&path, element) else {
                continue;
            };
            match value::parse_namespace(text) {
                Ok(n) => ns.enable.push(n),
                Err(err) => cx.bad_value(&path, element, "namespace", text, &err),
            }
        }
    }
    if let Some(item) = t.get("bind-mounts") {
        let expected = "an array of tables such as { source = \"/a\", target = \"/b\" }";
        let items = cx
            .array("namespace.bind-mounts", item, expected)
            .unwrap_or_default();
        for (i, element) in items.iter().enumerate() {
            let path = format!("namespace.bind-mounts[{i}]");
            if let Some(entry) = cx.table(path, element)
                && let Some(mount) = read_bind_mount(cx, &entry)
            {
                ns.bind_mounts.push(mount);
            }
        }
    }
    if let Some(b) = cx.field(t, "private-tmp", Ctx::boolean) {
        ns.private_tmp = b;
    }
    let modes = [
        ("strict", ProtectSystem::Strict),
        ("full", ProtectSystem::Full),
    ];
    ns.protect_system = cx.field(t, "protect-system", |cx, p, i| cx.choice(p, i, &modes));
    if ns.private_tmp || ns.protect_system.is_some() || !ns.bind_mounts.is_empty() {
        ns.enable.push(Namespace::Mnt);
    }
    ns.enable.sort();
    ns.enable.dedup();
    ns
}

/// Reads one `bind-mounts` entry.
fn read_bind_mount(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> Option<BindMount> {
    cx.check_keys(t, BIND_MOUNT, &[]);
    let path_of = |cx: &mut Ctx<'_>, key: &str| match t.get(key) {
        Some(item) => cx.abs_path(&t.key_path(key), item),
        None => {
            cx.error(
                &t.span,
                format!("missing required key `{key}` in {}", t.label()),
            );
            None
        }
    };
    let source = path_of(cx, "source");
    let target = path_of(cx, "target");
    let writable = t
        .get("writable")
        .and_then(|item| cx.boolean(&t.key_path("writable"), item));
    Some(BindMount {
        source: source?,
        target: target?,
        writable: writable.unwrap_or(false),
    })
}

/// Reads `[shutdown]`.
fn read_shutdown(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> ShutdownConfig {
    cx.check_keys(t, SHUTDOWN, SCHEMA);
    let mut s = ShutdownConfig::default();
    if let Some(sig) = cx.field(t, "stop-signal", Ctx::signal) {
        s.stop_signal = sig;
    }
    if let Some(d) = cx.field(t, "stop-timeout", Ctx::duration) {
        s.stop_timeout = d;
    }
    s.stop_exec = cx.field(t, "stop-exec", Ctx::command);
    s
}

/// Reads `[log]`.
fn read_log(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> LogConfig {
    cx.check_keys(t, LOG, SCHEMA);
    let max_size = t
        .get("max-size")
        .and_then(|item| match cx.size("log.max-size", item)? {
            Limit::Value(0) | Limit::Max => {
                let msg = "`log.max-size` must be a size of at least 1 byte, not 0 or \"max\"";
                cx.error(&item.span(), msg.to_owned());
                None
            }
            Limit::Value(n) => Some(n),
        });
    let max = i64::from(u32::MAX);
    let max_files = cx.field(t, "max-files", |cx, p, i| cx.integer(p, i, 0..=max));
    LogConfig {
        max_size,
        max_files: max_files.and_then(|n| u32::try_from(n).ok()),
    }
}

impl ServiceOutcome {
    /// The outcome of a file that could not be read.
    pub(crate) fn unreadable(diag: Diagnostic) -> Self {
        Self {
            config: None,
            name: None,
            supervisor: None,
            main: None,
            deps: Vec::new(),
            diags: vec![diag],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;
    use std::path::PathBuf;

    use super::*;
    use crate::model::{CpuMax, IdSpec, SignalSpec};

    const MINIMAL: &str = "[service]\nname = \"web\"\nexec = [\"/bin/web\"]\n";

    /// Parses `text` as `web.toml`.
    fn outcome(text: &str) -> ServiceOutcome {
        parse(Path::new("web.toml"), text.as_bytes())
    }

    /// The diagnostics as `line:col: severity: message` lines.
    fn render(text: &str) -> String {
        let o = outcome(text);
        let mut out = String::new();
        for d in &o.diags {
            out.push_str(&format!(
                "{}:{}: {}: {}\n",
                d.line, d.col, d.severity, d.message
            ));
        }
        out
    }

    /// The parsed service, asserting that there is no diagnostic at all.
    fn parse_clean(text: &str) -> ServiceConfig {
        let o = outcome(text);
        assert!(
            o.diags.is_empty(),
            "unexpected diagnostics:\n{}",
            render(text)
        );
        o.config.expect("valid")
    }

    /// MINIMAL followed by `extra`.
    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    #[test]
    fn minimal_service_gets_every_default() {
        let c = parse_clean(MINIMAL);
        let want = ServiceConfig {
            name: "web".into(),
            file: PathBuf::from("web.toml"),
            supervisor: "root".into(),
            exec: vec!["/bin/web".into()],
            workdir: None,
            kind: ServiceType::Simple,
            environment: BTreeMap::new(),
            environment_file: None,
            pidfile: None,
            tty: None,
            main: false,
            user: None,
            restart: RestartConfig {
                policy: RestartPolicy::Permanent,
                delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(30),
                max_restarts: 5,
                max_restart_window: Duration::from_secs(60),
                reset_after: Duration::from_secs(60),
                success_exit_codes: vec![],
            },
            readiness: ReadinessConfig {
                kind: Readiness::None,
                timeout: Duration::from_secs(30),
            },
            deps: Dependencies::default(),
            cgroup: CgroupLimits::default(),
            namespace: NamespaceConfig::default(),
            shutdown: ShutdownConfig {
                stop_signal: SignalSpec {
                    number: 15,
                    name: "SIGTERM".into(),
                },
                stop_timeout: Duration::from_secs(10),
                stop_exec: None,
            },
            log: LogConfig {
                max_size: None,
                max_files: None,
            },
        };
        assert_eq!(c, want);
    }

    #[test]
    fn every_field_is_read_into_the_model() {
        let text = r#"
[service]
name = "web"
supervisor = "desktop"
exec = ["nginx", "-g", "daemon off;"]
workdir = "/srv/www"
type = "forking"
environment = { LANG = "C.UTF-8", "weird.name" = "x" }
environment-file = "/etc/default/web"
pidfile = "/run/web.pid"
tty = "/dev/tty1"
main = true

[service.user]
user = "www-data"
group = 33
supplementary-groups = ["adm", "44"]

[restart]
policy = "transient"
delay = "2s"
max-delay = "1m"
max-restarts = 3
max-restart-window = "5m"
reset-after = "90s"
success-exit-codes = [143, 0]

[readiness]
type = "tcp-port"
port = 8080
host = "::1"
timeout = "1m30s"

[dependencies]
requires = ["db"]
wants = ["cache"]
after = ["network"]
before = ["proxy"]

[cgroup]
memory-max = "512M"
memory-high = 268435456
cpu-weight = 200
cpu-max = "50%"
pids-max = 100
io-weight = 10000

[namespace]
enable = ["pid", "net", "uts", "ipc", "user", "cgroup"]
bind-mounts = [
    { source = "/srv/data", target = "/data", writable = true },
    { source = "/etc/ssl", target = "/etc/ssl" },
]
private-tmp = true
protect-system = "strict"

[shutdown]
stop-signal = "sigquit"
stop-timeout = "30s"
stop-exec = ["/usr/sbin/nginx", "-s", "quit"]

[log]
max-size = "10M"
max-files = 3
"#;
        let c = parse_clean(text);
        assert_eq!(c.supervisor, "desktop");
        assert_eq!(c.exec, ["nginx", "-g", "daemon off;"]);
        assert_eq!(c.workdir, Some(PathBuf::from("/srv/www")));
        assert_eq!(c.kind, ServiceType::Forking);
        let env: Vec<_> = c
            .environment
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("LANG", "C.UTF-8"), ("weird.name", "x")]);
        assert_eq!(c.environment_file, Some(PathBuf::from("/etc/default/web")));
        assert_eq!(c.pidfile, Some(PathBuf::from("/run/web.pid")));
        assert_eq!(c.tty, Some(PathBuf::from("/dev/tty1")));
        assert!(c.main);
        assert_eq!(
            c.user,
            Some(UserSpec {
                user: Some(IdSpec::Name("www-data".into())),
                group: Some(IdSpec::Id(33)),
                supplementary_groups: vec![IdSpec::Name("adm".into()), IdSpec::Id(44)],
            })
        );
        assert_eq!(
            c.restart,
            RestartConfig {
                policy: RestartPolicy::Transient,
                delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
                max_restarts: 3,
                max_restart_window: Duration::from_secs(300),
                reset_after: Duration::from_secs(90),
                success_exit_codes: vec![143, 0],
            }
        );
        assert_eq!(
            c.readiness,
            ReadinessConfig {
                kind: Readiness::TcpPort {
                    port: 8080,
                    host: IpAddr::V6(Ipv6Addr::LOCALHOST)
                },
                timeout: Duration::from_secs(90),
            }
        );
        assert_eq!(
            c.deps,
            Dependencies {
                requires: vec!["db".into()],
                wants: vec!["cache".into()],
                after: vec!["network".into()],
                before: vec!["proxy".into()],
            }
        );
        assert_eq!(
            c.cgroup,
            CgroupLimits {
                memory_max: Some(Limit::Value(512 << 20)),
                memory_high: Some(Limit::Value(256 << 20)),
                cpu_weight: Some(200),
                cpu_max: Some(CpuMax {
                    quota_us: Some(50_000),
                    period_us: 100_000
                }),
                pids_max: Some(Limit::Value(100)),
                io_weight: Some(10_000),
            }
        );
        assert_eq!(
            c.namespace,
            NamespaceConfig {
                enable: vec![
                    Namespace::Pid,
                    Namespace::Mnt,
                    Namespace::Net,
                    Namespace::Uts,
                    Namespace::Ipc,
                    Namespace::User,
                    Namespace::Cgroup,
                ],
                bind_mounts: vec![
                    BindMount {
                        source: "/srv/data".into(),
                        target: "/data".into(),
                        writable: true,
                    },
                    BindMount {
                        source: "/etc/ssl".into(),
                        target: "/etc/ssl".into(),
                        writable: false
                    },
                ],
                private_tmp: true,
                protect_system: Some(ProtectSystem::Strict),
            }
        );
        assert_eq!(
            c.shutdown,
            ShutdownConfig {
                stop_signal: SignalSpec {
                    number: 3,
                    name: "SIGQUIT".into()
                },
                stop_timeout: Duration::from_secs(30),
                stop_exec: Some(vec!["/usr/sbin/nginx".into(), "-s".into(), "quit".into()]),
            }
        );
        assert_eq!(
            c.log,
            LogConfig {
                max_size: Some(10 << 20),
                max_files: Some(3)
            }
        );
    }

    #[test]
    fn each_service_type_is_read() {
        for (word, kind) in [
            ("simple", ServiceType::Simple),
            ("oneshot", ServiceType::Oneshot),
            ("forking", ServiceType::Forking),
            ("notify", ServiceType::Notify),
        ] {
            let c = parse_clean(&format!(
                "[service]\nname = \"web\"\nexec = [\"x\"]\ntype = \"{word}\"\n"
            ));
            assert_eq!(c.kind, kind);
            assert_eq!(c.kind.as_str(), word);
        }
    }

    #[test]
    fn each_restart_policy_is_read() {
        for (word, policy) in [
            ("permanent", RestartPolicy::Permanent),
            ("transient", RestartPolicy::Transient),
            ("temporary", RestartPolicy::Temporary),
        ] {
            let c = parse_clean(&with(&format!("[restart]\npolicy = \"{word}\"\n")));
            assert_eq!(c.restart.policy, policy);
            assert_eq!(policy.as_str(), word);
        }
    }

    #[test]
    fn notify_type_implies_notify_readiness_unless_readiness_says_otherwise() {
        let notify = "[service]\nname = \"web\"\nexec = [\"x\"]\ntype = \"notify\"\n";
        assert_eq!(parse_clean(notify).readiness.kind, Readiness::Notify);
        let timeout_only = format!("{notify}[readiness]\ntimeout = \"5s\"\n");
        let c = parse_clean(&timeout_only);
        assert_eq!(c.readiness.kind, Readiness::Notify);
        assert_eq!(c.readiness.timeout, Duration::from_secs(5));
        let explicit = format!("{notify}[readiness]\ntype = \"fd\"\n");
        assert_eq!(parse_clean(&explicit).readiness.kind, Readiness::Fd);
    }

    #[test]
    fn readiness_kinds_carry_their_parameters() {
        let cases: &[(&str, Readiness)] = &[
            ("type = \"none\"", Readiness::None),
            ("type = \"notify\"", Readiness::Notify),
            ("type = \"fd\"", Readiness::Fd),
            (
                "type = \"tcp-port\"\nport = 5432",
                Readiness::TcpPort {
                    port: 5432,
                    host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                },
            ),
            (
                "type = \"tcp-port\"\nport = 65535\nhost = \"10.0.0.1\"",
                Readiness::TcpPort {
                    port: 65535,
                    host: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                },
            ),
            (
                "type = \"exec\"\ncheck-exec = [\"pg_isready\"]",
                Readiness::Exec {
                    check_exec: vec!["pg_isready".into()],
                    interval: Duration::from_secs(1),
                },
            ),
            (
                "type = \"exec\"\ncheck-exec = [\"true\"]\ninterval = \"250ms\"",
                Readiness::Exec {
                    check_exec: vec!["true".into()],
                    interval: Duration::from_millis(250),
                },
            ),
        ];
        for (body, want) in cases {
            let c = parse_clean(&with(&format!("[readiness]\n{body}\n")));
            assert_eq!(&c.readiness.kind, want, "{body}");
            assert_eq!(c.readiness.timeout, Duration::from_secs(30));
        }
    }

    #[test]
    fn mount_options_enable_the_mount_namespace() {
        let cases: &[(&str, &[Namespace])] = &[
            ("private-tmp = true", &[Namespace::Mnt]),
            ("private-tmp = false", &[]),
            ("protect-system = \"full\"", &[Namespace::Mnt]),
            (
                "bind-mounts = [{ source = \"/a\", target = \"/b\" }]",
                &[Namespace::Mnt],
            ),
            (
                "enable = [\"net\", \"mount\", \"mnt\", \"network\", \"pid\"]",
                &[Namespace::Pid, Namespace::Mnt, Namespace::Net],
            ),
            (
                "enable = [\"uts\"]\nprivate-tmp = true",
                &[Namespace::Mnt, Namespace::Uts],
            ),
            ("enable = []", &[]),
        ];
        for (body, want) in cases {
            let c = parse_clean(&with(&format!("[namespace]\n{body}\n")));
            assert_eq!(c.namespace.enable, *want, "{body}");
        }
        let c = parse_clean(&with("[namespace]\nprotect-system = \"full\"\n"));
        assert_eq!(c.namespace.protect_system, Some(ProtectSystem::Full));
    }

    #[test]
    fn bind_mounts_accept_arrays_of_tables() {
        let text = with(
            "[[namespace.bind-mounts]]\nsource = \"/a\"\ntarget = \"/b\"\n\n\
             [[namespace.bind-mounts]]\nsource = \"/c\"\ntarget = \"/d\"\nwritable = true\n",
        );
        let c = parse_clean(&text);
        assert_eq!(c.namespace.bind_mounts.len(), 2);
        assert!(c.namespace.bind_mounts[1].writable);
        assert_eq!(c.namespace.enable, [Namespace::Mnt]);
    }

    #[test]
    fn max_delay_defaults_to_30s_but_never_below_delay() {
        let cases: &[(&str, u64, u64)] = &[
            ("", 1, 30),
            ("delay = \"5s\"", 5, 30),
            ("delay = \"2m\"", 120, 120),
            ("delay = \"2m\"\nmax-delay = \"2m\"", 120, 120),
            ("delay = 0\nmax-delay = 0", 0, 0),
            ("max-delay = \"10m\"", 1, 600),
        ];
        for (body, delay, max_delay) in cases {
            let c = parse_clean(&with(&format!("[restart]\n{body}\n")));
            assert_eq!(c.restart.delay, Duration::from_secs(*delay), "{body}");
            assert_eq!(
                c.restart.max_delay,
                Duration::from_secs(*max_delay),
                "{body}"
            );
        }
    }

    #[test]
    fn durations_accept_strings_and_integer_seconds() {
        let cases: &[(&str, Duration)] = &[
            ("stop-timeout = 45", Duration::from_secs(45)),
            ("stop-timeout = 0", Duration::ZERO),
            ("stop-timeout = \"250ms\"", Duration::from_millis(250)),
            ("stop-timeout = \"1m30s\"", Duration::from_secs(90)),
            ("stop-timeout = \"1h\"", Duration::from_secs(3600)),
            ("stop-timeout = 0x10", Duration::from_secs(16)),
        ];
        for (body, want) in cases {
            let c = parse_clean(&with(&format!("[shutdown]\n{body}\n")));
            assert_eq!(c.shutdown.stop_timeout, *want, "{body}");
        }
    }

    #[test]
    fn limits_accept_sizes_numbers_and_max() {
        let c = parse_clean(&with(
            "[cgroup]\nmemory-max = \"max\"\nmemory-high = \"1G\"\npids-max = \"max\"\ncpu-max = \"max\"\n",
        ));
        assert_eq!(c.cgroup.memory_max, Some(Limit::Max));
        assert_eq!(c.cgroup.memory_high, Some(Limit::Value(1 << 30)));
        assert_eq!(c.cgroup.pids_max, Some(Limit::Max));
        assert_eq!(
            c.cgroup.cpu_max,
            Some(CpuMax {
                quota_us: None,
                period_us: 100_000
            })
        );
        let c = parse_clean(&with(
            "[cgroup]\ncpu-max = \"20000 50000\"\nmemory-max = 0\n",
        ));
        assert_eq!(
            c.cgroup.cpu_max,
            Some(CpuMax {
                quota_us: Some(20_000),
                period_us: 50_000
            })
        );
        assert_eq!(c.cgroup.memory_max, Some(Limit::Value(0)));
        assert!(!c.cgroup.is_empty());
    }

    #[test]
    fn stop_signals_accept_names_and_numbers() {
        let cases: &[(&str, i32, &str)] = &[
            ("\"SIGINT\"", 2, "SIGINT"),
            ("\"hup\"", 1, "SIGHUP"),
            ("\"SIGRTMIN+3\"", 37, "SIGRTMIN+3"),
            ("9", 9, "SIGKILL"),
            ("\"10\"", 10, "SIGUSR1"),
        ];
        for (value, number, name) in cases {
            let c = parse_clean(&with(&format!("[shutdown]\nstop-signal = {value}\n")));
            assert_eq!(
                c.shutdown.stop_signal,
                SignalSpec {
                    number: *number,
                    name: (*name).into()
                }
            );
        }
    }

    #[test]
    fn users_and_groups_accept_names_and_numbers() {
        let c = parse_clean(&with("[service.user]\nuser = 1000\n"));
        assert_eq!(
            c.user,
            Some(UserSpec {
                user: Some(IdSpec::Id(1000)),
                group: None,
                supplementary_groups: vec![]
            })
        );
        let c = parse_clean(&with("[service.user]\ngroup = \"0\"\n"));
        assert_eq!(c.user.and_then(|u| u.group), Some(IdSpec::Id(0)));
        let c = parse_clean(&with("[service.user]\n"));
        assert_eq!(c.user, None, "an empty [service.user] changes nothing");
        let c = parse_clean(&with("[service.user]\nsupplementary-groups = []\n"));
        assert_eq!(c.user, None);
    }

    #[test]
    fn user_table_may_be_written_inline() {
        let text = "[service]\nname = \"web\"\nexec = [\"x\"]\nuser = { user = \"nobody\" }\n";
        let c = parse_clean(text);
        assert_eq!(
            c.user.and_then(|u| u.user),
            Some(IdSpec::Name("nobody".into()))
        );
    }

    #[test]
    fn success_exit_codes_keep_order_without_duplicates() {
        let c = parse_clean(&with(
            "[restart]\nsuccess-exit-codes = [143, 1, 143, 255, 0]\n",
        ));
        assert_eq!(c.restart.success_exit_codes, [143, 1, 255, 0]);
    }

    #[test]
    fn dependency_references_keep_their_positions() {
        let o = outcome(&with(
            "[dependencies]\nrequires = [\"db\"]\nbefore = [\"x\", \"y\"]\n",
        ));
        let refs: Vec<_> = o
            .deps
            .iter()
            .map(|d| (d.kind, d.name.as_str(), d.pos.line, d.pos.col))
            .collect();
        assert_eq!(
            refs,
            [
                (DepKind::Requires, "db", 5, 13),
                (DepKind::Before, "x", 6, 11),
                (DepKind::Before, "y", 6, 16),
            ]
        );
    }

    #[test]
    fn outcome_keeps_name_supervisor_and_main_even_when_invalid() {
        let o = outcome("[service]\nname = \"web\"\nsupervisor = \"desk\"\nmain = true\n");
        assert!(o.config.is_none());
        assert_eq!(
            o.name.as_ref().map(|(n, p)| (n.as_str(), p.line, p.col)),
            Some(("web", 2, 8))
        );
        assert_eq!(
            o.supervisor
                .as_ref()
                .map(|(s, p)| (s.as_str(), p.map(|p| p.line))),
            Some(("desk", Some(3)))
        );
        assert_eq!(o.main.map(|p| p.line), Some(4));
        let o = outcome("[service]\nexec = [\"x\"]\n");
        assert_eq!(
            o.supervisor,
            Some(("root".into(), None)),
            "the default supervisor is known"
        );
    }

    /// Problem files and every diagnostic they produce, in order, with exact positions.
    #[test]
    fn invalid_files_report_every_problem_at_its_position() {
        let cases: &[(&str, &str)] = &[
            (
                "[service]\nnmae = \"web\"\nexce = [\"/bin/web\"]\npolicy = \"x\"\n[restat]\na = 1\n",
                "1:1: error: missing required key `name` in [service]\n\
                 1:1: error: missing required key `exec` in [service]\n\
                 2:1: error: unknown key `nmae` in [service]; did you mean `name`?\n\
                 3:1: error: unknown key `exce` in [service]; did you mean `exec`?\n\
                 4:1: error: unknown key `policy` in [service]; it belongs in [restart]\n\
                 5:2: error: unknown table [restat]; did you mean [restart]?\n",
            ),
            (
                "name = \"web\"\n[service]\nexec = \"/bin/web\"\ntype = \"oneshoot\"\nworkdir = \"rel\"\n\
                 main = \"yes\"\ntty = \"/dev/../tty\"\npidfile = \"/run/x.pid\"\n\
                 environment = { A = \"1\", \"B=C\" = \"x\", D = 5 }\nenvironment-file = 3\n",
                "1:1: error: unknown key `name` at the top level; it belongs in [service]\n\
                 2:1: error: missing required key `name` in [service]\n\
                 3:8: error: `service.exec` must be an array of strings such as [\"/usr/bin/foo\", \"--bar\"], found a string\n\
                 4:8: error: invalid value `oneshoot` for `service.type`: expected one of `simple`, `oneshot`, `forking`, `notify`; did you mean `oneshot`?\n\
                 5:11: error: `service.workdir` must be an absolute path, found `rel`\n\
                 6:8: error: `service.main` must be a boolean (true or false), found a string\n\
                 7:7: error: `service.tty` must not contain `..`\n\
                 8:11: warning: `service.pidfile` is only used when `service.type` is \"forking\"\n\
                 9:26: error: invalid environment variable name `B=C` in [service.environment]: it must be non-empty and contain neither `=` nor NUL\n\
                 9:43: error: `service.environment.D` must be a string, found an integer\n\
                 10:20: error: `service.environment-file` must be a string, found an integer\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[service.user]\nuser = \"bob\"\ngroup = 1000\n\
                 supplementary-groups = [\"a\", -1, \"x:y\", \"4294967295\", true]\n[service.user.extra]\n",
                "7:30: error: `service.user.supplementary-groups[1]` must be between 0 and 4294967294, found -1\n\
                 7:34: error: invalid user or group name `x:y` for `service.user.supplementary-groups[2]`: it must be non-empty, not start with `-`, and contain no `:`, `/`, whitespace or control characters\n\
                 7:41: error: `service.user.supplementary-groups[3]` must be between 0 and 4294967294, found 4294967295\n\
                 7:55: error: `service.user.supplementary-groups[4]` must be a name or a number, found a boolean\n\
                 8:15: error: unknown key `extra` in [service.user]\n",
            ),
            (
                "[service]\nname = \"Web\"\nsupervisor = \"../x\"\nexec = []\n[restart]\npolicy = \"transient\"\n\
                 delay = \"20s\"\nmax-delay = \"10s\"\nmax-restarts = -1\nmax-restart-window = \"0s\"\n\
                 reset-after = 1.5\nsuccess-exit-codes = [143, 256, \"x\"]\n",
                "2:8: error: invalid name `Web` for `service.name`: a name must start with a lowercase letter or a digit, not `W`\n\
                 3:14: error: invalid name `../x` for `service.supervisor`: a name must not contain `/`\n\
                 4:8: error: `service.exec` must name a program: the array is empty\n\
                 8:13: error: `restart.max-delay` (10s) must not be shorter than `restart.delay` (20s)\n\
                 9:16: error: `restart.max-restarts` must be between 0 and 4294967295, found -1\n\
                 10:22: error: `restart.max-restart-window` must be longer than zero\n\
                 11:15: error: `restart.reset-after` must be a duration such as \"30s\" or a number of seconds, found a float\n\
                 12:28: error: `restart.success-exit-codes[1]` must be between 0 and 255, found 256\n\
                 12:33: error: `restart.success-exit-codes[2]` must be an integer, found a string\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[readiness]\ntype = \"tcp-port\"\n\
                 host = \"localhost\"\ninterval = \"2s\"\ntimeout = 0\n",
                "5:8: error: `readiness.type` \"tcp-port\" needs `readiness.port`\n\
                 6:8: error: invalid address `localhost` for `readiness.host`: expected an IP address such as 127.0.0.1 or ::1\n\
                 7:12: warning: `readiness.interval` is ignored unless `readiness.type` is \"exec\" (it is \"tcp-port\")\n\
                 8:11: error: `readiness.timeout` must be longer than zero\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"/bin/web\", \"\"]\n[readiness]\ntype = \"exec\"\nport = 0\n\
                 [dependencies]\nrequires = [\"a\", \"a\", \"B\"]\nwants = \"x\"\n",
                "3:21: error: `service.exec[1]` must not be empty\n\
                 5:8: error: `readiness.type` \"exec\" needs `readiness.check-exec`\n\
                 6:8: error: `readiness.port` must be between 1 and 65535, found 0\n\
                 6:8: warning: `readiness.port` is ignored unless `readiness.type` is \"tcp-port\" (it is \"exec\")\n\
                 8:18: warning: `a` is listed twice in `dependencies.requires`\n\
                 8:23: error: invalid name `B` for `dependencies.requires[2]`: a name must start with a lowercase letter or a digit, not `B`\n\
                 9:9: error: `dependencies.wants` must be an array of service names, found a string\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[cgroup]\nmemory-max = \"12Q\"\nmemory-high = true\n\
                 cpu-weight = 0\nio-weight = 10001\ncpu-max = \"half\"\npids-max = 0\n",
                "5:14: error: invalid size `12Q` for `cgroup.memory-max`: unknown unit `Q` (use K, M, G or T, powers of 1024)\n\
                 6:15: error: `cgroup.memory-high` must be a size such as \"512M\", a number of bytes or \"max\", found a boolean\n\
                 7:14: error: `cgroup.cpu-weight` must be between 1 and 10000, found 0\n\
                 8:13: error: `cgroup.io-weight` must be between 1 and 10000, found 10001\n\
                 9:11: error: invalid value `half` for `cgroup.cpu-max`: expected \"max\", a percentage of one CPU such as \"50%\", or \"QUOTA PERIOD\" in microseconds such as \"50000 100000\"\n\
                 10:12: error: `cgroup.pids-max` must be at least 1, found 0\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[cgroup]\npids-max = \"100\"\ncpu-max = 5\n",
                "5:12: error: `cgroup.pids-max` must be a number of processes or \"max\", found a string\n\
                 6:11: error: `cgroup.cpu-max` must be a string, found an integer\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[namespace]\nenable = [\"pid\", \"time\", 3]\n\
                 bind-mounts = [{ source = \"rel\", target = \"/x\", extra = 1 }, { target = \"/y\" }, \"s\"]\n\
                 private-tmp = \"yes\"\nprotect-system = \"ful\"\n",
                "5:18: error: invalid namespace `time` for `namespace.enable[1]`: expected one of `pid`, `mnt`, `net`, `uts`, `ipc`, `user`, `cgroup`\n\
                 5:26: error: `namespace.enable[2]` must be a string, found an integer\n\
                 6:27: error: `namespace.bind-mounts[0].source` must be an absolute path, found `rel`\n\
                 6:49: error: unknown key `extra` in `namespace.bind-mounts[0]`\n\
                 6:62: error: missing required key `source` in `namespace.bind-mounts[1]`\n\
                 6:81: error: `namespace.bind-mounts[2]` must be a table, found a string\n\
                 7:15: error: `namespace.private-tmp` must be a boolean (true or false), found a string\n\
                 8:18: error: invalid value `ful` for `namespace.protect-system`: expected one of `strict`, `full`; did you mean `full`?\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[shutdown]\nstop-signal = \"SIGFOO\"\n\
                 stop-timeout = \"1.5s\"\nstop-exec = [\"\", \"x\"]\ntimeout = 1\n[log]\nmax-size = \"max\"\nmax-files = -2\n",
                "5:15: error: invalid signal `SIGFOO` for `shutdown.stop-signal`: unknown signal name\n\
                 6:16: error: invalid duration `1.5s` for `shutdown.stop-timeout`: fractions are not supported; use a smaller unit (for example \"1500ms\")\n\
                 7:14: error: `shutdown.stop-exec[0]` must not be empty\n\
                 8:1: error: unknown key `timeout` in [shutdown]; did you mean `stop-timeout`?\n\
                 10:12: error: `log.max-size` must be a size of at least 1 byte, not 0 or \"max\"\n\
                 11:13: error: `log.max-files` must be between 0 and 4294967295, found -2\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[shutdown]\nstop-signal = 99\nstop-exec = []\n\
                 [log]\nmax-size = 0\nsize = 1\n",
                "5:15: error: invalid signal `99` for `shutdown.stop-signal`: no usable signal has number 99 (use 1-31 or 34-64)\n\
                 6:13: error: `shutdown.stop-exec` must name a program: the array is empty\n\
                 8:12: error: `log.max-size` must be a size of at least 1 byte, not 0 or \"max\"\n\
                 9:1: error: unknown key `size` in [log]; did you mean `max-size`?\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\", 1]\n[restart]\ndelay = true\n\
                 max-restarts = \"5\"\n[dependencies]\nafter = [\"a/b\", \"..\"]\n",
                "3:14: error: `service.exec[1]` must be a string, found an integer\n\
                 5:9: error: `restart.delay` must be a duration such as \"30s\" or a number of seconds, found a boolean\n\
                 6:16: error: `restart.max-restarts` must be an integer, found a string\n\
                 8:10: error: invalid name `a/b` for `dependencies.after[0]`: a name must not contain `/`\n\
                 8:17: error: invalid name `..` for `dependencies.after[1]`: a name must not contain `..`\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\nuser = \"bob\"\nenvironment = [\"A=1\"]\n\
                 [namespace]\nenable = \"pid\"\nbind-mounts = { source = \"/a\" }\n\
                 [restart]\nsuccess-exit-codes = 143\n[readiness]\ncheck-exec = \"true\"\nport = 0x10000\n",
                "4:8: error: `service.user` must be a table, found a string\n\
                 5:15: error: `service.environment` must be a table, found an array\n\
                 7:10: error: `namespace.enable` must be an array of namespace names, found a string\n\
                 8:15: error: `namespace.bind-mounts` must be an array of tables such as { source = \"/a\", target = \"/b\" }, found a table\n\
                 10:22: error: `restart.success-exit-codes` must be an array of exit codes (0-255), found an integer\n\
                 12:14: error: `readiness.check-exec` must be an array of strings such as [\"/usr/bin/foo\", \"--bar\"], found a string\n\
                 12:14: warning: `readiness.check-exec` is ignored unless `readiness.type` is \"exec\"\n\
                 13:8: error: `readiness.port` must be between 1 and 65535, found 0x10000\n\
                 13:8: warning: `readiness.port` is ignored unless `readiness.type` is \"tcp-port\"\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[namespace]\n\
                 bind-mounts = [{ source = \"/a\" }, { source = \"/b\", target = \"/../c\", writable = 1 }]\n\
                 [service.user]\nsupplementary-groups = \"wheel\"\n",
                "5:16: error: missing required key `target` in `namespace.bind-mounts[0]`\n\
                 5:61: error: `namespace.bind-mounts[1].target` must not contain `..`\n\
                 5:81: error: `namespace.bind-mounts[1].writable` must be a boolean (true or false), found an integer\n\
                 7:24: error: `service.user.supplementary-groups` must be an array of group names or numbers, found a string\n",
            ),
            ("", "1:1: error: missing table [service]\n"),
            (
                "service = 5\n",
                "1:11: error: `service` must be a table, found an integer\n",
            ),
            (
                "[service.user]\nuser = \"x\"\n",
                "1:2: error: missing required key `name` in [service]\n\
                 1:2: error: missing required key `exec` in [service]\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[readiness]\ntype = \"tcp\"\nport = 80\n",
                "5:8: error: invalid value `tcp` for `readiness.type`: expected one of `none`, `notify`, `tcp-port`, `exec`, `fd`; did you mean `tcp-port`?\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\\u0000y\"]\nworkdir = \"/a\\u0000\"\n",
                "3:9: error: `service.exec[0]` must not contain a NUL character\n\
                 4:11: error: `service.workdir` must not contain a NUL character\n",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(render(text), *want, "for file:\n{text}");
            assert!(outcome(text).config.is_none(), "should be refused:\n{text}");
        }
    }

    #[test]
    fn warnings_alone_keep_the_service_valid() {
        let cases: &[(&str, &str)] = &[
            (
                "[service]\nname = \"other\"\nexec = [\"x\"]\n",
                "2:8: warning: name `other` does not match the file name `web.toml`\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\ntype = \"notify\"\n[readiness]\nport = 80\n",
                "6:8: warning: `readiness.port` is ignored unless `readiness.type` is \"tcp-port\"\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[readiness]\ntype = \"fd\"\nhost = \"::1\"\ncheck-exec = [\"y\"]\n",
                "6:8: warning: `readiness.host` is ignored unless `readiness.type` is \"tcp-port\" (it is \"fd\")\n\
                 7:14: warning: `readiness.check-exec` is ignored unless `readiness.type` is \"exec\" (it is \"fd\")\n",
            ),
            (
                "[service]\nname = \"web\"\nexec = [\"x\"]\n[dependencies]\nafter = [\"a\", \"a\"]\n",
                "5:15: warning: `a` is listed twice in `dependencies.after`\n",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(render(text), *want, "for file:\n{text}");
            assert!(outcome(text).config.is_some(), "should be valid:\n{text}");
        }
        let c = outcome(
            "[service]\nname = \"web\"\nexec = [\"x\"]\n[dependencies]\nafter = [\"a\", \"a\"]\n",
        );
        assert_eq!(c.config.map(|c| c.deps.after), Some(vec!["a".to_owned()]));
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        let cases: &[(&str, &str)] = &[
            (
                "[service]\nname = \"web\"\nexec = [\"/bin/web\"\n",
                "3:19: error: invalid TOML: unclosed array, expected `]`\n",
            ),
            (
                "[service]\nname = \"web\"\n[service]\n",
                "3:2: error: invalid TOML: duplicate key `service`\n",
            ),
            (
                "[service]\nname = \"web\"\nname = \"x\"\n",
                "3:1: error: invalid TOML: duplicate key `name`\n",
            ),
            (
                "[service\n",
                "1:9: error: invalid TOML: unclosed table, expected `]`\n",
            ),
            (
                "[service]\nname = web\n",
                "2:8: error: invalid TOML: string values must be quoted, expected literal string\n",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(render(text), *want, "for file:\n{text}");
        }
    }

    #[test]
    fn crlf_and_bom_files_parse_like_lf_files() {
        let crlf = MINIMAL.replace('\n', "\r\n");
        assert_eq!(parse_clean(&crlf).exec, ["/bin/web"]);
        let bom = format!("\u{FEFF}{MINIMAL}");
        assert_eq!(parse_clean(&bom).name, "web");
        let bad = format!(
            "\u{FEFF}{}",
            with("[restart]\ndelay = \"x\"\n").replace('\n', "\r\n")
        );
        assert_eq!(
            render(&bad),
            "5:9: error: invalid duration `x` for `restart.delay`: unexpected character `x`\n"
        );
    }

    #[test]
    fn non_utf8_is_reported_at_the_first_bad_byte() {
        let mut bytes = MINIMAL.as_bytes().to_vec();
        bytes.extend_from_slice(b"# caf\xE9\n");
        let o = parse(Path::new("web.toml"), &bytes);
        let d: Vec<_> = o
            .diags
            .iter()
            .map(|d| (d.line, d.col, d.message.as_str()))
            .collect();
        assert_eq!(d, [(4, 6, "file is not valid UTF-8 (byte 0xE9)")]);
        assert!(o.config.is_none());
    }

    #[test]
    fn huge_files_are_refused_without_parsing() {
        let mut text = MINIMAL.to_owned();
        let filler = "# padding padding padding padding padding padding padding padding\n";
        while text.len() < 10 << 20 {
            text.push_str(filler);
        }
        let o = outcome(&text);
        assert_eq!(o.diags.len(), 1);
        assert_eq!((o.diags[0].line, o.diags[0].col), (0, 0));
        assert!(
            o.diags[0].message.starts_with("file is too large ("),
            "{}",
            o.diags[0].message
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let depth = 400_000;
        let arrays = format!("{MINIMAL}x = {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let tables = format!(
            "{MINIMAL}x = {}1{}\n",
            "{a=".repeat(depth / 4),
            "}".repeat(depth / 4)
        );
        let dotted = format!("{MINIMAL}{} = 1\n", vec!["a"; depth / 2].join("."));
        let headers = format!("{MINIMAL}[{}]\n", vec!["a"; depth / 2].join("."));
        for text in [arrays, tables, dotted, headers] {
            assert!(text.len() <= crate::MAX_FILE_SIZE);
            let o = outcome(&text);
            assert!(o.config.is_none());
            assert_eq!(o.diags.len(), 1, "{:?}", o.diags);
            assert!(
                o.diags[0].message.starts_with("invalid TOML: "),
                "{}",
                o.diags[0].message
            );
        }
        // toml gives no position for a key that is too deep; the key's own line is found.
        let dotted = format!("{MINIMAL}{} = 1\n", vec!["a"; depth / 2].join("."));
        assert_eq!(
            render(&dotted),
            "4:1: error: invalid TOML: the document is nested too deeply\n"
        );
    }

    #[test]
    fn long_user_text_is_shortened_in_messages() {
        let long = "x".repeat(5000);
        let o = outcome(&with(&format!("[restart]\n{long} = 1\n")));
        assert_eq!(o.diags.len(), 1);
        assert!(o.diags[0].message.len() < 200, "{}", o.diags[0].message);
    }

    /// A small deterministic fuzzer: random bytes and random edits of a full file must never
    /// panic, and every diagnostic must have a sane position.
    #[test]
    fn arbitrary_input_never_panics() {
        let base = with(
            "[restart]\ndelay = \"1m30s\"\n[readiness]\ntype = \"tcp-port\"\nport = 80\n\
             [namespace]\nbind-mounts = [{ source = \"/a\", target = \"/b\" }]\n[shutdown]\nstop-signal = \"TERM\"\n",
        );
        let alphabet = b"[]{}=\",.'\n\r\t #\\-_azAZ09\xFF\xC3\xA9\0";
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let mut bytes = if round % 3 == 0 {
                Vec::new()
            } else {
                base.as_bytes().to_vec()
            };
            let edits = 1 + next() % 8;
            for _ in 0..edits {
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                let at = if bytes.is_empty() {
                    0
                } else {
                    (next() % bytes.len() as u64) as usize
                };
                match next() % 3 {
                    0 => bytes.insert(at, c),
                    1 if !bytes.is_empty() => bytes[at] = c,
                    _ if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.push(c),
                }
            }
            let o = parse(Path::new("web.toml"), &bytes);
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            for d in &o.diags {
                assert!(d.line <= lines, "line {} of {lines} in {d}", d.line);
            }
            assert_eq!(
                o.config.is_some(),
                !o.diags.iter().any(|d| d.severity == Severity::Error)
            );
        }
    }

    #[test]
    fn show_duration_spells_durations_back() {
        let cases = [
            (0, "0s"),
            (250, "250ms"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (90_061_001, "1d1h1m1s1ms"),
        ];
        for (ms, want) in cases {
            assert_eq!(show_duration(Duration::from_millis(ms)), want);
        }
    }
}
