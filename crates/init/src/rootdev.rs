//! Finding a block device in an initramfs (SPEC §2.2): load the drivers its hardware needs,
//! look at every block device's contents, and wait for the one asked for.
//!
//! Waiting is driven by kernel uevents: a new device wakes the search at once (with a rescan at
//! least every second regardless, [`RESCAN_MS`]), and every wake-up first loads the drivers of
//! newly appeared hardware (a disk behind a controller whose driver was just loaded shows up a
//! moment later). With `rootwait` the wait has no end, as the kernel's
//! own `rootwait` has none, and progress is printed; without it, the search ends once the
//! devices have settled (no uevent for [`QUIET_MS`], at most [`SETTLE_MAX_MS`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use dynamod_sys::blkid::{self, BlockDevice};
use dynamod_sys::uevent::Uevents;

use crate::modprobe::{self, Loader, ModuleIndex, RealKernel};
use crate::rootspec::DeviceSpec;

/// Without `rootwait`: devices count as settled after this long without a uevent…
pub const QUIET_MS: u64 = 2_000;
/// …or after this long in total.
pub const SETTLE_MAX_MS: u64 = 15_000;
/// The longest sleep between two looks at the devices.
pub const RESCAN_MS: u64 = 1_000;
/// Progress is printed this often while waiting.
pub const PROGRESS_EVERY_MS: u64 = 5_000;

const SYS_CLASS_BLOCK: &str = "/sys/class/block";
const SYS_DEVICES: &str = "/sys/devices";
const DEV: &str = "/dev";

/// The device never appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// What was looked for (`root device UUID=…`).
    pub what: String,
    /// How long the search lasted, in seconds.
    pub waited_s: u64,
    /// The block devices that were there, described.
    pub seen: Vec<String>,
    /// Whether `rootwait` could have helped (the search ended because devices had settled).
    pub settled: bool,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no {} after {} s; ", self.what, self.waited_s)?;
        if self.seen.is_empty() {
            f.write_str("no block device was found at all (is its driver in the initramfs?)")?;
        } else {
            write!(f, "block devices: {}", self.seen.join("; "))?;
        }
        if self.settled {
            f.write_str("; add `rootwait` to the kernel command line if the device is slow")?;
        }
        Ok(())
    }
}

/// Device discovery state for one boot.
pub struct Finder {
    uevents: Option<Uevents>,
    loader: Option<Loader<RealKernel>>,
    started: Instant,
    last_event: Instant,
}

impl std::fmt::Debug for Finder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finder")
            .field("modules", &self.loader.is_some())
            .finish_non_exhaustive()
    }
}

/// The module directory of the running kernel.
pub fn module_dir() -> PathBuf {
    Path::new("/lib/modules").join(dynamod_sys::kmod::kernel_release())
}

impl Finder {
    /// Opens the uevent socket (before any driver is loaded, so no event is missed) and reads
    /// the module index when there is a module tree.
    pub fn new() -> Self {
        let uevents = match Uevents::open() {
            Ok(u) => Some(u),
            Err(e) => {
                warn!("cannot listen to kernel uevents ({e}); checking for devices every second");
                None
            }
        };
        let dir = module_dir();
        let loader = match ModuleIndex::read(&dir) {
            Some(index) => {
                info!(
                    "module tree {}: {} modules, {} aliases",
                    dir.display(),
                    index.modules.len(),
                    index.aliases.len()
                );
                Some(Loader::new(index, RealKernel))
            }
            None => {
                info!(
                    "no module tree at {}; relying on built-in drivers",
                    dir.display()
                );
                None
            }
        };
        let now = Instant::now();
        Self {
            uevents,
            loader,
            started: now,
            last_event: now,
        }
    }

    /// Loads the drivers of every device that has appeared since the last call, repeating
    /// while loading makes new devices appear. Returns how many modules were loaded.
    pub fn coldplug(&mut self) -> usize {
        let Some(loader) = &mut self.loader else {
            return 0;
        };
        let mut total = 0;
        // A bus driver reveals the devices behind it; bounded in case of a pathological tree.
        for _ in 0..16 {
            let before_failures = loader.failures.len();
            let n =
                loader.load_for_modaliases(&modprobe::device_modaliases(Path::new(SYS_DEVICES)));
            for f in loader.failures.iter().skip(before_failures) {
                info!("module not loaded: {f}");
            }
            if n == 0 {
                break;
            }
            total += n;
            let names = loader.loaded.iter().rev().take(n).rev().cloned();
            info!("loaded modules: {}", names.collect::<Vec<_>>().join(" "));
        }
        total
    }

    /// Loads the module for filesystem `fs_type` when the kernel does not know it yet.
    pub fn ensure_filesystem(&mut self, fs_type: &str) {
        if kernel_has_filesystem(fs_type) {
            return;
        }
        if let Some(loader) = &mut self.loader {
            let before = loader.loaded.len();
            if loader.load(&format!("fs-{fs_type}")) || loader.load(fs_type) {
                let new: Vec<_> = loader.loaded.iter().skip(before).cloned().collect();
                if !new.is_empty() {
                    info!("loaded modules for {fs_type}: {}", new.join(" "));
                }
            }
        }
    }

    /// Loads a module by name or alias (best effort; failures are logged).
    pub fn load_module(&mut self, name: &str) -> bool {
        let Some(loader) = &mut self.loader else {
            return false;
        };
        let before = loader.failures.len();
        let ok = loader.load(name);
        for f in loader.failures.iter().skip(before) {
            warn!("module not loaded: {f}");
        }
        ok
    }

    /// The module names loaded so far.
    pub fn loaded_modules(&self) -> Vec<String> {
        self.loader
            .as_ref()
            .map(|l| l.loaded.clone())
            .unwrap_or_default()
    }

    /// Waits until `accept` picks something from the current block devices. `forever`:
    /// `rootwait` semantics; otherwise the search ends once devices have settled.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        forever: bool,
        mut accept: impl FnMut(&mut Self, &[BlockDevice]) -> Option<T>,
    ) -> Result<T, NotFound> {
        let start = Instant::now();
        let mut next_progress = PROGRESS_EVERY_MS;
        loop {
            // Loading a driver is activity too: its devices may still be probing.
            if self.coldplug() > 0 {
                self.last_event = Instant::now();
            }
            self.note_events(0);
            let devices = blkid::scan(Path::new(SYS_CLASS_BLOCK), Path::new(DEV));
            if let Some(found) = accept(self, &devices) {
                return Ok(found);
            }
            let waited = ms_since(start);
            let quiet = ms_since(self.last_event);
            let settled = quiet >= QUIET_MS || waited >= SETTLE_MAX_MS;
            if !forever && settled {
                return Err(NotFound {
                    what: what.to_owned(),
                    waited_s: waited / 1000,
                    seen: devices.iter().map(BlockDevice::describe).collect(),
                    settled: true,
                });
            }
            if forever && waited >= next_progress {
                log_at!(
                    Notice,
                    "still waiting for {what} ({} s, rootwait); block devices: {}",
                    waited / 1000,
                    describe_all(&devices)
                );
                next_progress = waited + PROGRESS_EVERY_MS;
            }
            self.note_events(RESCAN_MS);
        }
    }

    /// Waits for `spec` to name a present device.
    pub fn wait_for(
        &mut self,
        spec: &DeviceSpec,
        what: &str,
        forever: bool,
    ) -> Result<BlockDevice, NotFound> {
        let label = format!("{what} {spec}");
        self.wait_until(&label, forever, |_, devices| {
            devices
                .iter()
                .find(|d| spec.matches(d))
                .cloned()
                .or_else(|| node_outside_sysfs(spec))
        })
    }

    /// Waits up to `timeout_ms` for uevents (0: only drains what is queued) and notes when
    /// the last one arrived.
    fn note_events(&mut self, timeout_ms: u64) {
        let batch = match &self.uevents {
            Some(u) => u.wait(timeout_ms),
            None => {
                std::thread::sleep(std::time::Duration::from_millis(timeout_ms));
                return;
            }
        };
        match batch {
            Ok(b) if b.any() => self.last_event = Instant::now(),
            Ok(_) => {}
            Err(e) => {
                warn!("reading kernel uevents failed ({e}); checking every second");
                self.uevents = None;
            }
        }
    }

    /// Milliseconds since this finder was created (for the summary line).
    pub fn elapsed_ms(&self) -> u64 {
        ms_since(self.started)
    }
}

fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn describe_all(devices: &[BlockDevice]) -> String {
    if devices.is_empty() {
        "none yet".to_owned()
    } else {
        devices
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A `/dev/…` path that is not in `/sys/class/block` under that name (a symlink the operator
/// made in the shell, say): accepted when it is a block device.
fn node_outside_sysfs(spec: &DeviceSpec) -> Option<BlockDevice> {
    use std::os::unix::fs::FileTypeExt;
    let DeviceSpec::Path(p) = spec else {
        return None;
    };
    let meta = std::fs::metadata(p).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    Some(BlockDevice {
        name: p.file_name()?.to_string_lossy().into_owned(),
        node: p.clone(),
        size: 0,
        partition: None,
        probe: blkid::probe_path(p).ok().flatten(),
        partuuid: None,
        unreadable: None,
    })
}

/// Whether `/proc/filesystems` lists `fs_type`.
pub fn kernel_has_filesystem(fs_type: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some(fs_type))
    })
}

/// The block-device filesystem types the kernel knows (`/proc/filesystems` without `nodev`),
/// for mounting a device whose type could not be probed.
pub fn kernel_block_filesystems() -> Vec<String> {
    std::fs::read_to_string("/proc/filesystems")
        .map(|t| parse_block_filesystems(&t))
        .unwrap_or_default()
}

/// The lines of `/proc/filesystems` not marked `nodev`.
pub fn parse_block_filesystems(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("nodev"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_what_was_seen_and_suggests_rootwait() {
        let e = NotFound {
            what: "root device UUID=x".into(),
            waited_s: 2,
            seen: vec!["vda (ext4, UUID=y)".into()],
            settled: true,
        };
        let s = e.to_string();
        assert!(
            s.starts_with("no root device UUID=x after 2 s; block devices: vda (ext4, UUID=y)")
        );
        assert!(s.contains("rootwait"));
        let none = NotFound {
            seen: vec![],
            settled: false,
            ..e
        };
        assert!(
            none.to_string()
                .contains("no block device was found at all")
        );
        assert!(!none.to_string().contains("rootwait"));
    }

    #[test]
    fn block_filesystems_skip_nodev_lines() {
        let t = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tsquashfs\nnodev\toverlay\n";
        assert_eq!(parse_block_filesystems(t), ["ext4", "squashfs"]);
    }

    #[test]
    fn proc_filesystems_lists_proc_itself() {
        assert!(kernel_has_filesystem("proc"));
        assert!(!kernel_has_filesystem("no-such-fs"));
    }
}
