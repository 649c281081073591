/*
 * The commreg command's parts (commreg.c holds the table of subcommands
 * and the option parsing; a subcommand with more than a screenful of
 * its own lives in a file of its own, as tmux's cmd-*.c).
 *
 *   shown.c    what a person's terminal is shown: escaped text, table
 *              cells, ISO 8601 times
 *   json.c     the machine form (jansson): entries, Tcl dicts
 *   prom.c     the Prometheus text exposition, written atomically
 *   status.c   status: the registry in use, or why none runs
 *   stop.c     stop: the registry told to end, by the pid the kernel
 *              confirms
 *   gateway.c  gateway-status: the host gateway's counters
 */
#ifndef LOCAL_CLI_CLI_H
#define LOCAL_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "commreg.h"

struct tbuf;
struct tlist;

#define EXIT_REGISTRY 1
#define EXIT_USAGE    2
#define EXIT_NONE     3

/* What a subcommand takes besides its arguments (cmd_entry.opts). */
#define CMD_OPT_REG     0x1 /* --host, --scope (register) */
#define CMD_OPT_JSON    0x2 /* --json */
#define CMD_OPT_PROM    0x4 /* --prometheus FILE */
#define CMD_OPT_CONFDIR 0x8 /* --config-dir DIR */

struct cmd_entry;

struct cmd_ctx {
	struct commreg_open_opts opts;
	const struct cmd_entry *ce; /* the running subcommand */
	const char *host;           /* register --host */
	const char *scope;          /* register --scope */
	bool json;                  /* --json */
	const char *prom;           /* --prometheus FILE ("-": stdout) */
	const char *config_dir;     /* --config-dir */
};

/* shown.c */
char *shown(const char *);
char *shown_cell(const char *);
int shown_width(const char *);
void time_iso(long long unixtime, char *buf, size_t len);
void uptime_text(long long seconds, char *buf, size_t len);

/* json.c: each returns a new reference (jansson), never NULL. */
struct json_t;
struct json_t *json_text(const char *s, size_t len);
struct json_t *json_entry(const struct commreg_entry *);
struct json_t *json_tcl_dict(const char *s, size_t len);
void json_print(struct json_t *, bool one_line);

/* prom.c */
struct prom;
struct prom *prom_new(void);
void prom_free(struct prom *);
void prom_label(struct prom *, const char *name, const char *value);
void prom_labels_clear(struct prom *);
void prom_metric(struct prom *, const char *name, const char *type,
    const char *help, double value);
int prom_write(struct prom *, const char *path);

/* status.c: Commreg/Stats as metrics PREFIX_entries ... (shared with
 * gateway-status); a dict's integer, -1 when absent. */
void stats_metrics(struct prom *, const char *prefix, const struct tlist *);
long long dict_int(const struct tlist *, const char *key);

/* The subcommands with files of their own. */
int cmd_status(struct cmd_ctx *, int, char **);
int cmd_stop(struct cmd_ctx *, int, char **);
int cmd_gateway_status(struct cmd_ctx *, int, char **);

/* commreg.c */
struct commreg_client *ctx_open(struct cmd_ctx *);
/* The login name of the running user ("uid N" if it has none). */
const char *self_user(char *buf, size_t len);

#endif
