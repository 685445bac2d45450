/* The reaping workload: COUNT orphans that all exit at once, for PID 1 to reap.
 *
 *   bench-zombies [COUNT]     (default $DYNAMOD_BENCH_ZOMBIES, else 10000)
 *
 * A child forks COUNT grandchildren that block reading a pipe, then exits, so they are
 * reparented to PID 1. This program prints "armed", waits a little (the driver samples PID 1's
 * CPU time), closes the pipe so every grandchild exits, and polls kill(pid, 0) until each one has
 * been reaped. Prints "reaped COUNT NS" (wall time from the close to the last reap), then sleeps.
 * Ignores DYNAMOD_INIT_FD: dynamod-init runs it in place of its service manager. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void nap(long ns) {
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    const char *env = getenv("DYNAMOD_BENCH_ZOMBIES"); /* dynamod-init passes DYNAMOD_* on */
    int count = argc > 1 ? atoi(argv[1]) : env ? atoi(env) : 10000;
    int gate[2], report[2];
    if (pipe(gate) < 0 || pipe(report) < 0)
        return 1;
    pid_t *pids = calloc((size_t)count, sizeof *pids);
    pid_t mid = fork();
    if (mid == 0) {
        close(gate[1]);
        close(report[0]);
        for (int i = 0; i < count; i++) {
            pid_t c = fork();
            if (c == 0) {
                char b;
                close(report[1]);
                (void)!read(gate[0], &b, 1);
                _exit(0);
            }
            if (c < 0) {
                perror("bench-zombies: fork");
                _exit(1);
            }
            (void)!write(report[1], &c, sizeof c);
        }
        _exit(0);
    }
    close(gate[0]);
    close(report[1]);
    int got = 0;
    while (got < count) {
        ssize_t n = read(report[0], pids + got, (size_t)(count - got) * sizeof *pids);
        if (n <= 0)
            break;
        got += (int)(n / (ssize_t)sizeof *pids);
    }
    waitpid(mid, NULL, 0);
    if (got < count) {
        fprintf(stderr, "bench-zombies: only %d children\n", got);
        return 1;
    }
    nap(300000000L);
    printf("armed\n");
    fflush(stdout);
    nap(300000000L);
    long long t0 = now_ns();
    close(gate[1]);
    for (int i = 0; i < count; i++)
        while (kill(pids[i], 0) == 0 || errno != ESRCH)
            nap(20000L);
    long long t1 = now_ns();
    printf("reaped %d %lld\n", count, t1 - t0);
    fflush(stdout);
    for (;;)
        pause();
}
