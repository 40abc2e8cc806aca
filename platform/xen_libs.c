/* Loading libxengnttab and libxenevtchn on first use: see xen_libs.h. */
#include "xen_libs.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

static struct pvc_xen_libs libs;
static char load_error_text[256];
static const char *load_error;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* dlerror's text lives until the next dl call: keep the first one. */
static void note_error(void)
{
    if (load_error)
        return;
    const char *e = dlerror();
    snprintf(load_error_text, sizeof(load_error_text), "%s",
             e ? e : "unknown dynamic loading error");
    load_error = load_error_text;
}

/* The sonames Debian's libxengnttab1 and libxenevtchn1 install. */
static void *open_lib(const char *soname)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        note_error();
    return h;
}

static void load(void)
{
    void *gnttab = open_lib("libxengnttab.so.1");
    void *evtchn = open_lib("libxenevtchn.so.1");
    if (!gnttab || !evtchn)
        return;
    /* Each name is looked up in the library its prefix names. */
#define PVC_XEN_LIB_SYM(name)                                                 \
    *(void **)&libs.name =                                                    \
        dlsym(#name[3] == 'g' ? gnttab : evtchn, #name);                      \
    if (!libs.name)                                                           \
        note_error();
    PVC_XEN_LIB_FUNCS(PVC_XEN_LIB_SYM)
#undef PVC_XEN_LIB_SYM
}

const struct pvc_xen_libs *pvc_xen_libs(const char **why)
{
    pthread_once(&load_once, load);
    if (load_error) {
        if (why)
            *why = load_error;
        errno = ENOPKG;
        return NULL;
    }
    return &libs;
}
