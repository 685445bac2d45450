//! What the kernel command line asks of phase A (SPEC §2.2), decoded without touching the
//! system: the root device and how to mount it, or the live medium and its overlay.
//!
//! | parameter | meaning |
//! |---|---|
//! | `root=` | `/dev/NAME`, `UUID=`, `PARTUUID=`, `LABEL=` (or a `/dev/disk/by-*/` link name) |
//! | `rootfstype=` | comma-separated types to try; probed from the superblock when absent |
//! | `rootflags=` | mount options; VFS flags (`noatime`, `nosuid`, …) become mount flags |
//! | `ro` / `rw` | read-only (the default, as the kernel does) or read-write |
//! | `rootwait` | wait for the device as long as it takes, printing progress |
//! | `rootdelay=N` | pause N seconds before looking for the device |
//! | `dynamod.live` | boot a live system: squashfs image plus overlay |
//! | `dynamod.media=` | the medium holding the image (searched for when absent) |
//! | `dynamod.squashfs=` | the image's path on the medium (`/live/root.squashfs`) |
//! | `dynamod.overlay=` | `tmpfs` (default), `none` (read-only root) or a device for a persistent upper layer |
//! | `dynamod.toram` | copy the image into memory first, so the medium can be removed |

use std::fmt;
use std::path::{Component, Path, PathBuf};

use dynamod_sys::blkid::BlockDevice;
use dynamod_sys::cmdline::Cmdline;
use dynamod_sys::mount::MsFlags;

/// Where the live image lives on its medium unless `dynamod.squashfs=` says otherwise.
pub const DEFAULT_SQUASHFS: &str = "/live/root.squashfs";

/// A way of naming a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A device node, `/dev/vda1`.
    Path(PathBuf),
    /// The filesystem UUID.
    Uuid(String),
    /// The partition's own UUID (GPT entry GUID, or `SSSSSSSS-NN` on MBR disks).
    PartUuid(String),
    /// The filesystem label.
    Label(String),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Uuid(u) => write!(f, "UUID={u}"),
            Self::PartUuid(u) => write!(f, "PARTUUID={u}"),
            Self::Label(l) => write!(f, "LABEL={l}"),
        }
    }
}

/// A parameter that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter (`root`, `dynamod.squashfs`, …).
    pub param: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong, lowercase.
    pub why: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.param, self.value, self.why)
    }
}

impl std::error::Error for ParamError {}

/// Undoes udev's `\xNN` escaping in `/dev/disk/by-label` names (`My\x20Disk`).
fn unescape_udev(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(hex) = s.get(i + 2..i + 4)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl DeviceSpec {
    /// Parses a `root=`-style value for `param`.
    pub fn parse(param: &'static str, value: &str) -> Result<Self, ParamError> {
        let err = |why: &str| ParamError {
            param,
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let nonempty = |v: &str, what: &str| {
            if v.is_empty() {
                Err(err(&format!("empty {what}")))
            } else {
                Ok(v.to_owned())
            }
        };
        if let Some(u) = value.strip_prefix("UUID=") {
            return Ok(Self::Uuid(nonempty(u, "UUID")?));
        }
        if let Some(u) = value.strip_prefix("PARTUUID=") {
            if u.contains("/PARTNROFF=") {
                return Err(err("PARTUUID=…/PARTNROFF= is not supported"));
            }
            return Ok(Self::PartUuid(nonempty(u, "PARTUUID")?));
        }
        if let Some(l) = value.strip_prefix("LABEL=") {
            return Ok(Self::Label(nonempty(l, "LABEL")?));
        }
        // Without udev these links do not exist in an initramfs: read them as the tag.
        for (prefix, make) in [
            ("/dev/disk/by-uuid/", Self::Uuid as fn(String) -> Self),
            ("/dev/disk/by-partuuid/", Self::PartUuid),
            ("/dev/disk/by-label/", Self::Label),
        ] {
            if let Some(rest) = value.strip_prefix(prefix) {
                return Ok(make(nonempty(&unescape_udev(rest), "name")?));
            }
        }
        if value.starts_with("/dev/") && value.len() > "/dev/".len() {
            return Ok(Self::Path(PathBuf::from(value)));
        }
        Err(err(
            "expected /dev/NAME, UUID=…, PARTUUID=… or LABEL=… (MAJOR:MINOR numbers are not \
             supported)",
        ))
    }

    /// Whether `dev` is the device this names. UUIDs compare case-insensitively, labels
    /// exactly; a path matches the device's node or, through symlinks, the same node.
    pub fn matches(&self, dev: &BlockDevice) -> bool {
        match self {
            Self::Path(p) => {
                p == &dev.node
                    || std::fs::canonicalize(p).is_ok_and(|c| c == dev.node)
                    || p.file_name().is_some_and(|n| n == dev.name.as_str())
                        && p.parent() == Some(Path::new("/dev"))
            }
            Self::Uuid(u) => dev
                .probe
                .as_ref()
                .and_then(|p| p.uuid.as_deref())
                .is_some_and(|x| x.eq_ignore_ascii_case(u)),
            Self::PartUuid(u) => dev
                .partuuid
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(u)),
            Self::Label(l) => dev
                .probe
                .as_ref()
                .and_then(|p| p.label.as_deref())
                .is_some_and(|x| x == l),
        }
    }
}

/// Mount flags and filesystem data from an option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// VFS flags.
    pub flags: MsFlags,
    /// The filesystem-specific rest, comma-separated (`data=journal,commit=30`).
    pub data: String,
    /// `ro` or `rw` inside the list, if any (last one wins).
    pub read_only: Option<bool>,
}

/// Splits `opts` (comma-separated) into VFS flags, the filesystem's own options and an
/// explicit `ro`/`rw`. Flags the kernel takes only as `mount(2)` flags would be refused by
/// most filesystems if passed as data, so they are moved out.
pub fn split_mount_options(opts: &str) -> MountOptions {
    let mut out = MountOptions {
        flags: MsFlags::empty(),
        data: String::new(),
        read_only: None,
    };
    let mut data: Vec<&str> = Vec::new();
    for opt in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (set, clear) = match opt {
            "ro" => {
                out.read_only = Some(true);
                continue;
            }
            "rw" => {
                out.read_only = Some(false);
                continue;
            }
            "defaults" => continue,
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            other => {
                data.push(other);
                continue;
            }
        };
        out.flags.insert(set);
        out.flags.remove(clear);
    }
    out.data = data.join(",");
    out
}

/// How to mount a disk root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootParams {
    /// `root=`.
    pub device: DeviceSpec,
    /// `rootfstype=`, in order; empty means "probe".
    pub fs_types: Vec<String>,
    /// `rootflags=` without `ro`/`rw`.
    pub options: MountOptions,
    /// Mount read-only.
    pub read_only: bool,
    /// `rootwait`.
    pub wait: bool,
    /// `rootdelay=` in seconds.
    pub delay_s: u64,
}

/// The upper layer of a live system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// Changes live in memory and vanish at shutdown.
    Tmpfs,
    /// No overlay: the image is the (read-only) root.
    Off,
    /// Changes persist on this device (an `upper` and a `work` directory at its top).
    Device(DeviceSpec),
}

/// How to assemble a live root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveParams {
    /// `dynamod.media=`; `None`: search every device for the image.
    pub media: Option<DeviceSpec>,
    /// `dynamod.squashfs=`, absolute within the medium.
    pub squashfs: PathBuf,
    /// `dynamod.overlay=`.
    pub overlay: Overlay,
    /// `dynamod.toram`.
    pub to_ram: bool,
    /// `rootwait`.
    pub wait: bool,
    /// `rootdelay=` in seconds.
    pub delay_s: u64,
}

/// What phase A is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Mount a root filesystem from a device.
    Disk(RootParams),
    /// Assemble a live root from a squashfs image.
    Live(LiveParams),
}

/// The plan and what was ignored on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// What to do.
    pub plan: Plan,
    /// Parameters that were present but ignored, for the log.
    pub notes: Vec<String>,
}

fn is_off(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "0" | "no" | "false" | "off" | "none" | "n"
    )
}

fn is_on(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "1" | "yes" | "true" | "on" | "y" | "tmpfs"
    )
}

/// An absolute path without `..`.
fn clean_absolute(param: &'static str, value: &str) -> Result<PathBuf, ParamError> {
    let p = Path::new(value);
    let ok = p.is_absolute() && !p.components().any(|c| c == Component::ParentDir);
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(ParamError {
            param,
            value: value.to_owned(),
            why: "must be an absolute path without `..`".to_owned(),
        })
    }
}

/// Decodes the phase A parameters of `cmdline`.
pub fn decode(cmdline: &Cmdline) -> Result<Decoded, ParamError> {
    let mut notes = Vec::new();
    let delay_s = match cmdline.value("rootdelay") {
        None => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| ParamError {
            param: "rootdelay",
            value: v.to_owned(),
            why: "expected a number of seconds".to_owned(),
        })?,
    };
    let wait = cmdline.contains("rootwait");

    if cmdline.flag("dynamod.live") {
        if let Some(r) = cmdline.value("root") {
            notes.push(format!("root={r} ignored: dynamod.live is set"));
        }
        let media = cmdline
            .value("dynamod.media")
            .map(|m| DeviceSpec::parse("dynamod.media", m))
            .transpose()?;
        let squashfs = clean_absolute(
            "dynamod.squashfs",
            cmdline
                .value("dynamod.squashfs")
                .unwrap_or(DEFAULT_SQUASHFS),
        )?;
        let overlay = match cmdline.get("dynamod.overlay") {
            None | Some(None) => Overlay::Tmpfs,
            Some(Some(v)) if is_on(v) => Overlay::Tmpfs,
            Some(Some(v)) if is_off(v) => Overlay::Off,
            Some(Some(v)) => Overlay::Device(DeviceSpec::parse("dynamod.overlay", v)?),
        };
        return Ok(Decoded {
            plan: Plan::Live(LiveParams {
                media,
                squashfs,
                overlay,
                to_ram: cmdline.flag("dynamod.toram"),
                wait,
                delay_s,
            }),
            notes,
        });
    }

    let Some(root) = cmdline.value("root") else {
        return Err(ParamError {
            param: "root",
            value: String::new(),
            why: "missing: the command line names no root and no dynamod.live".to_owned(),
        });
    };
    let device = DeviceSpec::parse("root", root)?;
    let fs_types: Vec<String> = cmdline
        .value("rootfstype")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let options = split_mount_options(cmdline.value("rootflags").unwrap_or(""));
    // The kernel mounts the root read-only unless told `rw`; `ro` wins over `rw` when both
    // appear (the safer reading, since their order is not kept).
    let mut read_only = cmdline.contains("ro") || !cmdline.contains("rw");
    if cmdline.contains("rw") && cmdline.contains("ro") {
        notes.push("both ro and rw given: mounting read-only".to_owned());
    }
    if let Some(ro) = options.read_only {
        notes.push(format!(
            "rootflags {} overrides ro/rw",
            if ro { "ro" } else { "rw" }
        ));
        read_only = ro;
    }
    Ok(Decoded {
        plan: Plan::Disk(RootParams {
            device,
            fs_types,
            options,
            read_only,
            wait,
            delay_s,
        }),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use dynamod_sys::blkid::Probe;

    use super::*;

    fn disk(line: &str) -> RootParams {
        match decode(&Cmdline::parse(line)).unwrap().plan {
            Plan::Disk(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn live(line: &str) -> LiveParams {
        match decode(&Cmdline::parse(line)).unwrap().plan {
            Plan::Live(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_root_form_is_understood() {
        let cases = [
            ("/dev/vda1", DeviceSpec::Path("/dev/vda1".into())),
            ("UUID=3e6b-AB", DeviceSpec::Uuid("3e6b-AB".into())),
            (
                "PARTUUID=0badcafe-01",
                DeviceSpec::PartUuid("0badcafe-01".into()),
            ),
            ("LABEL=root", DeviceSpec::Label("root".into())),
            ("/dev/disk/by-uuid/u-1", DeviceSpec::Uuid("u-1".into())),
            (
                "/dev/disk/by-partuuid/p-1",
                DeviceSpec::PartUuid("p-1".into()),
            ),
            (
                "/dev/disk/by-label/My\\x20Disk",
                DeviceSpec::Label("My Disk".into()),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(DeviceSpec::parse("root", value).unwrap(), want, "{value}");
        }
    }

    #[test]
    fn unusable_root_values_are_refused_with_the_reason() {
        for bad in ["8:1", "vda1", "UUID=", "/dev/", "PARTUUID=x/PARTNROFF=1"] {
            let e = DeviceSpec::parse("root", bad).unwrap_err();
            assert_eq!(e.param, "root");
            assert!(!e.why.is_empty(), "{bad}");
        }
    }

    #[test]
    fn rootflags_vfs_flags_become_flags_and_the_rest_data() {
        let o = split_mount_options("noatime,data=journal,nosuid, commit=30 ,rw");
        assert_eq!(o.flags, MsFlags::MS_NOATIME | MsFlags::MS_NOSUID);
        assert_eq!(o.data, "data=journal,commit=30");
        assert_eq!(o.read_only, Some(false));
        let o = split_mount_options("noexec,exec,defaults");
        assert!(o.flags.is_empty());
        assert_eq!(o.data, "");
    }

    #[test]
    fn root_is_read_only_unless_rw() {
        assert!(disk("root=/dev/vda").read_only);
        assert!(disk("root=/dev/vda ro").read_only);
        assert!(!disk("root=/dev/vda rw").read_only);
        assert!(disk("root=/dev/vda rw ro").read_only);
        assert!(disk("root=/dev/vda rw rootflags=ro").read_only);
    }

    #[test]
    fn fstype_list_wait_and_delay() {
        let p = disk("root=LABEL=r rootfstype=ext4,xfs rootwait rootdelay=3");
        assert_eq!(p.fs_types, ["ext4", "xfs"]);
        assert!(p.wait);
        assert_eq!(p.delay_s, 3);
        let p = disk("root=LABEL=r");
        assert!(p.fs_types.is_empty());
        assert!(!p.wait);
        assert_eq!(p.delay_s, 0);
    }

    #[test]
    fn bad_rootdelay_and_missing_root_are_errors() {
        assert_eq!(
            decode(&Cmdline::parse("root=/dev/vda rootdelay=soon"))
                .unwrap_err()
                .param,
            "rootdelay"
        );
        assert_eq!(decode(&Cmdline::parse("quiet")).unwrap_err().param, "root");
    }

    #[test]
    fn live_defaults() {
        let l = live("dynamod.live");
        assert_eq!(l.media, None);
        assert_eq!(l.squashfs, Path::new(DEFAULT_SQUASHFS));
        assert_eq!(l.overlay, Overlay::Tmpfs);
        assert!(!l.to_ram);
    }

    #[test]
    fn live_parameters() {
        let l = live(
            "root=/dev/sda dynamod.live=1 dynamod.media=LABEL=LIVE dynamod.squashfs=/x/fs.sqfs \
             dynamod.overlay=LABEL=persist dynamod.toram rootwait",
        );
        assert_eq!(l.media, Some(DeviceSpec::Label("LIVE".into())));
        assert_eq!(l.squashfs, Path::new("/x/fs.sqfs"));
        assert_eq!(
            l.overlay,
            Overlay::Device(DeviceSpec::Label("persist".into()))
        );
        assert!(l.to_ram && l.wait);
        for (v, want) in [
            ("0", Overlay::Off),
            ("none", Overlay::Off),
            ("tmpfs", Overlay::Tmpfs),
        ] {
            assert_eq!(
                live(&format!("dynamod.live dynamod.overlay={v}")).overlay,
                want
            );
        }
        let d = decode(&Cmdline::parse("dynamod.live root=/dev/sda")).unwrap();
        assert_eq!(d.notes.len(), 1);
    }

    #[test]
    fn squashfs_path_must_be_absolute_and_stay_on_the_medium() {
        for bad in ["live/root.squashfs", "/live/../../etc/x"] {
            let e = decode(&Cmdline::parse(&format!(
                "dynamod.live dynamod.squashfs={bad}"
            )))
            .unwrap_err();
            assert_eq!(e.param, "dynamod.squashfs");
        }
    }

    fn dev(
        name: &str,
        uuid: Option<&str>,
        label: Option<&str>,
        partuuid: Option<&str>,
    ) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            node: PathBuf::from("/dev").join(name),
            size: 1 << 20,
            partition: None,
            probe: Some(Probe {
                fs_type: "ext4",
                uuid: uuid.map(str::to_owned),
                label: label.map(str::to_owned),
            }),
            partuuid: partuuid.map(str::to_owned),
            unreadable: None,
        }
    }

    #[test]
    fn specs_match_devices_by_their_identifiers() {
        let d = dev("vda1", Some("3e6b-ab"), Some("root"), Some("0BADCAFE-01"));
        assert!(DeviceSpec::Path("/dev/vda1".into()).matches(&d));
        assert!(!DeviceSpec::Path("/dev/vda".into()).matches(&d));
        assert!(DeviceSpec::Uuid("3E6B-AB".into()).matches(&d));
        assert!(DeviceSpec::PartUuid("0badcafe-01".into()).matches(&d));
        assert!(DeviceSpec::Label("root".into()).matches(&d));
        assert!(
            !DeviceSpec::Label("ROOT".into()).matches(&d),
            "labels are exact"
        );
        let bare = dev("vdb", None, None, None);
        assert!(!DeviceSpec::Uuid("3e6b-ab".into()).matches(&bare));
    }

    #[test]
    fn spec_display_is_the_parameter_form() {
        assert_eq!(DeviceSpec::Uuid("u".into()).to_string(), "UUID=u");
        assert_eq!(DeviceSpec::Path("/dev/x".into()).to_string(), "/dev/x");
    }
}
