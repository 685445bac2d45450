/* The simplest init that reaps: start the command, then block in wait() forever. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench-waitinit PROGRAM [ARG...]\n");
        return 2;
    }
    if (fork() == 0) {
        execv(argv[1], argv + 1);
        _exit(127);
    }
    for (;;)
        if (wait(NULL) < 0)
            pause();
}
