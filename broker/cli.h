/* SPDX-License-Identifier: Apache-2.0 */
/* The admin subcommands (`parley members | leader | stats | sync | drain |
 * leave | log-level | backup`) and `parley token`: short-lived processes,
 * so blocking I/O is fine here and only here. */
#ifndef PARLEY_BROKER_CLI_H
#define PARLEY_BROKER_CLI_H

#include <stdbool.h>

/* True for the subcommands brk_cli_admin runs. */
bool brk_cli_is_admin(const char *cmd);
/* Prints `parley CMD --help` for an admin subcommand. */
void brk_cli_admin_usage(const char *cmd);

/* Each returns the process exit code. argv excludes the subcommand. */
int brk_cli_admin(const char *cmd, int argc, char **argv);
int brk_cli_token(int argc, char **argv);

#endif
