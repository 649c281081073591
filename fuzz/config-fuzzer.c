/*
 * libFuzzer target for the configuration parser (config/gwconf.c) and
 * the policy that runs on what it accepts (config/policy.c).
 *
 * The input is one .ini file.  Whatever it holds, the parser must give
 * either a configuration or at least one "t.ini:LINE: ..." message, never
 * both, never neither; an accepted configuration must hold only values
 * the schema allows (docs/config.md), and judging requests against it
 * must give one-line answers.  The first byte picks the mode: the gateway
 * mode also looks at the TLS files named (only ever stat and open them
 * read-only, and only regular files).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gwconf.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_conf(const struct gwconf *c)
{
	size_t i, j;

	if (c->socket_path == NULL || c->socket_path[0] != '/' ||
	    c->nfiles != 1 || c->max_connections < 1 || c->max_message < 1024 ||
	    c->handshake_timeout < 1 || c->lookup_timeout_ms < 1 ||
	    c->quota_default < 0)
		abort();
	if (c->listen_host != NULL &&
	    (c->listen_port < 1 || c->listen_port > 65535))
		abort();
	for (i = 0; i < c->nrules; i++) {
		const struct gwconf_rule *r = &c->rules[i];

		if (r->name == NULL || r->file == NULL || r->line < 1 ||
		    (r->action != GWCONF_ALLOW && r->action != GWCONF_DENY) ||
		    (r->scopes & ~(GWCONF_SCOPE_HOST | GWCONF_SCOPE_GLOBAL)))
			abort();
		for (j = 0; j < r->nports; j++)
			if (r->ports[j].lo < 1 ||
			    r->ports[j].lo > r->ports[j].hi ||
			    r->ports[j].hi > 65535)
				abort();
		for (j = 0; j < r->nnames; j++)
			if (r->names[j][0] == '\0')
				abort();
	}
	for (i = 0; i < c->nquotas; i++)
		if (c->quotas[i].max_entries < 0)
			abort();
	for (i = 0; i < c->nremotes; i++) {
		const struct gwconf_remote *m = &c->remotes[i];

		if (m->host == NULL || m->peer_name == NULL || m->port < 1 ||
		    m->port > 65535)
			abort();
	}
}

static void
check_policy(const struct gwconf *c, const uint8_t *data, size_t size)
{
	static const char *names[] = {"svc-web", "build-1", "x", "", "a*b"};
	static const int ports[] = {1, 80, 1023, 1024, 7000, 20000, 65535};
	static const gid_t groups[] = {0, 50, 100};
	struct policy_req q;
	struct policy_verdict v;
	size_t i;

	for (i = 0; i < 16; i++) {
		memset(&q, 0, sizeof(q));
		q.uid = (uid_t)(i < size ? data[i] % 3 : 0) * 1000;
		q.gid = groups[i % 3];
		q.groups = groups;
		q.ngroups = i % 4;
		q.name = names[i % 5];
		q.port = ports[i % 7];
		q.scope = i % 2 ? GWCONF_SCOPE_GLOBAL : GWCONF_SCOPE_HOST;
		q.entries = (int)(i * 3);
		policy_admit(c, &q, &v);
		if (v.why[0] == '\0' ||
		    memchr(v.why, '\0', sizeof(v.why)) == NULL)
			abort();
		if (v.rule != NULL &&
		    (v.rule < c->rules || v.rule >= c->rules + c->nrules))
			abort();
		if (!v.allow && v.rule != NULL && v.rule->action != GWCONF_DENY)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gwconf_errors e = {0};
	struct gwconf *c;
	enum gwconf_mode mode;
	char *text;
	size_t i;

	if (size == 0)
		return 0;
	mode = data[0] & 1 ? GWCONF_GATEWAY : GWCONF_CLIENT;
	data++;
	size--;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	c = gwconf_parse_string("t.ini", text, mode, &e);
	if ((c == NULL) == (e.n == 0))
		abort();
	for (i = 0; i < e.n; i++)
		if (strncmp(e.v[i], "t.ini:", 6) != 0 ||
		    strchr(e.v[i], '\n') != NULL)
			abort();
	if (c != NULL) {
		check_conf(c);
		check_policy(c, data, size);
	}
	gwconf_free(c);
	gwconf_errors_free(&e);
	free(text);
	return 0;
}
