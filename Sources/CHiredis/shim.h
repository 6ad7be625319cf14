#ifndef EKEY_CHIREDIS_SHIM_H
#define EKEY_CHIREDIS_SHIM_H

// hiredis 0.14 (Debian 12) installs its headers under <hiredis/...>; its pkg-config
// Cflags point inside that folder, so include by the qualified path to work either way.
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#endif
