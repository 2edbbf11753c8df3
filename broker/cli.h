/* SPDX-License-Identifier: Apache-2.0 */
/* The admin subcommands (`parley members | leader | stats | sync | drain |
 * leave`) and `parley token`: short-lived processes, so blocking I/O is fine
 * here and only here. */
#ifndef PARLEY_BROKER_CLI_H
#define PARLEY_BROKER_CLI_H

/* Each returns the process exit code. argv excludes the subcommand. */
int brk_cli_admin(const char *cmd, int argc, char **argv);
int brk_cli_token(int argc, char **argv);

#endif
