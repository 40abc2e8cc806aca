/* XenbusState names for logs. */
#include "pvc/xenbus.h"

const char *pvc_xb_state_name(int state)
{
    static const char *const names[] = {
        [XenbusStateUnknown] = "Unknown",
        [XenbusStateInitialising] = "Initialising",
        [XenbusStateInitWait] = "InitWait",
        [XenbusStateInitialised] = "Initialised",
        [XenbusStateConnected] = "Connected",
        [XenbusStateClosing] = "Closing",
        [XenbusStateClosed] = "Closed",
        [XenbusStateReconfiguring] = "Reconfiguring",
        [XenbusStateReconfigured] = "Reconfigured",
    };
    if (state < 0 || (unsigned)state >= sizeof(names) / sizeof(names[0]))
        return "?";
    return names[state];
}
