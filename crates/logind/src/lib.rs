//! dynamod-logind: systemd's `org.freedesktop.login1` on a dynamod machine — sessions, seats
//! and users, device handover to compositors, inhibitor locks and power actions — so that
//! `loginctl`, `systemd-inhibit`, PAM (with `pam_dynamod.so` or pam_systemd) and Wayland
//! compositors work unchanged.
//!
//! * [`daemon`]: the bus connection, the shared context and the object tree.
//! * [`iface`]: the four interfaces, names and types exactly as org.freedesktop.login1(5).
//! * [`manager`], [`session`], [`seat`], [`user`]: their methods; [`props`]: their properties.
//! * [`state`]: what is tracked and the rules between sessions, seats, users and inhibitors
//!   (no I/O); [`model`]: the vocabulary (types, classes, inhibitor kinds, power actions).
//! * [`lifecycle`]: creating, activating, releasing and removing sessions and users.
//! * [`policy`]: who may do what (systemd's polkit defaults without polkit).
//! * [`devices`], [`ioctl`], [`vt`]: `TakeDevice`, muting devices of background sessions,
//!   virtual terminals.
//! * [`cgroup`], [`rundir`], [`statefiles`]: session cgroups, `/run/user/UID`, and the
//!   sd-login files under `/run/systemd`.
//! * [`power`], [`inhibit`]: power actions and inhibitor locks.
//! * [`watch`], [`procs`], [`paths`], [`args`]: waiting for events, `/proc`, object paths, the
//!   command line.

pub mod args;
pub mod cgroup;
pub mod daemon;
pub mod devices;
pub mod iface;
pub mod inhibit;
pub mod lifecycle;
pub mod manager;
pub mod model;
pub mod paths;
pub mod policy;
pub mod power;
pub mod procs;
pub mod props;
pub mod rundir;
pub mod seat;
pub mod session;
pub mod state;
pub mod statefiles;
pub mod user;
pub mod vt;
pub mod watch;

pub use args::Options;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser;
    use dynamod_dbus::Service;

    use super::*;
    use crate::model::Stamp;
    use crate::state::User;

    #[tokio::test]
    async fn every_object_reports_exactly_its_declared_properties() {
        let dir = std::env::temp_dir().join(format!("dynamod-logind-props-{}", std::process::id()));
        let opts = Options::parse_from([
            "dynamod-logind",
            "--cgroup-root",
            "none",
            "--state-dir",
            dir.join("state").to_str().unwrap(),
            "--runtime-dir-root",
            dir.join("user").to_str().unwrap(),
            "--sysfs",
            dir.join("sys").to_str().unwrap(),
        ]);
        let ctx = Arc::new(daemon::Context::new(opts).unwrap());
        {
            let mut st = ctx.state();
            let s = crate::state::tests::session("c1", 1, 1000, Some("seat0"));
            st.sessions.insert("c1".into(), s);
            st.activate("c1");
            st.users.insert(
                1000,
                User {
                    uid: 1000,
                    gid: 1000,
                    name: "ada".into(),
                    created: Stamp::now(),
                    runtime_path: "/run/user/1000".into(),
                    generation: 1,
                },
            );
        }
        let d = daemon::Daemon::new(Arc::clone(&ctx));
        for path in [
            paths::MANAGER.to_owned(),
            paths::session("c1"),
            paths::seat("seat0"),
            paths::user(1000),
        ] {
            let ifaces = d.object(&path).await.unwrap();
            assert_eq!(ifaces.len(), 1, "{path}");
            for iface in ifaces {
                let props = d.properties(&path, iface).await.unwrap();
                assert_eq!(props.mismatches(iface), Vec::<String>::new(), "{path}");
            }
        }
        assert!(d.object(&paths::session("c2")).await.is_none());
        assert!(d.object(&paths::user(1001)).await.is_none());
        assert_eq!(d.children(paths::SESSION_DIR).await, ["c1"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
