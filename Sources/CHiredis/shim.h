#ifndef EKEY_CHIREDIS_SHIM_H
#define EKEY_CHIREDIS_SHIM_H

// hiredis 0.14 (Debian 12) installs its headers under <hiredis/...>; its pkg-config
// Cflags point inside that folder, so include by the qualified path to work either way.
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

/// Bytes fed to the reader that it has not parsed yet (the start of the next reply).
static inline size_t ekey_redis_reader_unparsed(const redisReader *reader) {
    return reader->len - reader->pos;
}

/// The reader's error message after a call returned REDIS_ERR.
static inline const char *ekey_redis_reader_error(const redisReader *reader) {
    return reader->errstr;
}

#endif
