/* Versions of robusta and of the libraries it runs on (robusta/robusta.h). */
#include "config.h"

#include <stdio.h>

#include <hwloc.h>
#include <json-c/json_c_version.h>
#include <oneapi/dnnl/dnnl.h>
#include <zlib.h>
#include <zstd.h>

#include <robusta/robusta.h>

const char *rb_version_string(void)
{
    return RB_VERSION_STRING;
}

unsigned rb_version_number(void)
{
    return RB_VERSION_NUMBER;
}

rb_status rb_build_info(char *buf, size_t size)
{
    const dnnl_version_t *dnnl = dnnl_version();
    unsigned hwloc = hwloc_get_api_version();
    int n = snprintf(buf, size,
                     "plugin ABI %u\n"
                     "oneDNN %d.%d.%d (cpu runtime %s)\n"
                     "hwloc (API %u.%u.%u)\n"
                     "zstd %s\n"
                     "zlib %s\n"
                     "json-c %s\n"
                     "MPI %s",
                     RB_PLUGIN_ABI_VERSION, dnnl->major, dnnl->minor, dnnl->patch,
                     dnnl->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP"
                     : dnnl->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB"
                     : dnnl->cpu_runtime == DNNL_RUNTIME_SEQ ? "sequential"
                                                              : "threadpool",
                     hwloc >> 16, (hwloc >> 8) & 0xff, hwloc & 0xff, ZSTD_versionString(),
                     zlibVersion(), json_c_version(),
#ifdef RB_HAVE_MPI
                     "enabled"
#else
                     "not built (configure --with-mpi)"
#endif
    );
    if (n < 0 || (size_t)n >= size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_build_info: buffer of %zu bytes too small",
                            size);
    return RB_OK;
}
