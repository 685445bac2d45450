/* Stands in for dynamod-svmgr under dynamod-init in the benchmarks: the real service manager
 * without cgroups, so a benchmark run never leaves a cgroup behind in the host's tree. */
#include <unistd.h>

int main(void) {
    char *argv[] = {"dynamod-svmgr", "--cgroup-root", "none", NULL};
    extern char **environ;
    execve("/usr/lib/dynamod/dynamod-svmgr", argv, environ);
    return 127;
}
