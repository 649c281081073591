/*
 * commreg gateway-status [--json] [--prometheus FILE] [--config-dir DIR]:
 * the host gateway's counters (its Commreg/Stats, docs/protocol.md §4:
 * admissions, refusals, withdrawals, federation links), found where a
 * user registry finds it: the socket named by the host configuration
 * (/etc/tcl/comm, or $TCL_COMM_CONFIG_DIR, or --config-dir).  Any user
 * may ask; the gateway answers every user's registry on that socket.
 * Exit 3 when no gateway is configured or none answers on its socket
 * (the Prometheus file then says commreg_gateway_up 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "gwcall.h"
#include "gwconf.h"
#include "tbuf.h"
#include "tcllist.h"

static const char up_help[] =
    "1 when the host gateway answered, 0 when none is configured or "
    "answers.";

static int
gateway_down(struct cmd_ctx *ctx, const char *why, const char *socket, int rc)
{
	struct prom *p;
	json_t *o;

	fprintf(stderr, "commreg: %s\n", why);
	if (ctx->json) {
		o = json_object();
		json_object_set_new(o, "running", json_false());
		if (socket != NULL)
			json_object_set_new(o, "socket",
			    json_text(socket, strlen(socket)));
		json_object_set_new(o, "reason", json_text(why, strlen(why)));
		json_print(o, false);
	}
	if (ctx->prom != NULL) {
		p = prom_new();
		prom_metric(p, "commreg_gateway_up", "gauge", up_help, 0);
		if (prom_write(p, ctx->prom) == -1)
			rc = EXIT_REGISTRY;
		prom_free(p);
	}
	return rc;
}

/* The value of key in dict d as text, "" when absent. */
static const char *
dict_str(const struct tlist *d, const char *key)
{
	size_t i;

	for (i = 0; i + 1 < d->n; i += 2)
		if (strcmp(d->v[i].p, key) == 0)
			return d->v[i + 1].p;
	return "";
}

/* The links' dicts, parsed (the caller frees each and the vector). */
static struct tlist *
links_of(const struct tlist *st, size_t *n)
{
	struct tlist l, *v;
	const char *err, *s = dict_str(st, "links");
	size_t i;

	*n = 0;
	tlist_init(&l);
	if (tlist_parse(&l, s, strlen(s), &err) != 0 || l.n == 0) {
		tlist_free(&l);
		return NULL;
	}
	if ((v = calloc(l.n, sizeof *v)) == NULL) {
		tlist_free(&l);
		return NULL;
	}
	for (i = 0; i < l.n; i++) {
		tlist_init(&v[i]);
		if (tlist_parse(&v[i], l.v[i].p, l.v[i].len, &err) != 0 ||
		    v[i].n % 2 != 0)
			tlist_free(&v[i]), tlist_init(&v[i]);
	}
	*n = l.n;
	tlist_free(&l);
	return v;
}

static void
links_free(struct tlist *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		tlist_free(&v[i]);
	free(v);
}

static void
gateway_text(const char *socket, const struct tlist *hello,
    const struct tlist *st)
{
	static const char *const counts[] = {"entries", "connections",
	    "watches", "messages", "refused", "admitted",
	    "registrations_refused", "withdrawn"};
	struct tlist *links;
	char up[64], since[32];
	long long uptime = dict_int(st, "uptime"), v;
	size_t i, n;

	printf("%-22s commgwd %s on %s\n", "gateway",
	    dict_str(hello, "version"), dict_str(hello, "host"));
	printf("%-22s %s\n", "socket", socket);
	for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		if ((v = dict_int(st, counts[i])) >= 0)
			printf("%-22s %lld\n", counts[i], v);
		else
			printf("%-22s -\n", counts[i]);
	}
	uptime_text(uptime, up, sizeof up);
	time_iso(uptime >= 0 ? (long long)time(NULL) - uptime : 0, since,
	    sizeof since);
	printf("%-22s %s\n", "uptime", up);
	printf("%-22s %s\n", "started", since);
	links = links_of(st, &n);
	for (i = 0; i < n; i++) {
		char *remote = shown_cell(dict_str(&links[i], "remote")),
		     *addr = shown_cell(dict_str(&links[i], "address"));

		printf("%-22s %s %s %s %s, %lld entries\n",
		    i == 0 ? "links" : "", remote,
		    dict_str(&links[i], "direction"), addr,
		    dict_str(&links[i], "state"),
		    dict_int(&links[i], "entries"));
		free(remote);
		free(addr);
	}
	links_free(links, n);
}

static int
gateway_prom(struct cmd_ctx *ctx, const struct tlist *hello,
    const struct tlist *st)
{
	struct prom *p = prom_new();
	struct tlist *links;
	size_t i, n;
	int pass, rc = 0;

	prom_metric(p, "commreg_gateway_up", "gauge", up_help, 1);
	prom_label(p, "version", dict_str(hello, "version"));
	prom_metric(p, "commreg_gateway_info", "gauge",
	    "The host gateway's version (always 1).", 1);
	prom_labels_clear(p);
	stats_metrics(p, "commreg_gateway", st);
	/* A family's samples together: one pass per family. */
	links = links_of(st, &n);
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < n; i++) {
			prom_labels_clear(p);
			prom_label(p, "remote", dict_str(&links[i], "remote"));
			prom_label(p, "direction",
			    dict_str(&links[i], "direction"));
			prom_label(p, "address",
			    dict_str(&links[i], "address"));
			if (pass == 0)
				prom_metric(p, "commreg_gateway_link_ready",
				    "gauge",
				    "1 when the federation link is up (TLS and "
				    "Hello done), else 0.",
				    strcmp(dict_str(&links[i], "state"),
				        "ready") == 0);
			else
				prom_metric(p, "commreg_gateway_link_entries",
				    "gauge",
				    "Entries the remote gateway gave over this "
				    "link.",
				    (double)dict_int(&links[i], "entries"));
		}
	links_free(links, n);
	if (prom_write(p, ctx->prom) == -1)
		rc = EXIT_REGISTRY;
	prom_free(p);
	return rc;
}

int
cmd_gateway_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct gwconf_errors errs = {NULL, 0};
	struct gwconf *conf;
	struct tbuf hello, stats;
	struct tlist hd, sd;
	const char *perr;
	char err[1024], socket[256]; /* a socket path is at most 107 bytes */
	bool missing = false;
	size_t i;
	int r, rc = 0;
	json_t *o;

	conf = gwconf_load(ctx->config_dir, GWCONF_CLIENT, &missing, &errs);
	if (conf == NULL) {
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "commreg: %s\n", errs.v[i]);
		gwconf_errors_free(&errs);
		return gateway_down(ctx,
		    "the host configuration has errors (above)", NULL,
		    EXIT_REGISTRY);
	}
	snprintf(socket, sizeof socket, "%s", conf->socket_path);
	if (missing) {
		snprintf(err, sizeof err,
		    "no host gateway is configured on this host (no %s)",
		    ctx->config_dir != NULL ? ctx->config_dir
		    : getenv(GWCONF_DIR_ENV) != NULL && *getenv(GWCONF_DIR_ENV)
		        ? getenv(GWCONF_DIR_ENV)
		        : GWCONF_DIR_DEFAULT);
		gwconf_free(conf);
		return gateway_down(ctx, err, NULL, EXIT_NONE);
	}
	gwconf_free(conf);
	tbuf_init(&hello);
	tbuf_init(&stats);
	tlist_init(&hd);
	tlist_init(&sd);
	r = gwcall_stats(socket, &hello, &stats, err, sizeof err);
	if (r == 0 && (tlist_parse(&hd, hello.p, hello.len, &perr) != 0 ||
	                  tlist_parse(&sd, stats.p, stats.len, &perr) != 0 ||
	                  sd.n % 2 != 0)) {
		snprintf(err, sizeof err,
		    "the host gateway on %s: Commreg/Stats is not a dict",
		    socket);
		r = -1;
	}
	if (r != 0) {
		rc = gateway_down(ctx, err, socket,
		    r == GWCALL_DOWN ? EXIT_NONE : EXIT_REGISTRY);
		goto out;
	}
	if (ctx->json) {
		json_t *st = json_tcl_dict(stats.p, stats.len);

		o = json_object();
		json_object_set_new(o, "running", json_true());
		json_object_set_new(o, "socket",
		    json_text(socket, strlen(socket)));
		json_object_set_new(o, "host",
		    json_text(dict_str(&hd, "host"),
		        strlen(dict_str(&hd, "host"))));
		json_object_update(o, st);
		json_decref(st);
		json_print(o, false);
	} else if (ctx->prom == NULL)
		gateway_text(socket, &hd, &sd);
	if (ctx->prom != NULL)
		rc = gateway_prom(ctx, &hd, &sd);
out:
	tlist_free(&hd);
	tlist_free(&sd);
	tbuf_free(&hello);
	tbuf_free(&stats);
	return rc;
}
