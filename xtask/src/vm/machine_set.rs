//! The real-machine service set of `config/services` (installed by the disk and live images)
//! loads without a single diagnostic — what `dynamodctl check` and svmgr would say — and keeps
//! the boot order issue 5 asks for: fsck before remount-root-rw before fstab-mount, and every
//! service that writes to the disk after the root is writable.

use std::collections::{BTreeMap, BTreeSet};

use dynamod_config::{Config, Diagnostic};

use crate::build;

fn load() -> Config {
    let root = build::workspace_root().join("config");
    dynamod_config::load(&root.join("services"), &root.join("supervisors"))
}

/// For each service, the services it starts after (requires, wants, after, and the reverse of
/// before), transitively.
fn starts_after(c: &Config) -> BTreeMap<String, BTreeSet<String>> {
    let mut direct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &c.services {
        let e = direct.entry(s.name.clone()).or_default();
        e.extend(s.deps.requires.iter().cloned());
        e.extend(s.deps.wants.iter().cloned());
        e.extend(s.deps.after.iter().cloned());
        for b in &s.deps.before {
            direct.entry(b.clone()).or_default().insert(s.name.clone());
        }
    }
    let mut closure = BTreeMap::new();
    for name in direct.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = direct[name].iter().cloned().collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n.clone())
                && let Some(next) = direct.get(&n)
            {
                stack.extend(next.iter().cloned());
            }
        }
        closure.insert(name.clone(), seen);
    }
    closure
}

#[test]
fn machine_set_loads_without_any_diagnostic() {
    let c = load();
    let msgs: Vec<String> = c
        .diagnostics
        .iter()
        .map(Diagnostic::located_message)
        .collect();
    assert!(msgs.is_empty(), "{msgs:#?}");
    assert!(c.invalid.is_empty());
    let names: BTreeSet<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
    for wanted in [
        "fsck",
        "remount-root-rw",
        "fstab-mount",
        "modules-load",
        "coldplug",
        "bootmisc",
        "hostname",
        "sysctl",
        "network",
        "machine-id",
        "syslog",
        "getty-tty1",
        "dynamod-logd",
    ] {
        assert!(names.contains(wanted), "{wanted} is missing");
    }
}

#[test]
fn root_is_checked_then_made_writable_then_fstab_is_mounted() {
    let c = load();
    let requires = |name: &str| {
        c.services
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.deps.requires.clone())
            .unwrap_or_default()
    };
    assert_eq!(requires("remount-root-rw"), ["fsck"]);
    assert_eq!(requires("fstab-mount"), ["remount-root-rw"]);
}

#[test]
fn everything_that_writes_to_disk_starts_after_the_root_is_writable() {
    let after = starts_after(&load());
    for writer in [
        "bootmisc",
        "machine-id",
        "random-seed",
        "syslog",
        "dynamod-logd",
    ] {
        assert!(
            after[writer].contains("remount-root-rw"),
            "{writer} may run before / is writable"
        );
    }
    // The getty must not depend on a writable root: it is how an operator repairs one.
    let c = load();
    let getty = c.services.iter().find(|s| s.name == "getty-tty1").unwrap();
    assert!(getty.deps.requires.is_empty());
}
