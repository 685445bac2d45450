//! dynamod-hostnamed: systemd's `org.freedesktop.hostname1`, `org.freedesktop.timedate1` and
//! `org.freedesktop.locale1` in one process, so that `hostnamectl`, `timedatectl` and
//! `localectl` work unchanged on a dynamod machine.
//!
//! * [`daemon`]: the bus connection, the three objects and their shared state.
//! * [`hostname`], [`timedate`], [`locale`]: one module per interface — its description (names
//!   exactly as systemd documents them), its properties and its methods.
//! * [`envfile`]: `KEY=value` files, edited in place and replaced atomically.
//! * [`sysinfo`]: os-release, DMI, uname, ids.
//! * [`tools`]: `hwclock` and `loadkeys`, run through `dynamod_sys::spawn`.
//! * [`args`]: the command line.
//!
//! Every value is re-read from its file on each request, so edits made by hand are seen at
//! once. Changes need root (see `dynamod_dbus::auth`), are validated before anything is written
//! (no newline can reach a file, no time zone can name a path outside the zone database), are
//! written atomically, and are announced with `PropertiesChanged`.

pub mod args;
pub mod daemon;
pub mod envfile;
pub mod hostname;
pub mod locale;
pub mod sysinfo;
pub mod timedate;
pub mod tools;

pub use args::Options;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser;
    use dynamod_dbus::Service;

    use super::*;

    #[tokio::test]
    async fn every_interface_reports_exactly_its_declared_properties() {
        let root =
            std::env::temp_dir().join(format!("dynamod-hostnamed-all-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let opts = Options::parse_from([
            "dynamod-hostnamed",
            "--root",
            root.to_str().unwrap(),
            "--control-socket",
            root.join("missing.sock").to_str().unwrap(),
        ]);
        let d = daemon::Daemon::new(Arc::new(daemon::Context::new(opts)));
        for path in [hostname::PATH, timedate::PATH, locale::PATH] {
            let ifaces = d.object(path).await.unwrap();
            for iface in ifaces {
                let props = d.properties(path, iface).await.unwrap();
                assert_eq!(props.mismatches(iface), Vec::<String>::new(), "{path}");
            }
        }
        assert!(d.object("/org/freedesktop/nothing").await.is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
