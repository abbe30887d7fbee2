#include "harness/signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_pending;

static void on_signal(int sig)
{
    if (g_pending) { /* asked twice: stop now, as the default action would */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_pending = sig;
}

void signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* reads and writes in progress finish; the work loop checks the flag */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    g_pending = 0;
}

int signals_pending(void) { return (int)g_pending; }

int signals_exit_code(int sig) { return 128 + sig; }

const char *signals_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }
