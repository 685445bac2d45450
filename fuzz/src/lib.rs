//! The checks behind dynamod's fuzz targets.
//!
//! Each `fuzz_targets/*.rs` file is one line that hands libFuzzer's input to a function here.
//! Besides "never panics", every function asserts properties the parser promises, so the fuzzer
//! also finds wrong answers, not only crashes:
//!
//! - configuration: a file is valid exactly when it has no error; every diagnostic names one of
//!   the input files and a line and column inside it, reads as one lowercase line, and is the
//!   same on a second run; a valid model obeys the documented rules (name grammar, absolute
//!   paths, ranges); after the cross-file checks, names are unique, every service has a known
//!   supervisor, at most one is `main`, and the valid services have no dependency cycle.
//! - environment files: keys are shell names, values have no NUL, errors name a line of the
//!   file, and what was parsed survives being written back and parsed again.
//! - wire protocol: the frame decoder never buffers more than it was given, never yields a
//!   payload over the limit, and every message type that decodes from a payload encodes back
//!   to an equal value.
//! - notify datagrams: the size limit holds, `MAINPID` is positive, and a parsed message
//!   survives being written back and parsed again.
//!
//! The same functions run over the committed seeds in this crate's tests (`cargo test` in
//! `fuzz/`), so a plain build checks the corpora without libFuzzer.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt::Debug;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use dynamod_config::value::validate_name;
use dynamod_config::{
    Config, Diagnostic, Readiness, ServiceConfig, Severity, SupervisorConfig, envfile,
    load_sources, parse_service, parse_supervisor,
};
use dynamod_proto::{
    FrameDecoder, HEADER_LEN, Hello, InitMsg, LogMsg, LogReply, LogRequest, MAX_FRAME, ProtoError,
    Request, Response, SvmgrMsg, decode_payload, encode,
};
use dynamod_svmgr::notify::{self, MAX_DATAGRAM, NotifyError, NotifyMsg};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod seeds;

/// Where the fuzzed configuration files pretend to live.
const CONFIG_ROOT: &str = "/etc/dynamod";

/// The line that opens a new file in a [`split_files`] input.
const FILE_MARKER: &[u8] = b"--- ";

/// Longest message a single-file diagnostic may have: user text is shortened in messages.
const MAX_MESSAGE_LEN: usize = 600;

/// What a fuzz target runs on one input; it panics when a property does not hold.
pub type Check = fn(&[u8]);

/// Every fuzz target by name (the name of its `fuzz_targets/` file and `seeds/` directory).
pub const TARGETS: [(&str, Check); 6] = [
    ("config_service", service_file),
    ("config_supervisor", supervisor_file),
    ("config_load", config_dirs),
    ("envfile", env_file),
    ("proto_frames", proto_stream),
    ("notify", notify_datagram),
];

/// Configuration files as [`load_sources`] takes them.
pub type Files = Vec<(PathBuf, Vec<u8>)>;

/// Fuzz target `config_service`: one service file.
pub fn service_file(data: &[u8]) {
    let path = Path::new("/etc/dynamod/services/web.toml");
    let result = parse_service(path, data);
    let files = [(path.to_path_buf(), data.to_vec())];
    match &result {
        Ok((config, warnings)) => {
            check_diagnostics(&files, warnings, true);
            assert!(warnings.iter().all(|d| d.severity == Severity::Warning));
            check_service(config, path);
        }
        Err(diags) => {
            check_diagnostics(&files, diags, true);
            assert!(
                diags.iter().any(Diagnostic::is_error),
                "refused without an error"
            );
        }
    }
    assert_eq!(parse_service(path, data), result, "a second parse differs");
}

/// Fuzz target `config_supervisor`: one supervisor file.
pub fn supervisor_file(data: &[u8]) {
    let path = Path::new("/etc/dynamod/supervisors/desk.toml");
    let result = parse_supervisor(path, data);
    let files = [(path.to_path_buf(), data.to_vec())];
    match &result {
        Ok((config, warnings)) => {
            check_diagnostics(&files, warnings, true);
            assert!(warnings.iter().all(|d| d.severity == Severity::Warning));
            check_supervisor(config);
        }
        Err(diags) => {
            check_diagnostics(&files, diags, true);
            assert!(
                diags.iter().any(Diagnostic::is_error),
                "refused without an error"
            );
        }
    }
    assert_eq!(
        parse_supervisor(path, data),
        result,
        "a second parse differs"
    );
}

/// Fuzz target `config_load`: several service and supervisor files (see [`split_files`]) through
/// the cross-file checks.
pub fn config_dirs(data: &[u8]) {
    let (services, supervisors) = split_files(data);
    let config = load_sources(services.clone(), supervisors.clone());
    let all: Files = services.iter().chain(&supervisors).cloned().collect();
    check_diagnostics(&all, &config.diagnostics, false);
    check_config(&config, &services);
    let again = load_sources(services, supervisors);
    assert_eq!(again.services, config.services, "a second load differs");
    assert_eq!(again.invalid, config.invalid, "a second load differs");
    assert_eq!(
        again.supervisors, config.supervisors,
        "a second load differs"
    );
    assert_eq!(
        again.diagnostics, config.diagnostics,
        "a second load differs"
    );
}

/// Splits one input into configuration files.
///
/// A line `--- PATH` opens a file; `PATH` under `supervisors/` is a supervisor file, anything
/// else (with or without `services/`) a service file; text before the first marker is
/// `services/unnamed.toml`. Only names [`dynamod_config::load`] would read are kept: one path
/// component, no NUL, not hidden, ending in `.toml`. A path seen twice keeps its first file.
/// Each list comes sorted by path under `/etc/dynamod`, as `load` reads a directory.
pub fn split_files(data: &[u8]) -> (Files, Files) {
    let mut files: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(FILE_MARKER) {
            files.extend(current.take());
            let name = name.strip_suffix(b"\n").unwrap_or(name);
            let name = name.strip_suffix(b"\r").unwrap_or(name);
            current = Some((name.to_vec(), Vec::new()));
        } else {
            let (_, body) =
                current.get_or_insert_with(|| (b"services/unnamed.toml".to_vec(), Vec::new()));
            body.extend_from_slice(line);
        }
    }
    files.extend(current);

    let mut seen = BTreeSet::new();
    let (mut services, mut supervisors) = (Vec::new(), Vec::new());
    for (name, body) in files {
        let (dir, file) = match name.strip_prefix(b"supervisors/") {
            Some(file) => ("supervisors", file),
            None => ("services", name.strip_prefix(b"services/").unwrap_or(&name)),
        };
        let readable = !file.contains(&b'/')
            && !file.contains(&0)
            && !file.starts_with(b".")
            && file.ends_with(b".toml");
        if !readable {
            continue;
        }
        let path = Path::new(CONFIG_ROOT)
            .join(dir)
            .join(OsStr::from_bytes(file));
        if !seen.insert(path.clone()) {
            continue;
        }
        if dir == "supervisors" {
            supervisors.push((path, body));
        } else {
            services.push((path, body));
        }
    }
    services.sort();
    supervisors.sort();
    (services, supervisors)
}

/// Every diagnostic names an input file, a position inside it (line 0 only for whole-file
/// messages) and one lowercase line of text without a final period.
fn check_diagnostics(files: &[(PathBuf, Vec<u8>)], diags: &[Diagnostic], single_file: bool) {
    for d in diags {
        let Some((_, bytes)) = files.iter().find(|(p, _)| *p == d.file) else {
            panic!("{d} names a file that was not loaded");
        };
        let lines = bytes.split(|&b| b == b'\n').count();
        if d.line == 0 {
            assert_eq!(d.col, 0, "{d}: a column without a line");
            assert!(
                d.message.starts_with("file is too large"),
                "{d}: only a whole-file problem may lack a line"
            );
        } else {
            assert!(d.line <= lines, "{d}: line past the end ({lines} lines)");
            if let Some(width) = line_width(bytes, d.line) {
                assert!(
                    d.col <= width + 1,
                    "{d}: column past the end of the line ({width} characters)"
                );
            }
        }
        let m = &d.message;
        assert!(!m.is_empty(), "{d}: empty message");
        assert!(
            !m.starts_with(|c: char| c.is_uppercase()),
            "{d}: message starts uppercase"
        );
        assert!(!m.ends_with('.'), "{d}: message ends with a period");
        // File names may hold control characters; the rest of a message may not.
        let mut rest = m.clone();
        for (path, _) in files {
            rest = rest.replace(&path.display().to_string(), "FILE");
        }
        assert!(
            !rest.contains(char::is_control),
            "{d}: control character in the message"
        );
        if single_file {
            assert!(
                m.len() <= MAX_MESSAGE_LEN,
                "{d}: message of {} bytes",
                m.len()
            );
        }
        assert!(
            d.located_message()
                .starts_with(&d.file.display().to_string())
        );
    }
}

/// The width in characters of 1-based line `n` (without its line ending, LF or CRLF), when the
/// file is UTF-8. A `\r` not followed by `\n` is an ordinary character.
fn line_width(bytes: &[u8], n: usize) -> Option<usize> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.split_inclusive('\n').nth(n - 1).unwrap_or("");
    let line = line
        .strip_suffix('\n')
        .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
    Some(line.chars().count())
}

/// A valid service obeys the rules its documentation states.
fn check_service(c: &ServiceConfig, path: &Path) {
    assert_eq!(c.file, path);
    assert_eq!(
        validate_name(&c.name),
        Ok(()),
        "invalid name {:?} accepted",
        c.name
    );
    assert_eq!(
        validate_name(&c.supervisor),
        Ok(()),
        "invalid supervisor {:?}",
        c.supervisor
    );
    check_command(&c.exec);
    for (k, v) in &c.environment {
        assert!(
            !k.is_empty() && !k.contains(['=', '\0']),
            "bad variable name {k:?}"
        );
        assert!(!v.contains('\0'), "NUL in the value of {k}");
    }
    let paths = [&c.workdir, &c.environment_file, &c.pidfile, &c.tty];
    for p in paths.into_iter().flatten() {
        assert!(p.is_absolute(), "relative path {p:?} accepted");
    }
    let r = &c.restart;
    assert!(r.max_delay >= r.delay, "max-delay below delay");
    assert!(!r.max_restart_window.is_zero(), "zero restart window");
    let codes: BTreeSet<_> = r.success_exit_codes.iter().collect();
    assert_eq!(
        codes.len(),
        r.success_exit_codes.len(),
        "duplicate success codes"
    );
    assert!(r.success_exit_codes.iter().all(|c| (0..=255).contains(c)));
    match &c.readiness.kind {
        Readiness::TcpPort { port, .. } => assert_ne!(*port, 0),
        Readiness::Exec {
            check_exec,
            interval,
        } => {
            check_command(check_exec);
            assert!(!interval.is_zero(), "zero readiness interval");
        }
        Readiness::None | Readiness::Notify | Readiness::Fd => {}
    }
    assert!(!c.readiness.timeout.is_zero(), "zero readiness timeout");
    let deps = &c.deps;
    for name in deps
        .requires
        .iter()
        .chain(&deps.wants)
        .chain(&deps.after)
        .chain(&deps.before)
    {
        assert_eq!(validate_name(name), Ok(()), "invalid dependency {name:?}");
    }
    let ns = &c.namespace;
    assert!(
        ns.enable.windows(2).all(|w| w[0] < w[1]),
        "namespaces not sorted and unique"
    );
    let mounts = !ns.bind_mounts.is_empty() || ns.private_tmp || ns.protect_system.is_some();
    if mounts {
        assert!(
            ns.enable.contains(&dynamod_config::Namespace::Mnt),
            "mounts without mnt"
        );
    }
    for m in &ns.bind_mounts {
        assert!(m.source.is_absolute() && m.target.is_absolute());
    }
    for w in [c.cgroup.cpu_weight, c.cgroup.io_weight]
        .into_iter()
        .flatten()
    {
        assert!((1..=10_000).contains(&w), "weight {w} accepted");
    }
    let sig = c.shutdown.stop_signal.number;
    assert!((1..=64).contains(&sig), "signal {sig} accepted");
    if let Some(stop) = &c.shutdown.stop_exec {
        check_command(stop);
    }
    if let Some(size) = c.log.max_size {
        assert!(size > 0);
    }
}

/// A command is a non-empty program followed by arguments, none with a NUL.
fn check_command(argv: &[String]) {
    assert!(
        argv.first().is_some_and(|p| !p.is_empty()),
        "empty command {argv:?}"
    );
    assert!(argv.iter().all(|a| !a.contains('\0')), "NUL in {argv:?}");
}

/// A valid supervisor has a valid name and parent (only root has none).
fn check_supervisor(c: &SupervisorConfig) {
    assert_eq!(
        validate_name(&c.name),
        Ok(()),
        "invalid name {:?} accepted",
        c.name
    );
    match &c.parent {
        Some(parent) => assert_eq!(validate_name(parent), Ok(())),
        None => assert_eq!(c.name, dynamod_config::ROOT_SUPERVISOR),
    }
    assert!(!c.max_restart_window.is_zero(), "zero restart window");
}

/// The result of the cross-file checks is consistent.
fn check_config(config: &Config, services: &Files) {
    let sups = &config.supervisors;
    assert_eq!(
        sups.first().map(|s| s.name.as_str()),
        Some("root"),
        "root is not first"
    );
    let mut seen = BTreeSet::new();
    for s in sups {
        check_supervisor(s);
        if let Some(parent) = &s.parent {
            assert!(
                seen.contains(parent.as_str()),
                "{} listed before its parent {parent}",
                s.name
            );
        }
        assert!(
            seen.insert(s.name.as_str()),
            "supervisor {} listed twice",
            s.name
        );
    }

    let mut names = BTreeMap::new();
    for s in &config.services {
        assert!(
            seen.contains(s.supervisor.as_str()),
            "{}: unknown supervisor",
            s.name
        );
        assert!(
            !seen.contains(s.name.as_str()),
            "{} is also a supervisor",
            s.name
        );
        assert!(
            names.insert(s.name.as_str(), s).is_none(),
            "service {} listed twice",
            s.name
        );
        let (_, bytes) = services
            .iter()
            .find(|(p, _)| *p == s.file)
            .expect("its file was loaded");
        let alone = parse_service(&s.file, bytes);
        assert!(alone.is_ok(), "{}: valid together, invalid alone", s.name);
        check_service(s, &s.file);
    }
    let mains = config.services.iter().filter(|s| s.main).count();
    assert!(mains <= 1, "{mains} main services");
    let files: BTreeSet<_> = config.services.iter().map(|s| &s.file).collect();
    for bad in &config.invalid {
        assert!(
            !files.contains(&bad.file),
            "{} is both valid and invalid",
            bad.file.display()
        );
        assert!(
            bad.reason.starts_with(&bad.file.display().to_string()),
            "reason: {}",
            bad.reason
        );
    }
    assert_eq!(config.services.len() + config.invalid.len(), services.len());
    assert_acyclic(&names);
}

/// The dependency graph of the valid services (every kind, `before` reversed) has no cycle.
fn assert_acyclic(services: &BTreeMap<&str, &ServiceConfig>) {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (&name, s) in services {
        edges.entry(name).or_default();
        let d = &s.deps;
        for dep in d.requires.iter().chain(&d.wants).chain(&d.after) {
            if services.contains_key(dep.as_str()) {
                edges.entry(name).or_default().insert(dep);
            }
        }
        for dep in &d.before {
            if services.contains_key(dep.as_str()) {
                edges.entry(dep).or_default().insert(name);
            }
        }
    }
    // Kahn's algorithm: repeatedly remove nodes that depend on nothing left.
    let mut left = edges;
    loop {
        let free: Vec<&str> = left
            .iter()
            .filter(|(_, out)| out.is_empty())
            .map(|(n, _)| *n)
            .collect();
        if free.is_empty() {
            break;
        }
        for n in &free {
            left.remove(n);
        }
        for out in left.values_mut() {
            for n in &free {
                out.remove(n);
            }
        }
    }
    assert!(
        left.is_empty(),
        "valid services on a cycle: {:?}",
        left.keys().collect::<Vec<_>>()
    );
}

/// Fuzz target `envfile`: one environment file.
pub fn env_file(data: &[u8]) {
    let parsed = envfile::parse_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            envfile::parse(text),
            parsed,
            "parse and parse_bytes disagree"
        );
    }
    match parsed {
        Ok(pairs) => {
            for (k, v) in &pairs {
                assert!(is_shell_name(k), "bad key {k:?}");
                assert!(!v.contains('\0'), "NUL in the value of {k}");
            }
            let text = render_env(&pairs);
            assert_eq!(envfile::parse(&text), Ok(pairs), "written back as {text:?}");
        }
        Err(e) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(
                (1..=lines).contains(&e.line()),
                "{e}: not a line of the file ({lines})"
            );
            assert!(e.to_string().starts_with(&format!("line {}: ", e.line())));
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes pairs back as an environment file: every value in double quotes, with `\`, `"`, `$`
/// and newlines escaped.
pub fn render_env(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' | '"' | '$' => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\"\n");
    }
    out
}

/// Fuzz target `proto_frames`: a byte stream into a [`FrameDecoder`].
///
/// The first byte sets how many bytes each `push` gets (1–256), so frames also arrive split at
/// every possible place; each complete payload is decoded as every message type.
pub fn proto_stream(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let mut dec = FrameDecoder::new();
    let (mut pushed, mut taken) = (0, 0);
    for piece in stream.chunks(chunk) {
        dec.push(piece);
        pushed += piece.len();
        loop {
            match dec.next_payload() {
                Ok(Some(payload)) => {
                    assert!(payload.len() <= MAX_FRAME, "payload over the limit");
                    taken += HEADER_LEN + payload.len();
                    decode_every_type(&payload);
                }
                Ok(None) => break,
                Err(err) => {
                    // A reader drops the connection here; the error only has to read well.
                    assert!(!err.to_string().is_empty());
                    assert!(matches!(
                        err,
                        ProtoError::BadMagic(..) | ProtoError::TooLarge(_)
                    ));
                    return;
                }
            }
        }
        assert_eq!(taken + dec.buffered(), pushed, "bytes lost or invented");
    }

    // The typed reader over the whole stream at once: errors, never a panic.
    let mut dec = FrameDecoder::new();
    dec.push(stream);
    while let Ok(Some(_)) | Err(ProtoError::Decode(_)) = dec.next::<Request>() {}
}

/// Decodes a payload as each message type; whatever decodes must round-trip.
fn decode_every_type(payload: &[u8]) {
    round_trip::<Hello>(payload);
    round_trip::<InitMsg>(payload);
    round_trip::<SvmgrMsg>(payload);
    round_trip::<Request>(payload);
    round_trip::<Response>(payload);
    round_trip::<LogMsg>(payload);
    round_trip::<LogRequest>(payload);
    round_trip::<LogReply>(payload);
    init_wire_agrees(payload);
}

/// init's serde-free codec (`dynamod_proto::init_wire`): what it decodes as a `SvmgrMsg`, serde
/// decodes to the same value, and it encodes every `InitMsg` to serde's bytes.
fn init_wire_agrees(payload: &[u8]) {
    if let Ok(msg) = dynamod_proto::init_wire::decode_svmgr_msg(payload) {
        assert_eq!(decode_payload::<SvmgrMsg>(payload).ok(), Some(msg));
    }
    if let Ok(msg) = decode_payload::<InitMsg>(payload) {
        let mut lean = Vec::new();
        if dynamod_proto::init_wire::encode_init_msg(&msg, &mut lean).is_ok() {
            assert_eq!(Some(lean), encode(&msg).ok(), "{msg:?}");
        }
    }
}

/// If `payload` decodes as `T`, encoding the value and decoding it again gives it back.
fn round_trip<T>(payload: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(value) = decode_payload::<T>(payload) else {
        return;
    };
    let frame = match encode(&value) {
        Ok(frame) => frame,
        // Re-encoding may legitimately grow past the limit (e.g. structs sent as arrays come
        // back as maps with field names).
        Err(ProtoError::TooLarge(_)) => return,
        Err(err) => panic!("{value:?} decoded but does not encode: {err}"),
    };
    let mut dec = FrameDecoder::new();
    dec.push(&frame);
    let back: Option<T> = dec.next().unwrap_or_else(|e| panic!("{value:?}: {e}"));
    assert_eq!(back.as_ref(), Some(&value), "changed by a round trip");
    assert_eq!(dec.buffered(), 0);
}

/// Fuzz target `notify`: one notify-socket datagram.
pub fn notify_datagram(data: &[u8]) {
    match notify::parse(data) {
        Err(NotifyError::TooLarge(n)) => {
            assert_eq!(n, data.len());
            assert!(n > MAX_DATAGRAM);
        }
        Err(NotifyError::Malformed) => assert!(data.len() <= MAX_DATAGRAM),
        Ok(msg) => {
            assert!(data.len() <= MAX_DATAGRAM);
            assert!(
                msg.main_pid.is_none_or(|p| p > 0),
                "MAINPID {:?}",
                msg.main_pid
            );
            assert!(msg.status.as_ref().is_none_or(|s| !s.contains('\n')));
            let again = render_notify(&msg);
            assert_eq!(notify::parse(&again), Ok(msg), "written back as {again:?}");
        }
    }
}

/// Writes a parsed message back as a datagram.
pub fn render_notify(msg: &NotifyMsg) -> Vec<u8> {
    let mut lines = Vec::new();
    for (set, line) in [
        (msg.ready, "READY=1"),
        (msg.stopping, "STOPPING=1"),
        (msg.reloading, "RELOADING=1"),
    ] {
        if set {
            lines.push(line.to_owned());
        }
    }
    if let Some(s) = &msg.status {
        lines.push(format!("STATUS={s}"));
    }
    if let Some(p) = msg.main_pid {
        lines.push(format!("MAINPID={p}"));
    }
    if let Some(e) = msg.errno {
        lines.push(format!("ERRNO={e}"));
    }
    lines.join("\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `check` over every file of `fuzz/seeds/TARGET`, returning how many there were.
    fn replay(target: &str, check: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
        n
    }

    #[test]
    fn every_seed_passes_its_target() {
        for (target, check) in TARGETS {
            assert!(replay(target, check) > 0, "no seeds for {target}");
        }
    }

    /// The seeds that stand for good input are accepted, so the fuzzer starts deep in the
    /// parser rather than at its first error.
    #[test]
    fn seeds_meant_to_be_valid_are_valid() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let seeds = seeds::all(&repo).unwrap();
        let named = |target: &str, name: &str| {
            seeds
                .iter()
                .find(|s| s.target == target && s.name == name)
                .unwrap()
                .bytes
                .clone()
        };
        let path = Path::new("/etc/dynamod/services/web.toml");
        for s in seeds.iter().filter(|s| s.target == "config_service") {
            let result = parse_service(path, &s.bytes);
            if s.name == "many-errors.toml" {
                assert!(result.is_err());
            } else {
                assert!(result.is_ok(), "{}: {result:?}", s.name);
            }
        }
        let sup = Path::new("/etc/dynamod/supervisors/desk.toml");
        for s in seeds.iter().filter(|s| s.target == "config_supervisor") {
            assert!(parse_supervisor(sup, &s.bytes).is_ok(), "{}", s.name);
        }
        for tree in ["config-tree", "docker-tree"] {
            let (services, supervisors) = split_files(&named("config_load", tree));
            let config = load_sources(services, supervisors);
            let errors: Vec<_> = config.diagnostics.iter().filter(|d| d.is_error()).collect();
            assert!(errors.is_empty(), "{tree}: {errors:?}");
            assert!(config.services.len() >= 8, "{tree}");
        }
        let env = envfile::parse_bytes(&named("envfile", "realistic")).unwrap();
        assert_eq!(env.len(), 4);
        let every = named("proto_frames", "control-responses");
        let mut dec = FrameDecoder::new();
        dec.push(&every[1..]);
        let mut n = 0;
        while let Some(r) = dec.next::<Response>().unwrap() {
            assert!(!matches!(
                r,
                Response::Error {
                    kind: dynamod_proto::ErrorKind::Protocol,
                    ..
                }
            ));
            n += 1;
        }
        assert_eq!(n, 7);
    }

    #[test]
    fn split_files_sorts_by_directory_and_keeps_the_first_of_a_path() {
        let input = b"a = 1\n--- supervisors/s.toml\nx\n--- services/b.toml\r\ny\n\
                      --- a.toml\nz\n--- services/b.toml\nlost\n--- services/.h.toml\n\
                      --- services/x/y.toml\n--- c.txt\n--- supervisors/n\0.toml\n";
        let (services, supervisors) = split_files(input);
        let show = |files: &Files| -> Vec<(String, String)> {
            files
                .iter()
                .map(|(p, b)| {
                    (
                        p.display().to_string(),
                        String::from_utf8_lossy(b).into_owned(),
                    )
                })
                .collect()
        };
        assert_eq!(
            show(&services),
            [
                ("/etc/dynamod/services/a.toml".to_owned(), "z\n".to_owned()),
                ("/etc/dynamod/services/b.toml".to_owned(), "y\n".to_owned()),
                (
                    "/etc/dynamod/services/unnamed.toml".to_owned(),
                    "a = 1\n".to_owned()
                ),
            ]
        );
        assert_eq!(
            show(&supervisors),
            [(
                "/etc/dynamod/supervisors/s.toml".to_owned(),
                "x\n".to_owned()
            )]
        );
    }

    #[test]
    fn rendered_environment_parses_back_to_the_same_pairs() {
        let pairs: Vec<(String, String)> = [("A", "x\"y\\z$w"), ("B", "two\nlines\r\n"), ("C", "")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(envfile::parse(&render_env(&pairs)), Ok(pairs));
    }

    #[test]
    fn rendered_notify_message_parses_back() {
        let msg = NotifyMsg {
            ready: true,
            stopping: false,
            reloading: true,
            status: Some("a=b".into()),
            main_pid: Some(7),
            errno: Some(-3),
        };
        assert_eq!(notify::parse(&render_notify(&msg)), Ok(msg));
    }
}
