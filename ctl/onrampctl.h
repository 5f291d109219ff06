/*
 * onrampctl: the one command-line tool for operators, the factory and the
 * router's local status. Each command lives in its own cmd_*.c file.
 */
#ifndef ONRAMP_ONRAMPCTL_H
#define ONRAMP_ONRAMPCTL_H

/* Exit codes shared by every command. */
#define EXIT_OK 0
#define EXIT_FAILURE_RUNTIME 1 /* the input was fine; something else failed */
#define EXIT_BAD_INPUT 2       /* usage or input error; nothing was changed */
#define EXIT_AUTH_REFUSED 3    /* the server refused the token (401) or its role (403) */

int cmd_ocra(int argc, char **argv);
int cmd_factory(int argc, char **argv);
int cmd_conductor(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_retry(int argc, char **argv);

/* `onrampctl show onboarding` as text (show_onboarding.c). */
struct json_t;
void print_onboarding(const char *socket_path, struct json_t *result);
int cmd_show(int argc, char **argv);
int cmd_dhcp_hook(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_cloud(int argc, char **argv);
int cmd_redirect(int argc, char **argv);

/* Prints "onrampctl: <message>" on stderr and returns code. */
int ctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
