//! The scenarios: each builds its images, boots them, watches the serial console (and types
//! into it where a shell is expected), and decides PASS or FAIL with a reason.
//!
//! Issue 5's acceptance lines are `initramfs`, `disk`, `reboot`, `emergency`, `crash-loop`,
//! `bad-root` and `live-iso`; issue 4's are `cgroups`, `cgroup-ro` and `namespaces`.
//! `rootwait`, `live-block`, `live-toram`, `ctrl-alt-del`, `signals` and `halt` cover the rest
//! of phase A, of PID 1's signals and of the shutdown.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::guest;
use super::host;
use super::image::{self, Extras, Inputs};
use super::qemu::{Config, Drive, Exit, Vm};
use crate::cmd;
use crate::layout::ServiceSet;

/// What every scenario shares.
#[derive(Debug)]
pub struct Ctx {
    /// Binaries, busybox, kernel, modules.
    pub inputs: Inputs,
    /// The phase A initramfs.
    pub boot_initrd: PathBuf,
}

/// One scenario.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it proves, for `--list`.
    pub what: &'static str,
    /// It needs `mksquashfs` and `xorriso`.
    pub live: bool,
    /// Runs it in the given (empty) directory; `Ok` carries a note for the PASS line.
    pub run: fn(&Ctx, &Path) -> Result<String>,
}

/// Every scenario, in the order `--all` runs them.
pub const ALL: [Scenario; 16] = [
    Scenario {
        name: "initramfs",
        what: "initramfs-only boot with the container service set reaches startup complete; SIGPWR powers off",
        live: false,
        run: initramfs,
    },
    Scenario {
        name: "disk",
        what: "ext4 disk, root=UUID=, switch root, real-machine set; dynamodctl shutdown poweroff; fsck -n clean",
        live: false,
        run: disk,
    },
    Scenario {
        name: "reboot",
        what: "GPT disk, root=PARTUUID= rootwait rootfstype= rootflags=; dynamodctl shutdown reboot resets",
        live: false,
        run: reboot,
    },
    Scenario {
        name: "rootwait",
        what: "root=LABEL= rootwait with no disk: progress is printed, no cap; a disk plugged in later boots",
        live: false,
        run: rootwait,
    },
    Scenario {
        name: "emergency",
        what: "dynamod.emergency gives a console shell that runs a command; boot resumes when it exits",
        live: false,
        run: emergency,
    },
    Scenario {
        name: "crash-loop",
        what: "a svmgr that keeps crashing ends in the emergency shell with the reason printed",
        live: false,
        run: crash_loop,
    },
    Scenario {
        name: "bad-root",
        what: "a root= naming no device prints a clear message and gives the emergency shell",
        live: false,
        run: bad_root,
    },
    Scenario {
        name: "live-iso",
        what: "live boot from an ISO (CD-ROM, found by searching): squashfs on a loop device + tmpfs overlay",
        live: true,
        run: live_iso,
    },
    Scenario {
        name: "live-block",
        what: "live boot from a squashfs block device + persistent overlay disk; init re-exec from /usr/sbin",
        live: true,
        run: live_block,
    },
    Scenario {
        name: "live-toram",
        what: "dynamod.squashfs= + dynamod.toram + dynamod.overlay=none: image in RAM, CD released, read-only root",
        live: true,
        run: live_toram,
    },
    Scenario {
        name: "ctrl-alt-del",
        what: "Ctrl-Alt-Del reaches PID 1 as SIGINT and reboots",
        live: false,
        run: ctrl_alt_del,
    },
    Scenario {
        name: "signals",
        what: "SIGUSR2 stops services and opens the emergency shell, boot resumes after it; SIGUSR1 reboots",
        live: false,
        run: signals,
    },
    Scenario {
        name: "halt",
        what: "dynamodctl shutdown halt stops everything and halts the kernel",
        live: false,
        run: halt,
    },
    Scenario {
        name: "cgroups",
        what: "pids-max, memory-max OOM kill + restart, cpu-max/io-weight read back, double-fork stop",
        live: false,
        run: cgroups,
    },
    Scenario {
        name: "cgroup-ro",
        what: "with the cgroup file system read-only everything still boots; the fallback is logged once",
        live: false,
        run: cgroup_ro,
    },
    Scenario {
        name: "namespaces",
        what: "the probe proves pid, private-tmp, protect-system=strict, bind mounts, net and every namespace",
        live: false,
        run: namespaces,
    },
];

/// The kernel command line every boot starts with. `printk.devkmsg=on`: every line the
/// guest writes to /dev/kmsg reaches the console (no rate limit).
const BASE_APPEND: &str = "console=ttyS0 panic=-1 printk.devkmsg=on";
/// Hard cap on one guest.
const LIMIT: Duration = Duration::from_secs(300);
/// Generous bound for one awaited event.
const STEP: Duration = Duration::from_secs(180);
/// What ends every scenario at once.
const FATAL: [&str; 2] = ["Kernel panic", "Attempted to kill init"];

fn s(x: &str) -> String {
    x.to_owned()
}

fn start(ctx: &Ctx, dir: &Path, initrd: &Path, append: &str, drives: Vec<Drive>) -> Result<Vm> {
    let cfg = Config {
        kernel: ctx.inputs.kernel.vmlinuz.clone(),
        initrd: initrd.to_owned(),
        append: format!("{BASE_APPEND} {append}").trim().to_owned(),
        drives,
        limit: LIMIT,
        serial_log: dir.join("serial.log"),
        qmp: dir.join("qmp.sock"),
    };
    Vm::start(&cfg)
}

/// A system root booted as an initramfs.
fn initramfs_image(ctx: &Ctx, dir: &Path, set: ServiceSet, extras: &Extras) -> Result<PathBuf> {
    let root = dir.join("root");
    image::system_root(&ctx.inputs, &root, set, extras)?;
    let out = dir.join("initrd.gz");
    image::initramfs_from(&root, &out)?;
    Ok(out)
}

/// The driver's verdicts: every `@@vm fail` line.
fn driver_failures(console: &str) -> Vec<String> {
    let mark = format!("{} fail ", guest::MARK);
    console
        .lines()
        .filter_map(|l| l.find(&mark).map(|i| l[i + mark.len()..].trim().to_owned()))
        .collect()
}

fn count_passes(console: &str) -> usize {
    let mark = format!("{} ok ", guest::MARK);
    console.lines().filter(|l| l.contains(&mark)).count()
}

/// Waits for the driver's `done`, then for QEMU to exit with `reason`; fails on any failed
/// check. Returns the exit and a note.
fn driver_outcome(mut vm: Vm, reason: &str) -> Result<(Exit, String)> {
    vm.expect("@@vm done", STEP, &FATAL)?;
    let exit = vm.wait_exit(Duration::from_secs(120))?;
    verdict(exit, reason)
}

fn verdict(exit: Exit, reason: &str) -> Result<(Exit, String)> {
    let fails = driver_failures(&exit.console);
    if !fails.is_empty() {
        bail!("{}", fails.join("; "));
    }
    if let Some(f) = FATAL.iter().find(|f| exit.console.contains(*f)) {
        bail!("the console shows {f:?}");
    }
    match exit.reason.as_deref() {
        Some(r) if r == reason => {}
        other => bail!(
            "qemu ended with {} (status {:?}), expected {reason}",
            other.unwrap_or("no SHUTDOWN event"),
            exit.code
        ),
    }
    let note = format!("{} checks, {reason}", count_passes(&exit.console));
    Ok((exit, note))
}

/// Waits for the emergency shell, runs `command` in it and waits for `expect` in its output.
fn in_emergency_shell(vm: &mut Vm, command: &str, expect: &str) -> Result<()> {
    vm.expect("emergency shell running", STEP, &FATAL)?;
    // The prompt ends with "# " (PS1 "(dynamod emergency) # ", or the shell's default).
    vm.expect("# ", Duration::from_secs(60), &FATAL)?;
    vm.type_text(&format!("{command}\n"))?;
    vm.expect(expect, Duration::from_secs(60), &FATAL)
        .map(|_| ())
        .context("the shell did not run the command")
}

fn initramfs(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_INITRAMFS)),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let mut vm = start(ctx, dir, &initrd, "", Vec::new())?;
    vm.expect("startup complete", STEP, &FATAL)?;
    let (exit, note) = driver_outcome(vm, "guest-shutdown")?;
    if !exit.console.contains("SIGPWR: poweroff") {
        bail!("init did not log SIGPWR as a poweroff");
    }
    Ok(note)
}

const DISK_FSTAB: &str = "# <source> <target> <type> <options> <dump> <pass>\n\
LABEL=dynamod-root / ext4 defaults 0 1\n\
tmpfs /tmp tmpfs nosuid,nodev,mode=1777 0 0\n";

fn machine_extras(hostname: &str, fstab: Option<&str>, checks: String) -> Extras {
    Extras {
        hostname: s(hostname),
        fstab: fstab.map(s),
        modules_list: Some(s("# Loaded by the modules-load service.\nloop\n")),
        with_modules: true,
        checks: Some(checks),
        ..Extras::default()
    }
}

fn disk(ctx: &Ctx, dir: &Path) -> Result<String> {
    let root = dir.join("root");
    let mut extras = machine_extras("dynamod-disk", Some(DISK_FSTAB), s(guest::CHECKS_DISK));
    // A real checker, so the fsck service checks the read-only root before the remount.
    extras.host_programs = vec![(s("/sbin/e2fsck"), vec![s("fsck.ext4")])];
    image::system_root(&ctx.inputs, &root, ServiceSet::Machine, &extras)?;
    let uuid = super::disk::random_uuid()?;
    let img = dir.join("disk.img");
    super::disk::make_ext4(&root, &img, 128, "dynamod-root", &uuid)?;
    let mut vm = start(
        ctx,
        dir,
        &ctx.boot_initrd,
        &format!("root=UUID={uuid} ro"),
        vec![Drive::Virtio(img.clone())],
    )?;
    vm.expect("switched root", STEP, &FATAL)?;
    vm.expect("startup complete", STEP, &FATAL)?;
    let (_, note) = driver_outcome(vm, "guest-shutdown")?;

    // The filesystem was left clean, and the seed saved at shutdown is private.
    let fsck = Command::new("fsck.ext4")
        .args(["-n", "-f"])
        .arg(&img)
        .output()
        .context("run fsck.ext4")?;
    if !fsck.status.success() {
        bail!(
            "fsck.ext4 -n -f found problems ({}): {}",
            fsck.status,
            String::from_utf8_lossy(&fsck.stdout).trim()
        );
    }
    let stat = cmd::output(
        Command::new("debugfs")
            .args(["-R", "stat /var/lib/dynamod/random-seed"])
            .arg(&img),
    )?;
    if !stat.contains("Mode:  0600") {
        bail!(
            "the random seed saved at shutdown is not mode 0600: {}",
            stat.lines().next().unwrap_or("").trim()
        );
    }
    Ok(format!("{note}, fsck -n clean, seed 0600"))
}

fn reboot(ctx: &Ctx, dir: &Path) -> Result<String> {
    let root = dir.join("root");
    let fstab = "/dev/vda1 / ext4 defaults 0 1\n";
    let extras = machine_extras("dynamod-reboot", Some(fstab), s(guest::CHECKS_REBOOT));
    image::system_root(&ctx.inputs, &root, ServiceSet::Machine, &extras)?;
    let part = dir.join("part.img");
    super::disk::make_ext4(
        &root,
        &part,
        128,
        "dynamod-root",
        &super::disk::random_uuid()?,
    )?;
    let disk = dir.join("disk.img");
    let partuuid = super::disk::random_uuid()?;
    super::disk::make_gpt_disk(&part, &disk, &partuuid)?;
    let _ = std::fs::remove_file(&part);
    let vm = start(
        ctx,
        dir,
        &ctx.boot_initrd,
        &format!(
            "root=PARTUUID={partuuid} rootwait rootdelay=1 rootfstype=ext4 \
             rootflags=noatime,commit=7 ro"
        ),
        vec![Drive::Virtio(disk)],
    )?;
    driver_outcome(vm, "guest-reset").map(|(_, n)| n)
}

fn rootwait(ctx: &Ctx, dir: &Path) -> Result<String> {
    let root = dir.join("root");
    let fstab = "LABEL=late-root / ext4 defaults 0 1\n";
    let extras = machine_extras("dynamod-late", Some(fstab), s(guest::CHECKS_ROOTWAIT));
    image::system_root(&ctx.inputs, &root, ServiceSet::Machine, &extras)?;
    let img = dir.join("disk.img");
    super::disk::make_ext4(&root, &img, 128, "late-root", &super::disk::random_uuid()?)?;
    let mut vm = start(
        ctx,
        dir,
        &ctx.boot_initrd,
        "root=LABEL=late-root rootwait rw",
        Vec::new(),
    )?;
    // Two progress lines: the wait goes on past the first report, then the disk arrives.
    vm.expect(
        "still waiting for root device LABEL=late-root",
        STEP,
        &FATAL,
    )?;
    let second = vm.expect(
        "still waiting for root device LABEL=late-root",
        STEP,
        &FATAL,
    )?;
    vm.hotplug_disk(&img, "late")?;
    vm.expect("switched root", STEP, &FATAL)?;
    let (_, note) = driver_outcome(vm, "guest-shutdown")?;
    let waited = second
        .find("root device LABEL=late-root (")
        .map_or("", |i| &second[i + "root device LABEL=late-root (".len()..]);
    let waited = waited.split(',').next().unwrap_or("").trim_end_matches(')');
    Ok(format!("{note}; disk plugged in after {waited}"))
}

fn emergency(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_EMERGENCY)),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let mut vm = start(ctx, dir, &initrd, "dynamod.emergency", Vec::new())?;
    vm.expect("dynamod.emergency on the command line", STEP, &FATAL)?;
    in_emergency_shell(
        &mut vm,
        "touch /run/emergency-was-here; echo EMERGENCY-$((6*7))-OK; exit",
        "EMERGENCY-42-OK",
    )?;
    vm.expect("emergency shell exited", STEP, &FATAL)?;
    vm.expect("startup complete", STEP, &FATAL)?;
    driver_outcome(vm, "guest-shutdown").map(|(_, n)| n)
}

fn crash_loop(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let mut vm = start(
        ctx,
        dir,
        &initrd,
        &format!("-- --svmgr /{}/crashing-svmgr", guest::TEST_BIN),
        Vec::new(),
    )?;
    let reason = vm.expect("crash loop", STEP, &FATAL)?;
    in_emergency_shell(
        &mut vm,
        "echo CRASH-$((6*7))-OK; poweroff -f",
        "CRASH-42-OK",
    )?;
    let exit = vm.wait_exit(Duration::from_secs(60))?;
    verdict(exit, "guest-shutdown")?;
    let reason = reason
        .find("svmgr exited")
        .map_or(reason.as_str(), |i| &reason[i..]);
    Ok(format!("printed: {}", reason.trim()))
}

fn bad_root(ctx: &Ctx, dir: &Path) -> Result<String> {
    // A real disk is attached, so the message can list it.
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc"))?;
    let img = dir.join("other.img");
    super::disk::make_ext4(
        &root,
        &img,
        16,
        "not-the-root",
        &super::disk::random_uuid()?,
    )?;
    let missing = "0badc0de-dead-4bad-8bad-000000000000";
    let mut vm = start(
        ctx,
        dir,
        &ctx.boot_initrd,
        &format!("root=UUID={missing} ro"),
        vec![Drive::Virtio(img)],
    )?;
    let line = vm.expect("cannot boot the real root", STEP, &FATAL)?;
    if !line.contains(&format!("no root device UUID={missing}")) || !line.contains("vda (ext4") {
        bail!("the message does not name the missing device and the disks present: {line}");
    }
    in_emergency_shell(
        &mut vm,
        "echo NOROOT-$((6*7))-OK; poweroff -f",
        "NOROOT-42-OK",
    )?;
    let exit = vm.wait_exit(Duration::from_secs(60))?;
    verdict(exit, "guest-shutdown")?;
    let msg = line
        .find("cannot boot")
        .map_or(line.as_str(), |i| &line[i..]);
    Ok(format!("printed: {}", msg.trim()))
}

fn live_root(ctx: &Ctx, dir: &Path, extras: &Extras) -> Result<PathBuf> {
    host::ensure_packages(&host::LIVE_PACKAGES)?;
    let root = dir.join("root");
    image::system_root(&ctx.inputs, &root, ServiceSet::Machine, extras)?;
    Ok(root)
}

fn live_extras(checks: String) -> Extras {
    machine_extras("dynamod-live", None, checks)
}

/// An ISO holding the squashfs of `root` (which is removed) at `inside` (relative).
fn live_iso_image(root: &Path, dir: &Path, inside: &str) -> Result<PathBuf> {
    let iso_dir = dir.join("iso");
    let image = iso_dir.join(inside);
    if let Some(parent) = image.parent() {
        std::fs::create_dir_all(parent)?;
    }
    super::disk::make_squashfs(root, &image)?;
    std::fs::remove_dir_all(root)?;
    let iso = dir.join("live.iso");
    super::disk::make_iso(&iso_dir, &iso, "DYNAMOD_LIVE")?;
    std::fs::remove_dir_all(&iso_dir)?;
    Ok(iso)
}

fn live_iso(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = live_extras(format!("{}{}", guest::CHECKS_LIVE, guest::CHECKS_LIVE_ISO));
    let root = live_root(ctx, dir, &extras)?;
    let iso = live_iso_image(&root, dir, "live/root.squashfs")?;
    let mut vm = start(
        ctx,
        dir,
        &ctx.boot_initrd,
        "dynamod.live rootwait",
        vec![Drive::Cdrom(iso)],
    )?;
    vm.expect("found the live image on /dev/sr0", STEP, &FATAL)?;
    driver_outcome(vm, "guest-shutdown").map(|(_, n)| n)
}

fn live_block(ctx: &Ctx, dir: &Path) -> Result<String> {
    let mut extras = live_extras(format!(
        "{}{}",
        guest::CHECKS_LIVE,
        guest::CHECKS_LIVE_BLOCK
    ));
    extras.init_in_usr_sbin = true;
    let root = live_root(ctx, dir, &extras)?;
    let img = dir.join("root.squashfs");
    super::disk::make_squashfs(&root, &img)?;
    std::fs::remove_dir_all(&root)?;
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty)?;
    let persist = dir.join("persist.img");
    super::disk::make_ext4(
        &empty,
        &persist,
        32,
        "persist",
        &super::disk::random_uuid()?,
    )?;
    let vm = start(
        ctx,
        dir,
        &ctx.boot_initrd,
        "dynamod.live dynamod.media=/dev/vda dynamod.overlay=LABEL=persist",
        vec![Drive::Virtio(img), Drive::Virtio(persist)],
    )?;
    driver_outcome(vm, "guest-shutdown").map(|(_, n)| n)
}

/// A read-only root needs somewhere to write: tmpfs from /etc/fstab.
const TORAM_FSTAB: &str = "tmpfs /tmp tmpfs nosuid,nodev,mode=1777 0 0\n\
tmpfs /var/tmp tmpfs nosuid,nodev,mode=1777 0 0\n\
tmpfs /var/log tmpfs nosuid,nodev,mode=0755 0 0\n\
tmpfs /var/lib tmpfs nosuid,nodev,mode=0755 0 0\n\
tmpfs /var/spool tmpfs nosuid,nodev,mode=0755 0 0\n";

fn live_toram(ctx: &Ctx, dir: &Path) -> Result<String> {
    let mut extras = machine_extras(
        "dynamod-toram",
        Some(TORAM_FSTAB),
        s(guest::CHECKS_LIVE_TORAM),
    );
    // A read-only root cannot get its machine id at boot: images bake it in.
    extras.machine_id = true;
    extras.dirs = vec![s("var/spool")];
    let root = live_root(ctx, dir, &extras)?;
    let iso = live_iso_image(&root, dir, "boot/system.sqfs")?;
    let mut vm = start(
        ctx,
        dir,
        &ctx.boot_initrd,
        "dynamod.live dynamod.media=LABEL=DYNAMOD_LIVE dynamod.squashfs=/boot/system.sqfs \
         dynamod.toram dynamod.overlay=none rootwait",
        vec![Drive::Cdrom(iso)],
    )?;
    vm.expect("dynamod.toram: copying", STEP, &FATAL)?;
    driver_outcome(vm, "guest-shutdown").map(|(_, n)| n)
}

fn halt(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_HALT)),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let mut vm = start(ctx, dir, &initrd, "", Vec::new())?;
    vm.expect("@@vm done", STEP, &FATAL)?;
    vm.expect("shutdown: halt now", STEP, &FATAL)?;
    vm.expect("System halted", Duration::from_secs(60), &FATAL)?;
    // A halted machine stays on: QEMU is stopped here.
    let exit = vm.stop_now();
    let fails = driver_failures(&exit.console);
    if !fails.is_empty() {
        bail!("{}", fails.join("; "));
    }
    if exit.reason.is_some() && exit.reason.as_deref() != Some("host-signal") {
        bail!("qemu reported {:?} instead of staying halted", exit.reason);
    }
    Ok(format!(
        "{} checks, System halted",
        count_passes(&exit.console)
    ))
}

fn ctrl_alt_del(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_CAD)),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let mut vm = start(ctx, dir, &initrd, "", Vec::new())?;
    vm.expect("ready for ctrl-alt-del", STEP, &FATAL)?;
    vm.ctrl_alt_del()?;
    vm.expect("SIGINT: reboot", Duration::from_secs(60), &FATAL)?;
    let exit = vm.wait_exit(Duration::from_secs(120))?;
    verdict(exit, "guest-reset").map(|(_, n)| n)
}

fn signals(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_SIGNALS)),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let mut vm = start(ctx, dir, &initrd, "", Vec::new())?;
    vm.expect("sending SIGUSR2 to PID 1", STEP, &FATAL)?;
    vm.expect("SIGUSR2: emergency shell requested", STEP, &FATAL)?;
    in_emergency_shell(
        &mut vm,
        "touch /run/emergency-was-here; echo SIGUSR2-$((6*7))-OK; exit",
        "SIGUSR2-42-OK",
    )?;
    vm.expect("emergency shell exited", STEP, &FATAL)?;
    vm.expect("sending SIGUSR1 to PID 1", STEP, &FATAL)?;
    vm.expect("SIGUSR1: reboot", STEP, &FATAL)?;
    let exit = vm.wait_exit(Duration::from_secs(120))?;
    verdict(exit, "guest-reset").map(|(_, n)| n)
}

fn cgroups(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_CGROUPS)),
        services: guest::CGROUP_SERVICES
            .iter()
            .map(|(n, t)| (s(n), s(t)))
            .collect(),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let vm = start(ctx, dir, &initrd, "", Vec::new())?;
    driver_outcome(vm, "guest-shutdown").map(|(_, n)| n)
}

fn cgroup_ro(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_CGROUP_RO)),
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let vm = start(
        ctx,
        dir,
        &initrd,
        &format!("-- --svmgr /{}/ro-cgroup-svmgr", guest::TEST_BIN),
        Vec::new(),
    )?;
    let (exit, note) = driver_outcome(vm, "guest-shutdown")?;
    let said = exit
        .console
        .matches("falling back to process groups")
        .count();
    if said != 1 {
        bail!("the fallback was logged {said} times, expected once");
    }
    Ok(format!("{note}, fallback logged once"))
}

fn namespaces(ctx: &Ctx, dir: &Path) -> Result<String> {
    let extras = Extras {
        hostname: s("dynamod-vm"),
        checks: Some(s(guest::CHECKS_NAMESPACES)),
        services: guest::PROBE_SERVICES
            .iter()
            .map(|(n, t)| (s(n), s(t)))
            .collect(),
        dirs: vec![s("var/lib/probe")],
        ..Extras::default()
    };
    let initrd = initramfs_image(ctx, dir, ServiceSet::Docker, &extras)?;
    let vm = start(ctx, dir, &initrd, "", Vec::new())?;
    driver_outcome(vm, "guest-shutdown").map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn failed_checks_are_collected_from_kernel_lines() {
        let console = "[    5.1] @@vm ok a\n[    5.2] @@vm fail b: detail\nnoise\n@@vm fail c\n";
        assert_eq!(driver_failures(console), ["b: detail", "c"]);
        assert_eq!(count_passes(console), 1);
    }
}
