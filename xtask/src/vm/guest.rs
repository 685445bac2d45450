//! What runs inside the guest: a test driver started as a service, shell helpers, the checks of
//! each scenario, and the test services (limits, OOM, double fork, namespace probes).
//!
//! Checks run in the driver's own shell (`check WHAT eval 'CODE'`), so the helpers below are
//! available to them.
//!
//! The driver waits for start-up (`dynamodctl wait`), runs the scenario's checks and reports
//! each as a line on `/dev/kmsg` — `@@vm ok WHAT` or `@@vm fail WHAT: DETAIL` — which the
//! kernel prints on the serial console the host reads; `@@vm done` ends the list. Then it does
//! the scenario's last action (a shutdown, a signal to PID 1).

/// Where the driver and its helpers live in the image.
pub const DIR: &str = "vmtest";
/// Where test programs live in the image.
pub const TEST_BIN: &str = "usr/lib/dynamod-test";

/// The marker every report line starts with.
pub const MARK: &str = "@@vm";

/// Shell helpers sourced by the driver.
pub const LIB: &str = r#"# dynamod VM test helpers (busybox sh). Functions keep their variables `local`: the
# checks they run are eval'd in this same shell.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /run/vmtest
say() { echo "@@vm $*" > /dev/kmsg; }
pass() { say "ok $*"; }
fail() { say "fail $*"; }
# check WHAT COMMAND...: passes when COMMAND succeeds; the failure carries its output.
check() {
    local what="$1"
    shift
    if "$@" > /run/vmtest/out 2>&1; then
        pass "$what"
    else
        fail "$what: $(tr '\n' ' ' < /run/vmtest/out | cut -c1-400)"
    fi
}
# eventually SECONDS WHAT COMMAND...: retries once a second until COMMAND succeeds.
eventually() {
    local limit="$1" what="$2" tries=0
    shift 2
    while ! "$@" > /run/vmtest/out 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge "$limit" ]; then
            fail "$what (after $limit s): $(tr '\n' ' ' < /run/vmtest/out | cut -c1-400)"
            return 1
        fi
        sleep 1
    done
    pass "$what"
}
# json_num KEY: the first number after "KEY": on standard input.
json_num() { sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -n 1; }
# json_str KEY: the first string after "KEY": on standard input.
json_str() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n 1; }
# cgroup_of SERVICE: the service's cgroup directory.
cgroup_of() {
    local p
    p=$(dynamodctl --json status "$1" | json_str cgroup)
    case "$p" in
        /sys/*) echo "$p" ;;
        '') return 1 ;;
        *) echo "/sys/fs/cgroup${p}" ;;
    esac
}
# file_is PATH VALUE: the file's first line is VALUE.
file_is() {
    local got
    got=$(head -n 1 "$1" 2>&1)
    [ "$got" = "$2" ] || { echo "$1 is '$got', expected '$2'"; return 1; }
}
# count_procs TEXT: how many processes have TEXT in their command line.
count_procs() {
    local n=0 f c
    for f in /proc/[0-9]*/cmdline; do
        c=$(tr '\0' ' ' < "$f" 2>/dev/null) || continue
        case "$c" in *"$1"*) n=$((n + 1)) ;; esac
    done
    echo "$n"
}
# logs_have SERVICE TEXT: the service's stored output contains TEXT.
logs_have() { dynamodctl logs "$1" 2>&1 | grep -F -q -- "$2"; }
# probe_value SERVICE KEY: KEY=value from a probe's output.
probe_value() { dynamodctl logs "$1" 2>/dev/null | sed -n "s#.*[] ]$2=\(.*\)\$#\1#p" | tail -n 1; }
"#;

/// The driver: waits for start-up, then runs the checks (which define `finish`).
pub const DRIVER: &str = r#"#!/bin/sh
. /vmtest/lib.sh
say "driver started"
if ! dynamodctl --timeout 240s wait > /run/vmtest/out 2>&1; then
    fail "start-up did not complete: $(tr '\n' ' ' < /run/vmtest/out | cut -c1-300)"
    dynamodctl list > /dev/kmsg 2>&1
fi
. /vmtest/checks.sh
say "done"
finish
"#;

/// The driver's service file.
pub const DRIVER_SERVICE: &str = r#"# The VM scenario's test driver (not part of dynamod).
[service]
name = "vm-driver"
exec = ["/bin/sh", "/vmtest/driver.sh"]

[restart]
policy = "temporary"

[shutdown]
stop-timeout = "3s"
"#;

/// A service manager that crashes at once, for the crash-loop scenario (`--svmgr` on the
/// kernel command line after `--`).
pub const CRASHING_SVMGR: &str =
    "#!/bin/sh\necho 'test svmgr: exiting with status 3 on purpose' >&2\nexit 3\n";

/// A service manager behind a read-only cgroup file system, for the `cgroup-ro` scenario.
pub const RO_CGROUP_SVMGR: &str = "#!/bin/sh\n# Test switch: make the cgroup file system read-only, then run the real service manager.\n\
mount -o remount,ro /sys/fs/cgroup\nexec /usr/lib/dynamod/dynamod-svmgr \"$@\"\n";

/// Checks under a read-only cgroup file system.
pub const CHECKS_CGROUP_RO: &str = r#"
check "the cgroup file system is read-only" grep -q ' /sys/fs/cgroup cgroup2 ro' /proc/mounts
check "every service is healthy without cgroups" dynamodctl is-healthy
check "services have no cgroup" eval 'dynamodctl --json status syslog | grep -q "\"cgroup\": null"'
check "no dynamod cgroup was created" eval '[ ! -e /sys/fs/cgroup/dynamod ]'
finish() { dynamodctl shutdown poweroff; }
"#;

/// Checks of the initramfs-only boot with the container set; ends with SIGPWR to PID 1.
pub const CHECKS_INITRAMFS: &str = r#"
check "every service is healthy" dynamodctl is-healthy
check "the host name comes from /etc/hostname" eval '[ "$(hostname)" = dynamod-vm ]'
check "/etc/machine-id was generated" grep -Eq '^[0-9a-f]{32}$' /etc/machine-id
check "dynamodctl list answers" dynamodctl list
check "cgroup2 is mounted" grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts
finish() { kill -PWR 1; }
"#;

/// Checks of a disk boot with the real-machine set; ends with `dynamodctl shutdown poweroff`.
pub const CHECKS_DISK: &str = r#"
check "every service is healthy" dynamodctl is-healthy
check "/ is the ext4 disk, mounted read-write" eval 'awk '"'"'$2 == "/" { r = $1 " " $3 " " $4 } END { print r }'"'"' /proc/mounts | grep -Eq "^/dev/vda ext4 rw"'
check "phase A recorded how it found the root (/run was moved)" grep -q '^root_spec=UUID=' /run/dynamod/initramfs.env
check "the initramfs loaded the disk driver" grep -q '^modules=.*virtio_blk' /run/dynamod/initramfs.env
check "no /newroot is left" eval '[ ! -e /newroot ]'
check "fsck checked the read-only root before the remount" logs_have fsck "checking /dev/vda (ext4)"
check "/etc/fstab was mounted (tmpfs on /tmp)" grep -q ' /tmp tmpfs ' /proc/mounts
check "modules-load loaded loop from /etc/modules" test -d /sys/module/loop
check "the host name comes from /etc/hostname" eval '[ "$(hostname)" = dynamod-disk ]'
check "/etc/machine-id was written on the disk" grep -Eq '^[0-9a-f]{32}$' /etc/machine-id
check "the random seed was replaced once / was writable (mode 0600)" eval '[ "$(stat -c %a /var/lib/dynamod/random-seed)" = 600 ] && [ "$(stat -c %s /var/lib/dynamod/random-seed)" = 512 ]'
check "syslog writes /var/log/messages" test -f /var/log/messages
check "dynamodctl check accepts the installed configuration" dynamodctl check /etc/dynamod
check "Ctrl-Alt-Del is disabled (the kernel sends SIGINT)" file_is /proc/sys/kernel/ctrl-alt-del 0
finish() { dynamodctl shutdown poweroff; }
"#;

/// Checks of the partitioned-disk boot; ends with `dynamodctl shutdown reboot`.
pub const CHECKS_REBOOT: &str = r#"
check "every service is healthy" dynamodctl is-healthy
check "phase A found the root by PARTUUID" grep -q '^root_spec=PARTUUID=' /run/dynamod/initramfs.env
check "/ is the partition" eval 'awk '"'"'$2 == "/" { r = $1 } END { print r }'"'"' /proc/mounts | grep -q "^/dev/vda1$"'
check "rootflags reached the mount (noatime, commit=7)" eval 'grep " / ext4 " /proc/mounts | grep -q "noatime.*commit=7"'
finish() { dynamodctl shutdown reboot; }
"#;

/// Checks of the late-disk boot.
pub const CHECKS_ROOTWAIT: &str = r#"
check "every service is healthy" dynamodctl is-healthy
check "phase A found the root by LABEL" grep -q '^root_spec=LABEL=late-root$' /run/dynamod/initramfs.env
check "rw on the command line mounted it read-write" grep -q '^root_mode=rw$' /run/dynamod/initramfs.env
finish() { dynamodctl shutdown poweroff; }
"#;

/// Checks after the emergency shell of `dynamod.emergency` exited.
pub const CHECKS_EMERGENCY: &str = r#"
check "every service is healthy after the shell" dynamodctl is-healthy
check "the shell's command ran" test -f /run/emergency-was-here
finish() { dynamodctl shutdown poweroff; }
"#;

/// Checks before and after SIGUSR2's emergency shell; ends with SIGUSR1 (reboot).
pub const CHECKS_SIGNALS: &str = r#"
if [ ! -e /run/vmtest/round1 ]; then
    touch /run/vmtest/round1
    check "every service is healthy" dynamodctl is-healthy
    say "sending SIGUSR2 to PID 1"
    finish() { kill -USR2 1; }
else
    check "services are back after the emergency shell" dynamodctl is-healthy
    check "the shell's command ran" test -f /run/emergency-was-here
    say "sending SIGUSR1 to PID 1"
    finish() { kill -USR1 1; }
fi
"#;

/// Ctrl-Alt-Del: the host presses the keys once the driver says so.
pub const CHECKS_CAD: &str = r#"
check "Ctrl-Alt-Del is disabled (the kernel sends SIGINT)" file_is /proc/sys/kernel/ctrl-alt-del 0
say "ready for ctrl-alt-del"
finish() { :; }
"#;

/// Live boots: the root is an overlay (or the squashfs itself).
pub const CHECKS_LIVE: &str = r#"
check "every service is healthy" dynamodctl is-healthy
check "/ is an overlay" eval 'awk '"'"'$2 == "/" { r = $3 } END { print r }'"'"' /proc/mounts | grep -qx overlay'
check "the squashfs is mounted read-only" grep -q ' /run/dynamod/live/squash squashfs ro' /proc/mounts
check "phase A recorded a live root" grep -q '^live=squashfs + overlay' /run/dynamod/initramfs.env
check "the overlay takes writes" eval 'echo x > /etc/written-on-overlay && grep -q x /etc/written-on-overlay'
finish() { dynamodctl shutdown poweroff; }
"#;

/// Extra check of the ISO boot: the image came through a loop device from the CD.
pub const CHECKS_LIVE_ISO: &str = r#"
check "the medium is the CD-ROM (iso9660)" grep -q '^/dev/sr0 /run/dynamod/live/media iso9660' /proc/mounts
check "the image is on a loop device" eval 'grep " /run/dynamod/live/squash " /proc/mounts | grep -q "^/dev/loop"'
"#;

/// Extra checks of the squashfs-on-a-disk boot: no loop device, a persistent upper layer, and
/// dynamod-init re-executed from /usr/sbin.
pub const CHECKS_LIVE_BLOCK: &str = r#"
check "the squashfs is the disk itself" grep -q '^/dev/vda /run/dynamod/live/squash squashfs' /proc/mounts
check "the upper layer is the persistence disk" grep -q '^/dev/vdb /run/dynamod/live/rw ext4 rw' /proc/mounts
check "writes land on the persistence disk" test -f /run/dynamod/live/rw/upper/etc/written-on-overlay
check "dynamod-init was re-executed from /usr/sbin" eval '[ "$(readlink /proc/1/exe)" = /usr/sbin/dynamod-init ]'
"#;

/// Checks of the copied-to-RAM, read-only live root.
pub const CHECKS_LIVE_TORAM: &str = r#"
check "every service is healthy" dynamodctl is-healthy
check "/ is the squashfs itself, read-only" eval 'awk '"'"'$2 == "/" { r = $3 " " $4 } END { print r }'"'"' /proc/mounts | grep -q "^squashfs ro"'
check "/ refuses writes" eval '! touch /etc/written 2>/dev/null'
check "the image was copied into RAM" grep -q ' /run/dynamod/live/ram tmpfs ' /proc/mounts
check "the loop device reads the RAM copy" grep -q '^/run/dynamod/live/ram/root.squashfs' /sys/block/loop0/loop/backing_file
check "the CD-ROM was released" eval '! grep -q "^/dev/sr0 " /proc/mounts'
check "/etc/fstab gave tmpfs for /var/log" grep -q ' /var/log tmpfs ' /proc/mounts
check "phase A recorded the layout" grep -q '^live=squashfs, no overlay' /run/dynamod/initramfs.env
finish() { dynamodctl shutdown poweroff; }
"#;

/// Halt: everything stops and the kernel halts.
pub const CHECKS_HALT: &str = r#"
check "every service is healthy" dynamodctl is-healthy
finish() { dynamodctl shutdown halt; }
"#;

/// Test services of the cgroup scenario.
pub const CGROUP_SERVICES: [(&str, &str); 4] = [
    (
        "pids",
        r#"# pids-max = 5: the inner shell's fourth sleep would be the sixth task.
[service]
name = "pids"
exec = ["/bin/sh", "-c", "sh -c 'i=0; while [ $i -lt 8 ]; do sleep 1001 & i=$((i + 1)); done; wait'; echo \"inner shell exited: $?\"; exec sleep 1002"]

[cgroup]
pids-max = 5

[restart]
policy = "temporary"
"#,
    ),
    (
        "hog",
        r#"# memory-max = 32M and a 64 MB buffer: OOM-killed, restarted (transient), then quiet.
[service]
name = "hog"
exec = ["/bin/sh", "-c", "if [ -e /run/hog-ran ]; then echo 'second run: staying small'; exec sleep 1003; fi; touch /run/hog-ran; echo 'allocating 64 MB'; exec dd if=/dev/zero of=/dev/null bs=64M count=1"]

[cgroup]
memory-max = "32M"

[restart]
policy = "transient"
delay = "1s"
"#,
    ),
    (
        "limits",
        r#"# Limits written before exec and read back by the driver.
[service]
name = "limits"
exec = ["sleep", "1004"]

[cgroup]
cpu-max = "50%"
cpu-weight = 200
io-weight = 300
memory-high = "48M"
"#,
    ),
    (
        "escaper",
        r#"# Double fork and setsid, one grandchild ignoring SIGTERM: only cgroup.kill ends it.
[service]
name = "escaper"
exec = ["/bin/sh", "-c", "setsid sh -c 'trap \"\" TERM HUP; exec sleep 3801' & (setsid sleep 3802 &); exec sleep 3803"]

[shutdown]
stop-timeout = "3s"
"#,
    ),
];

/// Checks of the cgroup scenario.
pub const CHECKS_CGROUPS: &str = r#"
pids_cg=$(cgroup_of pids)
check "pids: pids.max is 5" file_is "$pids_cg/pids.max" 5
eventually 30 "pids: the sixth process was refused (can't fork)" logs_have pids "inner shell exited: 2"
check "pids: the kernel counted the refusal (pids.events max)" eval "grep -Eq '^max [1-9]' '$pids_cg/pids.events'"
check "pids: never more than 5 tasks" eval "[ \$(cat '$pids_cg/pids.current') -le 5 ]"
check "pids: the three sleeps that fitted are running" eval '[ "$(count_procs "sleep 1001")" -eq 3 ]'

eventually 60 "hog: restarted after its OOM kill" logs_have hog "second run: staying small"
check "hog: status --json counts the OOM kill" eval 'n=$(dynamodctl --json status hog | json_num oom_kills); [ "${n:-0}" -ge 1 ]'
check "hog: the last exit was SIGKILL" eval 'dynamodctl --json status hog | grep -q "\"signal_name\": \"SIGKILL\""'
check "hog: restarted once, per its transient policy" eval 'n=$(dynamodctl --json status hog | json_num count); [ "${n:-0}" -ge 1 ]'
check "hog: memory.max is 32M" file_is "$(cgroup_of hog)/memory.max" 33554432

lim=$(cgroup_of limits)
check "limits: cpu.max read back" file_is "$lim/cpu.max" "50000 100000"
check "limits: cpu.weight read back" file_is "$lim/cpu.weight" 200
check "limits: io.weight read back" file_is "$lim/io.weight" "default 300"
check "limits: memory.high read back" file_is "$lim/memory.high" 50331648

esc=$(cgroup_of escaper)
eventually 30 "escaper: the grandchildren escaped into their own sessions" eval '[ "$(count_procs "sleep 3801")" -ge 1 ] && [ "$(count_procs "sleep 3802")" -ge 1 ]'
start=$(date +%s)
check "escaper: dynamodctl stop returns" dynamodctl stop escaper
took=$(( $(date +%s) - start ))
say "info escaper stop took ${took} s (stop-timeout 3 s)"
check "escaper: no process is left" eval '[ "$(count_procs "sleep 380")" -eq 0 ]'
check "escaper: the cgroup is empty or gone" eval "[ ! -e '$esc' ] || [ -z \"\$(cat '$esc/cgroup.procs')\" ]"
finish() { dynamodctl shutdown poweroff; }
"#;

/// Probe services of the namespace scenario (the fixture at `/usr/lib/dynamod-test/fixture`).
pub const PROBE_SERVICES: [(&str, &str); 4] = [
    (
        "probe-pid",
        r#"[service]
name = "probe-pid"
exec = ["/usr/lib/dynamod-test/fixture", "probe"]

[namespace]
enable = ["pid"]
"#,
    ),
    (
        "probe-fs",
        r#"[service]
name = "probe-fs"
exec = ["/usr/lib/dynamod-test/fixture", "probe", "/tmp/probe-private", "/usr/probe-file", "/etc/probe-file", "/var/lib/probe/written"]

[namespace]
private-tmp = true
protect-system = "strict"
bind-mounts = [{ source = "/var/lib/probe", target = "/var/lib/probe", writable = true }]
"#,
    ),
    (
        "probe-net",
        r#"[service]
name = "probe-net"
exec = ["/usr/lib/dynamod-test/fixture", "probe"]

[namespace]
enable = ["net"]
"#,
    ),
    (
        "probe-all",
        r#"[service]
name = "probe-all"
exec = ["/usr/lib/dynamod-test/fixture", "probe"]

[namespace]
enable = ["pid", "mnt", "net", "uts", "ipc", "user", "cgroup"]
"#,
    ),
];

/// Checks of the namespace scenario.
pub const CHECKS_NAMESPACES: &str = r#"
for p in probe-pid probe-fs probe-net probe-all; do
    eventually 30 "$p: the probe reported" logs_have "$p" probe-end
done
check "pid: the probe is PID 1 of its namespace" eval '[ "$(probe_value probe-pid pid)" = 1 ]'
check "pid: its /proc shows only its namespace" eval '[ "$(probe_value probe-pid proc_count)" -le 2 ]'
check "private-tmp: the probe wrote its /tmp" eval '[ "$(probe_value probe-fs write:/tmp/probe-private)" = ok ]'
check "private-tmp: the file is invisible outside" eval '[ ! -e /tmp/probe-private ]'
check "protect-system=strict: /usr is read-only" eval '[ "$(probe_value probe-fs write:/usr/probe-file)" = EROFS ]'
check "protect-system=strict: /etc is read-only" eval '[ "$(probe_value probe-fs write:/etc/probe-file)" = EROFS ]'
check "bind-mounts: the writable bind mount took the write" eval '[ "$(probe_value probe-fs write:/var/lib/probe/written)" = ok ] && [ "$(cat /var/lib/probe/written)" = probe ]'
check "net: only lo, and it is up" eval '[ "$(probe_value probe-net ifaces)" = lo ] && [ "$(probe_value probe-net lo_up)" = true ]'
for ns in pid mnt net uts ipc user cgroup; do
    check "all: the $ns namespace is the probe's own" eval "v=\$(probe_value probe-all ns.$ns); [ -n \"\$v\" ] && [ \"\$v\" != \"\$(readlink /proc/self/ns/$ns)\" ]"
done
finish() { dynamodctl shutdown poweroff; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_services_are_valid_configuration() {
        let services: Vec<(std::path::PathBuf, Vec<u8>)> = CGROUP_SERVICES
            .iter()
            .chain(PROBE_SERVICES.iter())
            .map(|(n, t)| (format!("services/{n}.toml").into(), t.as_bytes().to_vec()))
            .chain(std::iter::once((
                "services/vm-driver.toml".into(),
                DRIVER_SERVICE.as_bytes().to_vec(),
            )))
            .collect();
        let c = dynamod_config::load_sources(services, Vec::new());
        let errors: Vec<String> = c
            .diagnostics
            .iter()
            .map(dynamod_config::Diagnostic::located_message)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(c.services.len(), 9);
    }
}
