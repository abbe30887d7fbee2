/* SIGINT and SIGTERM as requests to stop, for long commands (sweep; training
 * can use the same): signals_install() makes both only record that they came;
 * the command asks signals_pending() between units of work (the timer asks
 * it between samples), stops cleanly, commits what is done and exits with
 * signals_exit_code() (130 for SIGINT, 143 for SIGTERM, as a shell reports a
 * process killed by them). A second signal of the same kind while stopping
 * ends the process at once. */
#ifndef MIXERLAB_SIGNALS_H
#define MIXERLAB_SIGNALS_H

void signals_install(void);
/* The first signal received since signals_install (SIGINT or SIGTERM), else 0. */
int signals_pending(void);
/* 128 + sig */
int signals_exit_code(int sig);
/* "SIGINT", "SIGTERM" */
const char *signals_name(int sig);

#endif
