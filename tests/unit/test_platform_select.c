/*
 * pvc_platform_open() refuses a platform it does not know, and the Xen
 * libraries the Xen platform loads at run time resolve.
 */
#include <criterion/criterion.h>

#include "../../platform/platform_impl.h"
#include "../../platform/xen_libs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(platform_select, env_names_an_unknown_platform)
{
    setenv("PVC_PLATFORM", "kvm", 1);
    struct pvc_platform_opts o = { .kind = PVC_PLATFORM_AUTO,
                                   .sim_domid = 1 };
    cr_assert_null(pvc_platform_open(&o));
    cr_assert_eq(errno, EINVAL);
    unsetenv("PVC_PLATFORM");
}

Test(platform_select, xen_libraries_resolve)
{
    const char *why = NULL;
    const struct pvc_xen_libs *l = pvc_xen_libs(&why);
    cr_assert_not_null(l, "%s", why ? why : "");
    cr_assert_not_null(l->xengnttab_grant_copy);
    cr_assert_not_null(l->xenevtchn_unbind);
    /* The symbols come from the libraries their names say. */
    cr_assert_neq((void *)l->xengnttab_open, (void *)l->xenevtchn_open);
}
