//! `org.freedesktop.hostname1`: the static hostname (`/etc/hostname`), the transient one (the
//! kernel's), machine-info(5) fields and read-only facts about the machine.

use dynamod_dbus::object::{Interface, Props, Reply};
use dynamod_dbus::{Call, MethodError, method, props, validate};

use crate::daemon::Context;
use crate::envfile::{self, EnvFile};
use crate::sysinfo;

/// The object path.
pub const PATH: &str = "/org/freedesktop/hostname1";

/// The interface, as org.freedesktop.hostname1(5) documents it (plus the firmware and id
/// properties newer systemd releases add).
pub const INTERFACE: Interface = Interface {
    name: "org.freedesktop.hostname1",
    methods: &[
        method!("SetHostname", [("hostname", "s"), ("interactive", "b")] => []),
        method!("SetStaticHostname", [("hostname", "s"), ("interactive", "b")] => []),
        method!("SetPrettyHostname", [("hostname", "s"), ("interactive", "b")] => []),
        method!("SetIconName", [("icon", "s"), ("interactive", "b")] => []),
        method!("SetChassis", [("chassis", "s"), ("interactive", "b")] => []),
        method!("SetDeployment", [("deployment", "s"), ("interactive", "b")] => []),
        method!("SetLocation", [("location", "s"), ("interactive", "b")] => []),
        method!("GetProductUUID", [("interactive", "b")] => [("uuid", "ay")]),
        method!("GetHardwareSerial", [] => [("serial", "s")]),
        method!("Describe", [] => [("json", "s")]),
    ],
    properties: props![
        ("Hostname", "s"),
        ("StaticHostname", "s"),
        ("PrettyHostname", "s"),
        ("DefaultHostname", "s"),
        ("HostnameSource", "s"),
        ("IconName", "s"),
        ("Chassis", "s"),
        ("Deployment", "s"),
        ("Location", "s"),
        ("KernelName", "s"),
        ("KernelRelease", "s"),
        ("KernelVersion", "s"),
        ("OperatingSystemPrettyName", "s"),
        ("OperatingSystemCPEName", "s"),
        ("HomeURL", "s"),
        ("HardwareVendor", "s"),
        ("HardwareModel", "s"),
        ("FirmwareVersion", "s"),
        ("FirmwareVendor", "s"),
        ("FirmwareDate", "t"),
        ("MachineID", "ay"),
        ("BootID", "ay"),
    ],
    signals: &[],
};

/// The static hostname: the first line of `/etc/hostname` that is not a comment; empty when
/// there is none.
pub fn static_hostname(ctx: &Context) -> String {
    std::fs::read_to_string(ctx.etc("hostname"))
        .ok()
        .and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .filter(|l| validate::hostname(l).is_ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn default_hostname(os: &EnvFile) -> String {
    os.get("DEFAULT_HOSTNAME")
        .filter(|h| validate::hostname(h).is_ok())
        .unwrap_or("localhost")
        .to_owned()
}

fn kernel_hostname() -> String {
    dynamod_sys::hostname::current()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn machine_info(ctx: &Context) -> EnvFile {
    EnvFile::read(&ctx.etc("machine-info")).unwrap_or_default()
}

fn info_value(info: &EnvFile, key: &str) -> String {
    info.get(key).unwrap_or_default().to_owned()
}

/// Every property's current value.
pub fn properties(ctx: &Context) -> Props {
    let info = machine_info(ctx);
    let os = sysinfo::os_release(ctx.root());
    let static_name = static_hostname(ctx);
    let hostname = kernel_hostname();
    let default = default_hostname(&os);
    let transient = ctx.transient.lock().ok().and_then(|t| t.clone());
    let source = if !static_name.is_empty() && hostname == static_name {
        "static"
    } else if transient.as_deref() == Some(hostname.as_str()) || hostname != default {
        "transient"
    } else {
        "default"
    };
    let chassis = match info.get("CHASSIS") {
        Some(c) if !c.is_empty() => c.to_owned(),
        _ => sysinfo::detect_chassis(),
    };
    let icon = match info.get("ICON_NAME") {
        Some(i) if !i.is_empty() => i.to_owned(),
        _ if !chassis.is_empty() => format!("computer-{chassis}"),
        _ => String::new(),
    };
    let (kname, krelease, kversion) = sysinfo::kernel();
    let mut p = Props::new();
    p.add("Hostname", hostname)
        .add("StaticHostname", static_name)
        .add("PrettyHostname", info_value(&info, "PRETTY_HOSTNAME"))
        .add("DefaultHostname", default)
        .add("HostnameSource", source)
        .add("IconName", icon)
        .add("Chassis", chassis)
        .add("Deployment", info_value(&info, "DEPLOYMENT"))
        .add("Location", info_value(&info, "LOCATION"))
        .add("KernelName", kname)
        .add("KernelRelease", krelease)
        .add("KernelVersion", kversion)
        .add(
            "OperatingSystemPrettyName",
            os.get("PRETTY_NAME").unwrap_or_default().to_owned(),
        )
        .add(
            "OperatingSystemCPEName",
            os.get("CPE_NAME").unwrap_or_default().to_owned(),
        )
        .add("HomeURL", os.get("HOME_URL").unwrap_or_default().to_owned())
        .add("HardwareVendor", sysinfo::dmi("sys_vendor"))
        .add("HardwareModel", sysinfo::dmi("product_name"))
        .add("FirmwareVersion", sysinfo::dmi("bios_version"))
        .add("FirmwareVendor", sysinfo::dmi("bios_vendor"))
        .add(
            "FirmwareDate",
            sysinfo::firmware_date_usec(&sysinfo::dmi("bios_date")),
        )
        .add("MachineID", sysinfo::machine_id(ctx.root()))
        .add("BootID", sysinfo::boot_id());
    p
}

/// The properties as one JSON object (what `Describe()` and `hostnamectl --json` show).
pub fn describe(props: &Props) -> String {
    use dynamod_dbus::zbus::wire::Variant;
    let mut map = serde_json::Map::new();
    for (name, value) in props.iter() {
        let json = match value {
            Variant::Str(s) => serde_json::Value::from(s.as_str()),
            Variant::U64(n) => serde_json::Value::from(*n),
            Variant::Array(a) => {
                let bytes: Vec<u8> = a
                    .iter()
                    .filter_map(|v| match v {
                        Variant::U8(b) => Some(*b),
                        _ => None,
                    })
                    .collect();
                serde_json::Value::from(sysinfo::hex(&bytes))
            }
            other => serde_json::Value::from(other.to_string()),
        };
        map.insert(name.to_owned(), json);
    }
    serde_json::Value::Object(map).to_string()
}

/// The hostname the kernel should have: the static one, else the transient one, else the
/// default.
fn wanted_kernel_hostname(ctx: &Context) -> String {
    let static_name = static_hostname(ctx);
    if !static_name.is_empty() {
        return static_name;
    }
    if let Some(t) = ctx.transient.lock().ok().and_then(|t| t.clone()) {
        return t;
    }
    default_hostname(&sysinfo::os_release(ctx.root()))
}

fn apply_kernel_hostname(ctx: &Context) -> Result<(), MethodError> {
    let wanted = wanted_kernel_hostname(ctx);
    if kernel_hostname() == wanted {
        return Ok(());
    }
    dynamod_sys::hostname::set(&wanted)
        .map_err(|e| MethodError::failed(format!("Failed to set hostname {wanted:?}: {e}")))?;
    tracing::info!(hostname = %wanted, "kernel hostname set");
    Ok(())
}

fn file_failed(e: envfile::FileError) -> MethodError {
    let cause = std::error::Error::source(&e)
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    MethodError::failed(format!("Failed to {e}{cause}"))
}

/// Writes one machine-info key (empty removes it).
fn set_machine_info(ctx: &Context, key: &str, value: &str) -> Result<(), MethodError> {
    let path = ctx.etc("machine-info");
    let mut info = EnvFile::read(&path).map_err(file_failed)?;
    info.set(key, value);
    info.save(&path).map_err(file_failed)
}

/// Runs one method.
pub async fn call(ctx: &Context, call: &Call, name: &str) -> Result<Reply, MethodError> {
    match name {
        "SetHostname" => {
            let (value, _interactive): (String, bool) = call.args()?;
            call.require_root("set the hostname").await?;
            if !value.is_empty() {
                validate::hostname(&value)?;
            }
            let _changes = ctx.changes.lock().await;
            if let Ok(mut t) = ctx.transient.lock() {
                *t = (!value.is_empty()).then_some(value);
            }
            apply_kernel_hostname(ctx)?;
            ctx.changed(
                PATH,
                &INTERFACE,
                properties(ctx),
                &["Hostname", "HostnameSource"],
            )
            .await;
            Ok(Reply::empty())
        }
        "SetStaticHostname" => {
            let (value, _interactive): (String, bool) = call.args()?;
            call.require_root("set the static hostname").await?;
            let path = ctx.etc("hostname");
            let _changes = ctx.changes.lock().await;
            if value.is_empty() {
                envfile::remove(&path).map_err(file_failed)?;
            } else {
                validate::hostname(&value)?;
                envfile::write_atomic(&path, format!("{value}\n").as_bytes())
                    .map_err(file_failed)?;
            }
            apply_kernel_hostname(ctx)?;
            ctx.changed(
                PATH,
                &INTERFACE,
                properties(ctx),
                &["Hostname", "StaticHostname", "HostnameSource"],
            )
            .await;
            Ok(Reply::empty())
        }
        "SetPrettyHostname" | "SetIconName" | "SetChassis" | "SetDeployment" | "SetLocation" => {
            let (value, _interactive): (String, bool) = call.args()?;
            let (key, property, what) = match name {
                "SetPrettyHostname" => ("PRETTY_HOSTNAME", "PrettyHostname", "pretty hostname"),
                "SetIconName" => ("ICON_NAME", "IconName", "icon name"),
                "SetChassis" => ("CHASSIS", "Chassis", "chassis"),
                "SetDeployment" => ("DEPLOYMENT", "Deployment", "deployment"),
                _ => ("LOCATION", "Location", "location"),
            };
            call.require_root(&format!("set the {what}")).await?;
            if !value.is_empty() {
                match name {
                    "SetIconName" => validate::icon_name(&value)?,
                    "SetChassis" => validate::chassis(&value)?,
                    "SetDeployment" => validate::deployment(&value)?,
                    _ => validate::single_line(what, &value, 255)?,
                }
            }
            let _changes = ctx.changes.lock().await;
            set_machine_info(ctx, key, &value)?;
            let changed: &[&str] = if name == "SetChassis" {
                &["Chassis", "IconName"]
            } else {
                &[property]
            };
            ctx.changed(PATH, &INTERFACE, properties(ctx), changed)
                .await;
            Ok(Reply::empty())
        }
        "GetProductUUID" => {
            call.require_root("read the product UUID").await?;
            let text = std::fs::read_to_string("/sys/class/dmi/id/product_uuid").map_err(|e| {
                no_such("NoProductUUID", format!("Failed to read product UUID: {e}"))
            })?;
            let id = sysinfo::parse_id128(&text)
                .ok_or_else(|| no_such("NoProductUUID", "The product UUID is not a UUID."))?;
            Ok(Reply::new(id.to_vec()))
        }
        "GetHardwareSerial" => {
            call.require_root("read the hardware serial").await?;
            let serial = sysinfo::dmi("product_serial");
            if serial.is_empty() {
                return Err(no_such(
                    "NoHardwareSerial",
                    "Failed to read the hardware serial.",
                ));
            }
            Ok(Reply::new(serial))
        }
        "Describe" => Ok(Reply::new(describe(&properties(ctx)))),
        other => Err(MethodError::new(
            dynamod_dbus::error::UNKNOWN_METHOD,
            format!("Unknown method '{other}'."),
        )),
    }
}

fn no_such(what: &str, message: impl Into<String>) -> MethodError {
    MethodError::new(&format!("org.freedesktop.hostname1.{what}"), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(tag: &str) -> Context {
        use clap::Parser;
        let root =
            std::env::temp_dir().join(format!("dynamod-hostnamed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let opts = crate::args::Options::parse_from([
            "dynamod-hostnamed",
            "--root",
            root.to_str().unwrap(),
        ]);
        Context::new(opts)
    }

    #[test]
    fn every_declared_property_has_the_declared_type() {
        let c = ctx("types");
        assert_eq!(properties(&c).mismatches(&INTERFACE), Vec::<String>::new());
        std::fs::remove_dir_all(c.root()).unwrap();
    }

    #[test]
    fn values_come_from_hostname_machine_info_and_os_release() {
        let c = ctx("values");
        std::fs::write(c.etc("hostname"), "# comment\n\nbox-1\n").unwrap();
        std::fs::write(
            c.etc("machine-info"),
            "PRETTY_HOSTNAME=\"Box One\"\nCHASSIS=server\nLOCATION='rack 4'\n",
        )
        .unwrap();
        std::fs::write(
            c.etc("os-release"),
            "PRETTY_NAME=\"Test OS 1\"\nHOME_URL=https://example.invalid/\n",
        )
        .unwrap();
        let p = properties(&c);
        let s = |n: &str| p.get(n).unwrap().to_string();
        assert_eq!(s("StaticHostname"), "\"box-1\"");
        assert_eq!(s("PrettyHostname"), "\"Box One\"");
        assert_eq!(s("Chassis"), "\"server\"");
        assert_eq!(s("IconName"), "\"computer-server\"");
        assert_eq!(s("Location"), "\"rack 4\"");
        assert_eq!(s("OperatingSystemPrettyName"), "\"Test OS 1\"");
        assert_eq!(s("HomeURL"), "\"https://example.invalid/\"");
        assert_eq!(s("DefaultHostname"), "\"localhost\"");
        std::fs::remove_dir_all(c.root()).unwrap();
    }

    #[test]
    fn describe_is_a_json_object_of_every_property() {
        let c = ctx("describe");
        let json: serde_json::Value = serde_json::from_str(&describe(&properties(&c))).unwrap();
        assert!(json["Hostname"].is_string());
        assert!(json["FirmwareDate"].is_u64());
        assert_eq!(json.as_object().unwrap().len(), INTERFACE.properties.len());
        std::fs::remove_dir_all(c.root()).unwrap();
    }

    #[test]
    fn an_invalid_static_hostname_in_the_file_reads_as_unset() {
        let c = ctx("invalid");
        std::fs::write(c.etc("hostname"), "not a hostname\n").unwrap();
        assert_eq!(static_hostname(&c), "");
        std::fs::remove_dir_all(c.root()).unwrap();
    }
}
