#ifndef EKEY_CEKEYPROCESS_H
#define EKEY_CEKEYPROCESS_H

#include <sys/types.h>

/// The request succeeded: SIGKILL arrives when the parent dies.
#define EKEY_PARENT_WATCHED 0
/// The parent is not the one named any more: it died before the request was made.
#define EKEY_PARENT_GONE 1
/// `prctl(PR_SET_PDEATHSIG)` failed; `errno` says why.
#define EKEY_PARENT_PRCTL_FAILED (-1)
/// Not Linux: there is no parent-death signal; the parent was only checked.
#define EKEY_PARENT_UNSUPPORTED 2

/// At process start, on the main thread, when `EKEY_PARENT_PID` holds a process ID, a
/// constructor asks Linux to kill this process (SIGKILL) when its parent dies, however it
/// dies (`PR_SET_PDEATHSIG`), then checks that the parent is still that process. A parent
/// that stops normally stops its children gracefully first; this is the guarantee for a
/// parent that was killed.

/// Not asked: `EKEY_PARENT_PID` was unset or not a process ID when the process started.
#define EKEY_PARENT_NOT_REQUESTED 3

/// The outcome of that request (the signal setting belongs to the thread that makes it, so
/// it is made on the main thread, which lives as long as the process):
/// `EKEY_PARENT_WATCHED`, `EKEY_PARENT_GONE`, `EKEY_PARENT_PRCTL_FAILED`,
/// `EKEY_PARENT_UNSUPPORTED` (not Linux; only the parent was checked) or
/// `EKEY_PARENT_NOT_REQUESTED`.
int ekey_parent_watch_result(void);

/// `errno` after that call (meaningful with `EKEY_PARENT_PRCTL_FAILED`).
int ekey_parent_watch_errno(void);

/// The parent process ID read from `EKEY_PARENT_PID` at start; 0 when not requested.
pid_t ekey_parent_watch_pid(void);

/// The number of CPUs this process may run on (`sched_getaffinity`: `taskset`, `numactl`),
/// or 0 when unknown (not Linux, or the call failed).
int ekey_allowed_cpu_count(void);

#endif
