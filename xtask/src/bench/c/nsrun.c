/* Runs one manager as PID 1 of fresh namespaces and reports when its services are ready.
 *
 *   bench-nsrun [--mount DIR [--copy SRC] [--chroot]] [--nofile N]
 *               [--wait-line TEXT COUNT | --wait-s6 SCANDIR | --wait-runit SCANDIR] -- PROG ARG...
 *
 * 1. New mount, UTS and IPC namespaces; the mount tree made private so nothing propagates back.
 * 2. A tmpfs on DIR holding a copy of SRC (`cp -a`), so every run starts from the same clean
 *    tree and the tree vanishes with the namespace.
 * 3. A new PID namespace whose PID 1 execs PROG (chrooted into DIR with --chroot, else with a
 *    /proc of its own).
 * 4. Readiness, stamped with CLOCK_MONOTONIC: the COUNTth output line containing TEXT, or every
 *    service of an s6 / runit scan directory reporting "up and ready" / "run" in its
 *    supervise/status (s6) or supervise/stat (runit) file, watched with inotify.
 * 5. Waits for PID 1; when it is gone the kernel has killed everything else in the namespace.
 *
 * SIGTERM and SIGINT sent to this program go on to PID 1, SIGUSR1 SIGKILLs PID 1, and PID 1 gets SIGKILL
 * if this program dies. The manager's stdout and stderr are forwarded to stdout. Reports go to stderr, one line each:
 *   @nsrun pid1 HOSTPID / @nsrun start NS / @nsrun ready NS / @nsrun exit WSTATUS NS */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum wait_mode { WAIT_NONE, WAIT_LINE, WAIT_S6, WAIT_RUNIT };

/* PID 1 in our namespace, while it has not been reaped (so the number cannot be reused). */
static volatile pid_t pid1;

/* SIGTERM and SIGINT are passed on to PID 1; SIGUSR1 kills it (the driver never signals a bare
 * host PID). */
static void forward(int sig) {
    if (pid1 > 0)
        kill(pid1, sig == SIGUSR1 ? SIGKILL : sig);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void report(int fd, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    (void)!write(fd, line, (size_t)n);
}

static void die(const char *what) {
    fprintf(stderr, "bench-nsrun: %s: %s\n", what, strerror(errno));
    exit(111);
}

/* One watched service directory. */
struct svc {
    char *status; /* path of the status file */
    int wd;
    int ready;
};

static struct svc *svcs;
static int nsvcs;

static int add_services(const char *scandir, int fd, const char *file) {
    DIR *d = opendir(scandir);
    if (!d)
        die(scandir);
    struct dirent *e;
    int cap = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (nsvcs == cap) {
            cap = cap ? cap * 2 : 64;
            svcs = realloc(svcs, (size_t)cap * sizeof *svcs);
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s/supervise", scandir, e->d_name);
        mkdir(dir, 0700);
        struct svc *s = &svcs[nsvcs++];
        s->wd = inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE);
        if (s->wd < 0)
            die(dir);
        size_t len = strlen(dir) + strlen(file) + 2;
        s->status = malloc(len);
        snprintf(s->status, len, "%s/%s", dir, file);
        s->ready = 0;
    }
    closedir(d);
    return nsvcs;
}

/* The service a watch descriptor belongs to (they are handed out in increasing order). */
static int wd_index(int wd) {
    int lo = 0, hi = nsvcs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (svcs[mid].wd == wd)
            return mid;
        if (svcs[mid].wd < wd)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* s6 supervise/status: stamp(12) readystamp(12) pid(8) [pgid(8) in later versions] wstat(2)
 * flags(1), flag bit 3 meaning "ready". runit supervise/stat: the text "run". */
static int is_ready(enum wait_mode mode, const char *path) {
    unsigned char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (mode == WAIT_RUNIT)
        return n >= 3 && memcmp(buf, "run", 3) == 0;
    if (n < 35)
        return 0;
    int pid_nonzero = 0;
    for (int i = 24; i < 32; i++)
        pid_nonzero |= buf[i];
    return pid_nonzero && (buf[n - 1] & 8);
}

int main(int argc, char **argv) {
    const char *mountdir = NULL, *copy = NULL, *wait_text = NULL, *scandir = NULL;
    int do_chroot = 0, wait_count = 0;
    long nofile = 0;
    enum wait_mode mode = WAIT_NONE;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "--mount") && i + 1 < argc)
            mountdir = argv[++i];
        else if (!strcmp(argv[i], "--copy") && i + 1 < argc)
            copy = argv[++i];
        else if (!strcmp(argv[i], "--chroot"))
            do_chroot = 1;
        else if (!strcmp(argv[i], "--nofile") && i + 1 < argc)
            nofile = atol(argv[++i]);
        else if (!strcmp(argv[i], "--wait-line") && i + 2 < argc) {
            mode = WAIT_LINE;
            wait_text = argv[++i];
            wait_count = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--wait-s6") && i + 1 < argc) {
            mode = WAIT_S6;
            scandir = argv[++i];
        } else if (!strcmp(argv[i], "--wait-runit") && i + 1 < argc) {
            mode = WAIT_RUNIT;
            scandir = argv[++i];
        } else {
            fprintf(stderr, "bench-nsrun: bad argument %s\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "bench-nsrun: no program\n");
        return 2;
    }
    char **prog = argv + i;

    if (nofile > 0) {
        /* Raising the hard limit needs CAP_SYS_RESOURCE, which a container may lack. */
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_max != RLIM_INFINITY && (rlim_t)nofile > rl.rlim_max)
            nofile = (long)rl.rlim_max;
        rl.rlim_cur = (rlim_t)nofile;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die("setrlimit");
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC) < 0)
        die("unshare");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        die("make / private");
    if (mountdir) {
        if (mount("bench", mountdir, "tmpfs", 0, "mode=0755") < 0)
            die(mountdir);
        if (copy) {
            char src[4096];
            snprintf(src, sizeof src, "%s/.", copy);
            pid_t cp = fork();
            if (cp == 0) {
                execl("/bin/cp", "cp", "-a", src, mountdir, (char *)NULL);
                _exit(127);
            }
            int st;
            if (cp < 0 || waitpid(cp, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "bench-nsrun: copying %s failed\n", copy);
                return 111;
            }
        }
    }

    int ino = -1, remaining = 0;
    if (mode == WAIT_S6 || mode == WAIT_RUNIT) {
        ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (ino < 0)
            die("inotify_init1");
        remaining = add_services(scandir, ino, mode == WAIT_S6 ? "status" : "stat");
    } else if (mode == WAIT_LINE)
        remaining = wait_count;

    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        die("pipe");
    int rep = fcntl(2, F_DUPFD_CLOEXEC, 10);
    if (unshare(CLONE_NEWPID) < 0)
        die("unshare(CLONE_NEWPID)");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        if (null > 2)
            close(null);
        if (do_chroot && (chroot(mountdir) < 0 || chdir("/") < 0)) {
            report(rep, "bench-nsrun: chroot %s: %s\n", mountdir, strerror(errno));
            _exit(111);
        }
        /* A /proc of the new PID namespace, as a container has (`unshare --mount-proc`); a
         * chrooted PID 1 mounts its own. */
        if (!do_chroot && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
            report(rep, "bench-nsrun: mount /proc: %s\n", strerror(errno));
            _exit(111);
        }
        report(rep, "@nsrun start %lld\n", now_ns());
        execvp(prog[0], prog);
        report(rep, "bench-nsrun: exec %s: %s\n", prog[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    pid1 = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    report(2, "@nsrun pid1 %d\n", (int)pid);
    if (remaining == 0 && mode != WAIT_NONE)
        report(2, "@nsrun ready %lld\n", now_ns());

    char buf[65536], line[4096];
    size_t linelen = 0;
    int out_open = 1;
    while (out_open) {
        struct pollfd p[2] = {{out[0], POLLIN, 0}, {ino, POLLIN, 0}};
        int np = ino >= 0 && remaining > 0 ? 2 : 1;
        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (np == 2 && (p[1].revents & POLLIN)) {
            char ev[65536] __attribute__((aligned(8)));
            ssize_t n;
            while ((n = read(ino, ev, sizeof ev)) > 0) {
                for (char *q = ev; q < ev + n;) {
                    struct inotify_event *e = (struct inotify_event *)q;
                    q += sizeof *e + e->len;
                    int k = wd_index(e->wd);
                    if (k >= 0 && !svcs[k].ready && is_ready(mode, svcs[k].status)) {
                        svcs[k].ready = 1;
                        if (--remaining == 0)
                            report(2, "@nsrun ready %lld\n", now_ns());
                    }
                }
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(out[0], buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                out_open = 0;
                continue;
            }
            long long stamp = now_ns();
            (void)!write(1, buf, (size_t)n);
            if (mode != WAIT_LINE || remaining == 0)
                continue;
            for (ssize_t k = 0; k < n; k++) {
                if (buf[k] != '\n') {
                    if (linelen < sizeof line - 1)
                        line[linelen++] = buf[k];
                    continue;
                }
                line[linelen] = 0;
                linelen = 0;
                if (strstr(line, wait_text) && --remaining == 0)
                    report(2, "@nsrun ready %lld\n", stamp);
            }
        }
    }
    /* Wait without reaping, so forwarded signals still reach PID 1 (or its zombie), then stop
     * forwarding before reaping it. */
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
        ;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    pid1 = 0;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    report(2, "@nsrun exit %d %lld\n", st, now_ns());
    return 0;
}
