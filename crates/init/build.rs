//! Link options for the static PID 1 binary.
//!
//! The musl target links a static PIE: about a thousand absolute pointers (vtables, string
//! tables of format strings) are fixed up at start from relocation records, 24 bytes each in
//! `.rela.dyn`, which made a thirtieth of the binary. `-z pack-relative-relocs` stores them as
//! `DT_RELR` bitmaps instead (a few hundred bytes); musl's static-PIE start-up code applies
//! those since musl 1.2.4. GNU ld (2.38+) and lld understand the option; an older GNU ld warns
//! and ignores it, which only costs the saving.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-musl") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
