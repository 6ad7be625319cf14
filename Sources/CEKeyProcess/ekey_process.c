#if defined(__linux__)
#define _GNU_SOURCE
#include <sched.h>
#endif

#include "CEKeyProcess.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

static int watch_result = EKEY_PARENT_NOT_REQUESTED;
static int watch_errno = 0;
static pid_t watched_parent = 0;

/// Asks for SIGKILL when the parent dies, then checks the parent is still `expected`.
static int ekey_exit_with_parent(pid_t expected) {
#if defined(__linux__)
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        return EKEY_PARENT_PRCTL_FAILED;
    }
    // The parent may have died between fork and prctl: the child was then already
    // reparented (to init or a subreaper) and no signal will ever come.
    return getppid() == expected ? EKEY_PARENT_WATCHED : EKEY_PARENT_GONE;
#else
    return getppid() == expected ? EKEY_PARENT_UNSUPPORTED : EKEY_PARENT_GONE;
#endif
}

// Runs on the main thread before any Swift code. Linux keeps the parent-death signal per
// thread: set from a thread that later ends (a Swift concurrency worker does), it is lost.
__attribute__((constructor)) static void ekey_watch_parent_at_start(void) {
    const char *text = getenv("EKEY_PARENT_PID");
    if (text == NULL || *text == '\0') {
        return;
    }
    char *end = NULL;
    long pid = strtol(text, &end, 10);
    if (*end != '\0' || pid <= 0) {
        return;
    }
    watched_parent = (pid_t)pid;
    watch_result = ekey_exit_with_parent((pid_t)pid);
    watch_errno = errno;
}

int ekey_parent_watch_result(void) { return watch_result; }

int ekey_parent_watch_errno(void) { return watch_errno; }

pid_t ekey_parent_watch_pid(void) { return watched_parent; }

int ekey_allowed_cpu_count(void) {
#if defined(__linux__)
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
        return 0;
    }
    return CPU_COUNT(&allowed);
#else
    return 0;
#endif
}
