#ifndef EKEY_CEKEYPROCESS_H
#define EKEY_CEKEYPROCESS_H

#include <sys/types.h>

/// `ekey_exit_with_parent` succeeded: SIGKILL arrives when the parent dies.
#define EKEY_PARENT_WATCHED 0
/// The parent is not `expected` any more: it died before the request was made.
#define EKEY_PARENT_GONE 1
/// `prctl(PR_SET_PDEATHSIG)` failed; `errno` says why.
#define EKEY_PARENT_PRCTL_FAILED (-1)
/// Not Linux: there is no parent-death signal; the parent was only checked.
#define EKEY_PARENT_UNSUPPORTED 2

/// Asks Linux to kill this process (SIGKILL, which cannot be caught, ignored or delayed)
/// when its parent dies, however it dies (`PR_SET_PDEATHSIG`), then checks that the parent
/// is still `expected`. A parent that stops normally stops its children gracefully first;
/// this is the guarantee for a parent that was killed.
///
/// Returns `EKEY_PARENT_WATCHED`, `EKEY_PARENT_GONE`, `EKEY_PARENT_PRCTL_FAILED` (with
/// `errno` set) or, off Linux, `EKEY_PARENT_UNSUPPORTED` after the same parent check.
int ekey_exit_with_parent(pid_t expected);

/// Not asked: `EKEY_PARENT_PID` was unset or not a process ID when the process started.
#define EKEY_PARENT_NOT_REQUESTED 3

/// What `ekey_exit_with_parent` returned when a constructor called it on the main thread at
/// process start for `EKEY_PARENT_PID` (the signal setting belongs to the thread that makes
/// it, so it must be a thread that lives as long as the process), or
/// `EKEY_PARENT_NOT_REQUESTED`.
int ekey_parent_watch_result(void);

/// `errno` after that call (meaningful with `EKEY_PARENT_PRCTL_FAILED`).
int ekey_parent_watch_errno(void);

#endif
