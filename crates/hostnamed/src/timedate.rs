//! `org.freedesktop.timedate1`: the time zone (`/etc/localtime`), whether the RTC keeps local
//! time (`/etc/adjtime`), the system clock, and network time synchronization (a dynamod
//! service such as `chronyd`, started and stopped through svmgr).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynamod_dbus::object::{Interface, Props, Reply};
use dynamod_dbus::svmgr;
use dynamod_dbus::{Call, MethodError, method, props, validate};
use dynamod_proto::{Request, ServiceState};

use crate::daemon::Context;
use crate::envfile;
use crate::tools;

/// The object path.
pub const PATH: &str = "/org/freedesktop/timedate1";

/// The interface, as org.freedesktop.timedate1(5) documents it.
pub const INTERFACE: Interface = Interface {
    name: "org.freedesktop.timedate1",
    methods: &[
        method!("SetTime", [("usec_utc", "x"), ("relative", "b"), ("interactive", "b")] => []),
        method!("SetTimezone", [("timezone", "s"), ("interactive", "b")] => []),
        method!("SetLocalRTC", [("local_rtc", "b"), ("fix_system", "b"), ("interactive", "b")] => []),
        method!("SetNTP", [("use_ntp", "b"), ("interactive", "b")] => []),
        method!("ListTimezones", [] => [("timezones", "as")]),
    ],
    properties: props![
        ("Timezone", "s"),
        ("LocalRTC", "b"),
        ("CanNTP", "b"),
        ("NTP", "b"),
        ("NTPSynchronized", "b"),
        ("TimeUSec", "t"),
        ("RTCTimeUSec", "t"),
    ],
    signals: &[],
};

const DEFAULT_ZONEINFO: &str = "/usr/share/zoneinfo";

/// The zone name at the end of a `/etc/localtime` link target, e.g. `Europe/Paris` for
/// `../usr/share/zoneinfo/Europe/Paris`.
pub fn zone_from_link(target: &Path) -> Option<String> {
    let text = target.to_string_lossy();
    let (_, zone) = text.rsplit_once("zoneinfo/")?;
    let zone = zone
        .strip_prefix("posix/")
        .or_else(|| zone.strip_prefix("right/"))
        .unwrap_or(zone);
    validate::timezone(zone).ok()?;
    Some(zone.to_owned())
}

/// The configured time zone: the `/etc/localtime` link, else `/etc/timezone`, else `UTC` when
/// there is no `/etc/localtime` at all (glibc's behaviour).
pub fn timezone(ctx: &Context) -> String {
    match std::fs::read_link(ctx.etc("localtime")) {
        Ok(target) => zone_from_link(&target).unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "UTC".to_owned(),
        Err(_) => std::fs::read_to_string(ctx.etc("timezone"))
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| validate::timezone(t).is_ok())
            .unwrap_or_default(),
    }
}

/// Whether `/etc/adjtime` says the RTC keeps local time (its third line, hwclock(8)).
pub fn local_rtc(ctx: &Context) -> bool {
    std::fs::read_to_string(ctx.etc("adjtime"))
        .map(|t| t.lines().nth(2).map(str::trim) == Some("LOCAL"))
        .unwrap_or(false)
}

/// `/etc/adjtime` with its third line set to `LOCAL` or `UTC`, keeping the drift lines.
pub fn adjtime_text(old: &str, local: bool) -> String {
    let mut lines: Vec<&str> = old.lines().take(2).collect();
    if lines.len() < 2 {
        lines = vec!["0.0 0 0.0", "0"];
    }
    format!(
        "{}\n{}\n{}\n",
        lines[0],
        lines[1],
        if local { "LOCAL" } else { "UTC" }
    )
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The RTC's time in microseconds since the epoch (`/sys/class/rtc/rtc0/since_epoch`, which
/// reads the RTC as UTC, as systemd-timedated does); 0 when there is no RTC.
fn rtc_usec() -> u64 {
    std::fs::read_to_string("/sys/class/rtc/rtc0/since_epoch")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(0, |s| s.saturating_mul(1_000_000))
}

/// Whether the kernel considers the clock synchronized (adjtimex(2)); false when the kernel
/// does not answer.
fn ntp_synchronized() -> bool {
    dynamod_sys::time::ntp_synchronized().unwrap_or(false)
}

/// The time synchronization service: the first configured name svmgr knows (preferring one
/// that is wanted up), and whether it is wanted up. `None` when none exists or svmgr is
/// unreachable.
async fn ntp_service(ctx: &Context) -> Option<(String, bool)> {
    let mut first = None;
    for name in &ctx.opts.ntp_services {
        match svmgr::status(&ctx.opts.control_socket, name).await {
            Ok(Some(detail)) => {
                let up = matches!(
                    detail.summary.state,
                    ServiceState::Running
                        | ServiceState::Starting
                        | ServiceState::Waiting
                        | ServiceState::Restarting
                );
                if up {
                    return Some((name.clone(), true));
                }
                first.get_or_insert((name.clone(), false));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("cannot ask svmgr about {name}: {e}");
                return None;
            }
        }
    }
    first
}

/// Every property's current value.
pub async fn properties(ctx: &Context) -> Props {
    let ntp = ntp_service(ctx).await;
    let mut p = Props::new();
    p.add("Timezone", timezone(ctx))
        .add("LocalRTC", local_rtc(ctx))
        .add("CanNTP", ntp.is_some())
        .add("NTP", ntp.as_ref().is_some_and(|(_, up)| *up))
        .add("NTPSynchronized", ntp_synchronized())
        .add("TimeUSec", now_usec())
        .add("RTCTimeUSec", rtc_usec());
    p
}

/// The names of every zone in the database: `tzdata.zi` when present, else the zone tables.
pub fn list_timezones(zoneinfo: &Path) -> Vec<String> {
    let mut zones: Vec<String> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(zoneinfo.join("tzdata.zi")) {
        for line in text.lines() {
            let mut f = line.split_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some("Z"), Some(name), _) => zones.push(name.to_owned()),
                (Some("L"), Some(_target), Some(name)) => zones.push(name.to_owned()),
                _ => {}
            }
        }
    } else {
        for table in ["zone1970.tab", "zone.tab"] {
            let Ok(text) = std::fs::read_to_string(zoneinfo.join(table)) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                if let Some(name) = line.split('\t').nth(2) {
                    zones.push(name.trim().to_owned());
                }
            }
        }
    }
    zones.push("UTC".to_owned());
    zones.retain(|z| validate::timezone(z).is_ok());
    zones.sort();
    zones.dedup();
    zones
}

/// Whether `zone` is an installed zone file (a TZif file, tzfile(5)).
fn zone_installed(zoneinfo: &Path, zone: &str) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(zoneinfo.join(zone))
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"TZif"
}

fn link_target(zoneinfo: &Path, zone: &str) -> PathBuf {
    if zoneinfo == Path::new(DEFAULT_ZONEINFO) {
        // Relative, as systemd writes it, so the link also resolves inside a chroot.
        Path::new("../usr/share/zoneinfo").join(zone)
    } else {
        zoneinfo.join(zone)
    }
}

fn file_failed(e: envfile::FileError) -> MethodError {
    let cause = std::error::Error::source(&e)
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    MethodError::failed(format!("Failed to {e}{cause}"))
}

/// Writes the system time to the RTC (unless devices are off); a failure is logged, as the
/// system clock change itself succeeded.
async fn sync_rtc_from_system(ctx: &Context) {
    if ctx.opts.no_devices || !Path::new("/dev/rtc0").exists() {
        return;
    }
    let mode = if local_rtc(ctx) {
        "--localtime"
    } else {
        "--utc"
    };
    if let Err(e) = tools::run("hwclock", &["--systohc", mode]).await {
        tracing::warn!("cannot update the RTC: {e}");
    }
}

/// Runs one method.
pub async fn call(ctx: &Context, call: &Call, name: &str) -> Result<Reply, MethodError> {
    match name {
        "SetTime" => {
            let (usec, relative, _interactive): (i64, bool, bool) = call.args()?;
            call.require_root("set the system time").await?;
            if ntp_service(ctx).await.is_some_and(|(_, up)| up) {
                return Err(MethodError::new(
                    "org.freedesktop.timedate1.AutomaticTimeSyncEnabled",
                    "Automatic time synchronization is enabled",
                ));
            }
            let target = if relative {
                i64::try_from(now_usec())
                    .ok()
                    .and_then(|now| now.checked_add(usec))
            } else {
                Some(usec)
            };
            let target = target
                .filter(|t| *t > 0)
                .ok_or_else(|| MethodError::invalid_args("Time value not supported."))?;
            let _changes = ctx.changes.lock().await;
            let d = Duration::from_micros(target.unsigned_abs());
            let ts = dynamod_sys::nix::sys::time::TimeSpec::from(d);
            dynamod_sys::nix::time::clock_settime(
                dynamod_sys::nix::time::ClockId::CLOCK_REALTIME,
                ts,
            )
            .map_err(|e| MethodError::failed(format!("Failed to set local time: {e}")))?;
            tracing::info!(usec = target, "system time changed");
            sync_rtc_from_system(ctx).await;
            Ok(Reply::empty())
        }
        "SetTimezone" => {
            let (zone, _interactive): (String, bool) = call.args()?;
            call.require_root("set the time zone").await?;
            validate::timezone(&zone)?;
            if !zone_installed(&ctx.opts.zoneinfo, &zone) {
                return Err(MethodError::invalid_args(format!(
                    "Invalid or not installed time zone '{zone}'"
                )));
            }
            let _changes = ctx.changes.lock().await;
            let target = link_target(&ctx.opts.zoneinfo, &zone);
            envfile::symlink_atomic(&target, &ctx.etc("localtime")).map_err(file_failed)?;
            // Debian also keeps the name in /etc/timezone; keep it consistent when it exists.
            if ctx.etc("timezone").exists() {
                envfile::write_atomic(&ctx.etc("timezone"), format!("{zone}\n").as_bytes())
                    .map_err(file_failed)?;
            }
            tracing::info!(timezone = %zone, "time zone changed");
            if local_rtc(ctx) {
                sync_rtc_from_system(ctx).await;
            }
            let mut p = Props::new();
            p.add("Timezone", timezone(ctx));
            ctx.signals
                .properties_changed(PATH, INTERFACE.name, &p)
                .await;
            Ok(Reply::empty())
        }
        "SetLocalRTC" => {
            let (local, fix_system, _interactive): (bool, bool, bool) = call.args()?;
            call.require_root("change the RTC time scale").await?;
            let _changes = ctx.changes.lock().await;
            let path = ctx.etc("adjtime");
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            envfile::write_atomic(&path, adjtime_text(&old, local).as_bytes())
                .map_err(file_failed)?;
            if !ctx.opts.no_devices && Path::new("/dev/rtc0").exists() {
                let mode = if local { "--localtime" } else { "--utc" };
                let direction = if fix_system { "--hctosys" } else { "--systohc" };
                tools::run("hwclock", &[direction, mode])
                    .await
                    .map_err(|e| MethodError::failed(format!("Failed to sync the RTC: {e}")))?;
            }
            let mut p = Props::new();
            p.add("LocalRTC", local);
            ctx.signals
                .properties_changed(PATH, INTERFACE.name, &p)
                .await;
            Ok(Reply::empty())
        }
        "SetNTP" => {
            let (enable, _interactive): (bool, bool) = call.args()?;
            call.require_root("change network time synchronization")
                .await?;
            let Some((service, up)) = ntp_service(ctx).await else {
                return Err(MethodError::new(
                    "org.freedesktop.timedate1.NoNTPSupport",
                    "NTP not supported",
                ));
            };
            let _changes = ctx.changes.lock().await;
            if enable != up {
                let names = vec![service.clone()];
                let req = if enable {
                    Request::Start {
                        names,
                        no_block: true,
                    }
                } else {
                    Request::Stop {
                        names,
                        no_block: true,
                    }
                };
                svmgr::request(&ctx.opts.control_socket, req, Some(svmgr::QUICK_TIMEOUT))
                    .await
                    .map_err(|e| MethodError::failed(format!("Failed to change {service}: {e}")))?;
                tracing::info!(service = %service, enable, "network time synchronization changed");
            }
            let mut p = Props::new();
            p.add("NTP", enable);
            ctx.signals
                .properties_changed(PATH, INTERFACE.name, &p)
                .await;
            Ok(Reply::empty())
        }
        "ListTimezones" => Ok(Reply::new(list_timezones(&ctx.opts.zoneinfo))),
        other => Err(MethodError::new(
            dynamod_dbus::error::UNKNOWN_METHOD,
            format!("Unknown method '{other}'."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_come_from_the_link_target() {
        assert_eq!(
            zone_from_link(Path::new("../usr/share/zoneinfo/Europe/Paris")).as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(
            zone_from_link(Path::new("/usr/share/zoneinfo/posix/Asia/Tokyo")).as_deref(),
            Some("Asia/Tokyo")
        );
        assert_eq!(zone_from_link(Path::new("/etc/somewhere")), None);
    }

    #[test]
    fn adjtime_keeps_drift_lines_and_sets_the_scale() {
        assert_eq!(adjtime_text("", true), "0.0 0 0.0\n0\nLOCAL\n");
        assert_eq!(
            adjtime_text("0.5 1700000000 0.0\n1700000000\nLOCAL\n", false),
            "0.5 1700000000 0.0\n1700000000\nUTC\n"
        );
    }

    #[test]
    fn time_zones_list_from_tzdata_zi() {
        let dir = std::env::temp_dir().join(format!("dynamod-tz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("tzdata.zi"),
            "# version\nZ Europe/Paris 0:9:21 - LMT 1891\nR X 1 2 - Mar\nL Europe/Paris Europe/Monaco\n",
        )
        .unwrap();
        assert_eq!(
            list_timezones(&dir),
            ["Europe/Monaco", "Europe/Paris", "UTC"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_tzif_files_count_as_installed_zones() {
        let dir = std::env::temp_dir().join(format!("dynamod-tzif-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("Europe")).unwrap();
        std::fs::write(dir.join("Europe/Paris"), b"TZif2....").unwrap();
        std::fs::write(dir.join("zone.tab"), b"# not a zone").unwrap();
        assert!(zone_installed(&dir, "Europe/Paris"));
        assert!(!zone_installed(&dir, "zone.tab"));
        assert!(!zone_installed(&dir, "Europe"));
        assert!(!zone_installed(&dir, "Mars/Olympus"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
