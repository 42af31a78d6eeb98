/* Versions of robusta and of the libraries it runs on (robusta/robusta.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

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

/* oneDNN's name for the widest instruction set it dispatches to here. */
static const char *dnnl_isa_name(dnnl_cpu_isa_t isa)
{
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } names[] = {
        {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
        {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
        {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
        {dnnl_cpu_isa_avx512_core, "avx512_core"},
        {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
        {dnnl_cpu_isa_avx2, "avx2"},
        {dnnl_cpu_isa_avx, "avx"},
        {dnnl_cpu_isa_sse41, "sse41"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((isa & names[i].isa) == names[i].isa)
            return names[i].name;
    return "generic";
}

rb_status rb_machine_info(char *buf, size_t size)
{
    char line[512], model[256] = "unknown CPU";
    const dnnl_version_t *dnnl = dnnl_version();
    FILE *f = fopen("/proc/cpuinfo", "r");
    int n;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || colon == NULL)
            continue;
        colon++;
        colon += strspn(colon, " \t");
        colon[strcspn(colon, "\n")] = '\0';
        if (*colon != '\0')
            snprintf(model, sizeof model, "%s", colon);
        break;
    }
    if (f != NULL)
        fclose(f);
    n = snprintf(buf, size, "%s; oneDNN %d.%d.%d, %s kernels", model, dnnl->major, dnnl->minor, dnnl->patch,
                 dnnl_isa_name(dnnl_get_effective_cpu_isa()));
    if (n < 0 || (size_t)n >= size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_machine_info: buffer of %zu bytes too small", size);
    return RB_OK;
}
