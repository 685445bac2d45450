/* The floor: the least any manager can do to start N services and know they are ready.
 *
 *   bench-floor N WIDTH PROGRAM
 *
 * fork + execve of PROGRAM (`--fd 3`) N times, each with a pipe of its own on fd 3, then an
 * epoll loop that counts the readiness bytes. WIDTH 0 starts everything at once; WIDTH W starts
 * layers of W services, each layer once the previous one is entirely ready (the same graph as the
 * layered benchmark, where every service of a layer requires every service of the layer before).
 * Prints "ready" when all are ready, then sleeps (it runs as PID 1 and is killed). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

static int spawn(const char *prog) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        perror("bench-floor: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench-floor: fork");
        exit(1);
    }
    if (pid == 0) {
        dup2(p[1], 3); /* dup2 clears FD_CLOEXEC on the copy */
        char *argv[] = {(char *)prog, "--fd", "3", NULL};
        extern char **environ;
        execve(prog, argv, environ);
        _exit(127);
    }
    close(p[1]);
    return p[0];
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench-floor N WIDTH PROGRAM\n");
        return 2;
    }
    int n = atoi(argv[1]), width = atoi(argv[2]);
    if (width <= 0)
        width = n;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[64];
    for (int started = 0; started < n;) {
        int layer = n - started < width ? n - started : width;
        for (int i = 0; i < layer; i++) {
            int fd = spawn(argv[3]);
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        started += layer;
        for (int ready = 0; ready < layer;) {
            int k = epoll_wait(ep, evs, 64, -1);
            for (int i = 0; i < k; i++) {
                char b[16];
                (void)!read(evs[i].data.fd, b, sizeof b);
                epoll_ctl(ep, EPOLL_CTL_DEL, evs[i].data.fd, NULL);
                close(evs[i].data.fd);
                ready++;
            }
        }
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        if (wait(NULL) < 0)
            pause();
}
