/* The service every manager runs in the benchmarks: signal readiness, then sleep until killed.
 *
 *   bench-ready [--fd N | --fd-env | --none] [--ignore-term] [--stamp PATH]
 *
 * --fd N writes a newline to fd N (the floor), --fd-env to $DYNAMOD_READY_FD (dynamod's `fd`
 * readiness), --none signals nothing (supervisord, which has no readiness protocol). Without
 * any option (s6 and runit run `./run`, a symlink to this program, in the service directory; s6
 * passes the service name as an argument)
 * the settings come from files in the working directory: `notification-fd` (s6's readiness
 * fd), `ignore-term` and a `stamp` FIFO. After readiness the program writes
 * "PID MONOTONIC_NS\n" to the stamp FIFO when someone reads it (the restart benchmark). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int read_int_file(const char *path) {
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return atoi(buf);
}

int main(int argc, char **argv) {
    int fd = -1, ignore_term = 0;
    const char *stamp = NULL;
    int options = 0;
    for (int i = 1; i < argc; i++)
        options |= strncmp(argv[i], "--", 2) == 0;
    if (!options) {
        fd = read_int_file("notification-fd");
        ignore_term = access("ignore-term", F_OK) == 0;
        stamp = "stamp";
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fd") && i + 1 < argc)
            fd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fd-env")) {
            const char *e = getenv("DYNAMOD_READY_FD");
            fd = e ? atoi(e) : -1;
        } else if (!strcmp(argv[i], "--none"))
            fd = -1;
        else if (!strcmp(argv[i], "--ignore-term"))
            ignore_term = 1;
        else if (!strcmp(argv[i], "--stamp") && i + 1 < argc)
            stamp = argv[++i];
    }
    if (ignore_term)
        signal(SIGTERM, SIG_IGN);
    if (fd >= 0) {
        while (write(fd, "\n", 1) < 0 && errno == EINTR)
            ;
        close(fd);
    }
    if (stamp) {
        int s = open(stamp, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (s >= 0) {
            struct timespec ts;
            char line[64];
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int len = snprintf(line, sizeof line, "%d %lld\n", (int)getpid(),
                               (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
            (void)!write(s, line, (size_t)len);
            close(s);
        }
    }
    for (;;)
        pause();
}
