#include "CEKeyProcess.h"

#include <signal.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

int ekey_exit_with_parent(pid_t expected) {
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
