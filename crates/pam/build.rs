//! Links libpam. The development symlink (`libpam.so`, from libpam0g-dev) is used when it is
//! installed; otherwise the runtime library (`libpam.so.0`, always present where PAM is) is
//! named directly, so the module builds on machines without PAM headers.

use std::path::Path;

const LIB_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/lib/x86_64-linux-gnu",
    "/lib64",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dev = LIB_DIRS
        .iter()
        .any(|d| Path::new(d).join("libpam.so").exists());
    if dev {
        println!("cargo:rustc-link-lib=dylib=pam");
    } else {
        println!("cargo:rustc-link-lib=dylib:+verbatim=libpam.so.0");
    }
}
