//! Link options for the static PID 1 binary.
//!
//! The musl target links a static PIE: about a thousand absolute pointers (vtables, string
//! tables of format strings) are fixed up at start from relocation records, 24 bytes each in
//! `.rela.dyn`, which made a thirtieth of the binary. `-z pack-relative-relocs` stores them as
//! `DT_RELR` bitmaps instead (a few hundred bytes). musl's static-PIE start-up code applies
//! those since musl 1.2.4; Rust bundles musl 1.2.5 from 1.93 on (1.2.3 before, which would
//! leave the pointers unrelocated and crash at once), so older compilers keep plain
//! relocations. GNU ld (2.38+) and lld understand the option; an older GNU ld warns and
//! ignores it, which only costs the saving.

// A build script, not product code: `Command` runs the compiler to read its version.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

/// First Rust release whose musl targets ship musl 1.2.4 or later.
const RELR_MIN_MINOR: u32 = 93;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-musl") && rustc_minor().is_some_and(|m| m >= RELR_MIN_MINOR) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The minor version of the compiler building us (`rustc 1.95.0 (…)` gives 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.split_whitespace().nth(1)?.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}
