#ifndef EKEY_CNGHTTP2_SHIM_H
#define EKEY_CNGHTTP2_SHIM_H

// libnghttp2 (Debian's libnghttp2-dev), the C HTTP/2 library measured against SwiftNIO's
// HTTP/2 codec by loadtest/Sources/EKeyH2Spike.
#include <nghttp2/nghttp2.h>

#endif
