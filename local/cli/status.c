/*
 * commreg status [--json] [--prometheus FILE]: the registry in use
 * (TCL_COMM_REGPORT's, else the user registry), for a person, for a
 * program, or for node-exporter's textfile collector.  It never starts
 * one: when none runs it says why on stderr and what to do, and exits
 * 3; the Prometheus file then says commreg_registry_up 0, so that an
 * alert can tell "down" from "not scraped".
 *
 * The counters are the registry's Commreg/Stats (docs/protocol.md §4),
 * passed on as the registry names them; stats_metrics() is shared with
 * gateway-status, whose gateway answers the same command.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "client.h"
#include "election.h"
#include "log.h"
#include "tbuf.h"
#include "tcllist.h"

/* The value of KEY in the dict d as an integer; -1 when absent. */
long long
dict_int(const struct tlist *d, const char *key)
{
	size_t i;
	char *end;
	long long v;

	for (i = 0; i + 1 < d->n; i += 2) {
		if (strcmp(d->v[i].p, key) != 0)
			continue;
		v = strtoll(d->v[i + 1].p, &end, 10);
		if (end == d->v[i + 1].p || *end != '\0')
			return -1;
		return v;
	}
	return -1;
}

/* Commreg/Stats's counters as metrics: each key known here, when sent. */
static const struct stat_metric {
	const char *key, *name, *type, *help;
} stat_metrics[] = {
    {"entries", "entries", "gauge", "Names registered here now."},
    {"connections", "connections", "gauge", "Connections open now."},
    {"watches", "watches", "gauge", "Watches (Commreg/Watch, nns) open now."},
    {"messages", "messages_total", "counter",
        "Messages received since the start."},
    {"refused", "refused_connections_total", "counter",
        "Connections refused since the start (another uid, limits)."},
    {"uptime", "uptime_seconds", "gauge", "Seconds since the start."},
    {"upstream_entries", "upstream_entries", "gauge",
        "Entries copied from the registry above (semi-private) or, while "
        "used, from the host gateway."},
    {"admitted", "registrations_admitted_total", "counter",
        "Registrations the admission policy allowed since the start."},
    {"registrations_refused", "registrations_refused_total", "counter",
        "Registrations the admission policy or a quota refused since the "
        "start."},
    {"withdrawn", "registrations_withdrawn_total", "counter",
        "Registrations withdrawn after a reload or a failed port check."},
};

void
stats_metrics(struct prom *p, const char *prefix, const struct tlist *d)
{
	char name[128];
	long long v, up;
	size_t i;

	for (i = 0; i < sizeof stat_metrics / sizeof stat_metrics[0]; i++) {
		if ((v = dict_int(d, stat_metrics[i].key)) < 0)
			continue;
		snprintf(name, sizeof name, "%s_%s", prefix,
		    stat_metrics[i].name);
		prom_metric(p, name, stat_metrics[i].type, stat_metrics[i].help,
		    (double)v);
	}
	if ((up = dict_int(d, "uptime")) >= 0) {
		snprintf(name, sizeof name, "%s_start_time_seconds", prefix);
		prom_metric(p, name, "gauge",
		    "Start time, seconds since the Unix epoch.",
		    (double)(time(NULL) - up));
	}
}

/* ---- no registry ----------------------------------------------------------
 */

static int
status_none(struct cmd_ctx *ctx, const char *why, int rc)
{
	char host[256], user[256];
	struct prom *p;
	json_t *o;

	if (election_hostname(host, sizeof host) == -1)
		snprintf(host, sizeof host, "this host");
	self_user(user, sizeof user);
	if (rc != EXIT_NONE)
		fprintf(stderr, "commreg: %s\n", why);
	else {
		/* The library's reason is "no registry is running (WHY)". */
		const char *paren = strchr(why, '(');

		fprintf(stderr,
		    "commreg: no registry is running for %s on %s %s\n"
		    "commreg: one starts with the first application that "
		    "registers; to start one now: commregd --detach%s%s\n",
		    user, host, paren != NULL ? paren : "",
		    ctx->opts.home != NULL ? " --home " : "",
		    ctx->opts.home != NULL ? ctx->opts.home : "");
	}
	if (ctx->json) {
		o = json_object();
		json_object_set_new(o, "running", json_false());
		json_object_set_new(o, "owner", json_text(user, strlen(user)));
		json_object_set_new(o, "host", json_text(host, strlen(host)));
		json_object_set_new(o, "reason", json_text(why, strlen(why)));
		json_print(o, false);
	}
	if (ctx->prom != NULL) {
		p = prom_new();
		prom_label(p, "user", user);
		prom_metric(p, "commreg_registry_up", "gauge",
		    "1 when the registry answered, 0 when none runs or it "
		    "could "
		    "not be asked.",
		    0);
		if (prom_write(p, ctx->prom) == -1)
			rc = EXIT_REGISTRY;
		prom_free(p);
	}
	return rc;
}

/* ---- a registry -----------------------------------------------------------
 */

static void
status_text(const struct commreg_hello *h, const struct tlist *st)
{
	char up[64], since[32];
	long long uptime = dict_int(st, "uptime"), v;
	static const char *const counts[] = {"entries", "connections",
	    "watches", "messages", "refused", "upstream_entries"};
	size_t i;

	printf("%-12s commreg %s (protocol %d, scope %s)\n", "registry",
	    h->version, h->protocol, h->scope);
	printf("%-12s %d\n", "port", h->port);
	printf("%-12s %ld\n", "pid", h->pid);
	printf("%-12s %s (uid %ld)\n", "owner", h->owner, h->uid);
	printf("%-12s %s\n", "host", h->host);
	for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		v = dict_int(st, counts[i]);
		if (v >= 0)
			printf("%-12s %lld\n", counts[i], v);
		else if (strcmp(counts[i], "upstream_entries") != 0)
			printf("%-12s -\n", counts[i]);
	}
	uptime_text(uptime, up, sizeof up);
	time_iso(uptime >= 0 ? (long long)time(NULL) - uptime : 0, since,
	    sizeof since);
	printf("%-12s %s\n", "uptime", up);
	printf("%-12s %s\n", "started", since);
}

static json_t *
status_json(const struct commreg_hello *h, const char *stats, size_t len)
{
	json_t *o = json_object(), *st;
	long long up;
	char since[32];

	json_object_set_new(o, "running", json_true());
	json_object_set_new(o, "version",
	    json_text(h->version, strlen(h->version)));
	json_object_set_new(o, "protocol", json_integer(h->protocol));
	json_object_set_new(o, "scope", json_text(h->scope, strlen(h->scope)));
	json_object_set_new(o, "port", json_integer(h->port));
	json_object_set_new(o, "pid", json_integer(h->pid));
	json_object_set_new(o, "owner", json_text(h->owner, strlen(h->owner)));
	json_object_set_new(o, "uid", json_integer(h->uid));
	json_object_set_new(o, "host", json_text(h->host, strlen(h->host)));
	st = json_tcl_dict(stats, len);
	if (json_is_object(st)) {
		json_object_update_missing(o, st);
		if (json_is_integer(json_object_get(st, "uptime"))) {
			up = json_integer_value(json_object_get(st, "uptime"));
			time_iso((long long)time(NULL) - up, since,
			    sizeof since);
			json_object_set_new(o, "started", json_string(since));
		}
	}
	json_decref(st);
	return o;
}

static int
status_prom(struct cmd_ctx *ctx, const struct commreg_hello *h,
    const struct tlist *st)
{
	struct prom *p = prom_new();
	char port[16];
	int rc = 0;

	prom_label(p, "user", h->owner);
	prom_metric(p, "commreg_registry_up", "gauge",
	    "1 when the registry answered, 0 when none runs or it could not "
	    "be asked.",
	    1);
	snprintf(port, sizeof port, "%d", h->port);
	prom_label(p, "version", h->version);
	prom_label(p, "scope", h->scope);
	prom_label(p, "port", port);
	prom_metric(p, "commreg_registry_info", "gauge",
	    "The registry's version, scope and port (always 1).", 1);
	prom_labels_clear(p);
	prom_label(p, "user", h->owner);
	stats_metrics(p, "commreg_registry", st);
	if (prom_write(p, ctx->prom) == -1)
		rc = EXIT_REGISTRY;
	prom_free(p);
	return rc;
}

int
cmd_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const char *const w[] = {"Commreg/Stats"};
	struct commreg_client *c;
	const struct commreg_hello *h;
	struct tbuf res;
	struct tlist st;
	const char *perr;
	char err[1024];
	int rc = 0;

	ctx->opts.no_spawn = 1;
	if ((c = commreg_open(&ctx->opts, err, sizeof err)) == NULL)
		return status_none(ctx, err,
		    errno == ESRCH ? EXIT_NONE : EXIT_REGISTRY);
	tbuf_init(&res);
	tlist_init(&st);
	if (commreg_call(c, w, NULL, 1, &res) != 0 ||
	    tlist_parse(&st, res.p, res.len, &perr) != 0 || st.n % 2 != 0) {
		snprintf(err, sizeof err, "Commreg/Stats: %s",
		    res.len > 0 ? res.p : "not a dict");
		rc = status_none(ctx, err, EXIT_REGISTRY);
		goto out;
	}
	h = commreg_hello_info(c);
	if (ctx->json)
		json_print(status_json(h, res.p, res.len), false);
	else if (ctx->prom == NULL)
		status_text(h, &st);
	if (ctx->prom != NULL)
		rc = status_prom(ctx, h, &st);
out:
	tlist_free(&st);
	tbuf_free(&res);
	commreg_close(c);
	return rc;
}
