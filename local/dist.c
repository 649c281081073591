/*
 * The distributed user registry: links between the user registries of
 * one user on the hosts that share the user's home (dist.h,
 * docs/distributed.md).
 *
 * Who links to whom: every registry watches the port files of the
 * others; of two hosts, the one whose name sorts first dials the other,
 * so a pair has one link.  The dialer tries again with backoff (at most
 * DIST_RETRY_MAX_MS) for as long as the other's port file names an
 * address, and at once when that changes (a re-election).
 *
 * The link: TLS 1.3, authenticated only by a pre-shared key (no
 * certificates): HKDF-SHA256 of the cookie, with the user's name in the
 * derivation and in the PSK identity.  A peer without the cookie fails
 * the handshake (its binder does not verify) and is refused and logged,
 * rate-limited.  Then the engine speaks comm on it with the Dist/...
 * table below and pings it when silent (--liveness).
 *
 * The copies: a host's entries are kept twice here.  Its index (a table
 * of its own, no watchers) holds them by the names the host gave them;
 * the server's table shows each under that name, or NAME@HOST when the
 * name is taken (by an entry of this host, or by a copy from a host whose
 * name sorts first, which takes it over).  So two hosts that register
 * "foo" at the same instant end with "foo" on each for its own, and on a
 * third host with "foo" for the host that sorts first: the same answer
 * whatever the order in which things arrived.
 */
#define _GNU_SOURCE /* memrchr */
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "backoff.h"
#include "commreg.h"
#include "dist.h"
#include "listenrest.h"
#include "log.h"
#include "safepath.h"
#include "tlslink.h"

#define DIST_POLL_MS      1000 /* inotify misses other NFS clients */
#define DIST_RETRY_MIN_MS 200
#define DIST_RETRY_MAX_MS 2000
#define DIST_HANDSHAKE_S  5 /* the links' handshake_ms (dist_start) */
/* A snapshot of 64 MiB takes its time on a slow link: the links'
 * partial_ms, as between gateways. */
#define DIST_PARTIAL_MS 60000
#define DIST_MAX_ADDRS  8
/* The links' messages: a snapshot holds every entry, and 100,000 of them
 * pass 16 MiB (as the gateway's snapshot to a user registry, gwlink.c).
 * The output queued to a link may hold a few such snapshots while the
 * other host reads. */
#define DIST_MAX_MESSAGE  (64 * 1024 * 1024)
#define DIST_MAX_OUTPUT   (256 * 1024 * 1024)
#define DIST_PORTFILE_MAX 1024
#define DIST_IDENTITY     "commreg-dist/1 "

struct dist;
struct dhost;

/* One TLS connection to another host's registry, made or accepted. */
struct dlink {
	TAILQ_ENTRY(dlink) link;
	struct dist *d;
	struct dhost *h; /* accepted: NULL until its Dist/Hello */
	bool outgoing;
	struct bufferevent *bev; /* until TLS is up */
	struct peer *peer;       /* after */
	struct event *deadline;  /* TLS set-up */
	char addr[96];           /* "10.0.0.2:40123" */
	char ip[64];             /* the other end's address */
	char why[256];           /* a refusal found in a callback */
	bool synced;             /* our snapshot is sent: events follow */
	bool greeted; /* ours: its answer to Dist/Hello names its host */
	bool early;   /* ours: a snapshot came before that answer */
	struct tbuf early_snap; /* that snapshot, kept until the answer */
};
TAILQ_HEAD(dlink_list, dlink);

/* Another host of the user, as its port file and its link say. */
struct dhost {
	TAILQ_ENTRY(dhost) link;
	struct dist *d;
	char name[256];
	char addrs[DIST_MAX_ADDRS][64];
	int ports[DIST_MAX_ADDRS];
	size_t naddrs, next_addr;
	bool seen;             /* at the last look at the directory */
	char distrust[512];    /* why its port file is not believed, said
	                          once; "" when it is */
	struct dlink *cur;     /* the link its entries come over */
	struct dlink *dialing; /* ours, being set up */
	struct event *retry;
	int attempt;
	char ip[64];            /* where its applications are reached */
	struct registry *index; /* its entries by its names */
	struct reg_entry_list indexed;
	struct reg_entry_list shown; /* in the server's table */
};
TAILQ_HEAD(dhost_list, dhost);

struct dist {
	struct server *srv;
	struct election_claim *claim;
	char self[256];
	char user[64];
	char regdir[PATH_MAX];
	unsigned char psk[32];
	SSL_CTX *ctx;
	struct engine_limits lim;
	struct evconnlistener *listener;
	struct event *accept_rest; /* out of descriptors: accept later */
	char line[512];            /* what the port file says after the port */
	int inotify_fd;
	struct event *ev_inotify;
	struct event *poll;
	struct dhost_list hosts;
	struct dlink_list links;
	size_t accepted;
};

static void link_close(struct dlink *, const char *why);
static void host_dial(struct dhost *);
static void host_purge(struct dhost *, const char *why);

/* ---- the cookie and the key ------------------------------------------- */

/*
 * Read the cookie, trusted as the tree's other files are: -1 with err
 * empty when it does not exist, -1 with why when it is not to be
 * trusted.
 */
static int
cookie_read(const char *regdir, unsigned char *buf, size_t *len, char *err,
    size_t errlen)
{
	char path[PATH_MAX + 16];
	const char *slash = strrchr(regdir, '/');
	ssize_t n;
	int fd;

	err[0] = '\0';
	/* regdir is ~/.tcl/comm/registry: the cookie is beside it. */
	snprintf(path, sizeof path, "%.*s/cookie",
	    (int)(slash != NULL ? slash - regdir : 0), regdir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return -1;
		reason(err, errlen, "%s: %s", path,
		    errno == ELOOP ? "is a symbolic link; refusing to follow it"
		                   : strerror(errno));
		return -1;
	}
	if (safe_file_fd(fd, path, getuid(), err, errlen) == -1) {
		close(fd);
		return -1;
	}
	n = read(fd, buf, DIST_COOKIE_MAX);
	close(fd);
	if (n < DIST_COOKIE_MIN) {
		reason(err, errlen,
		    "%s: holds %zd bytes, fewer than %d; run: commreg cookie "
		    "(after removing it) to make a good one",
		    path, n < 0 ? (ssize_t)0 : n, DIST_COOKIE_MIN);
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

/* The PSK: HKDF-SHA256 of the cookie, bound to the user's name, so that
 * the key says nothing of the cookie and is this user's alone. */
static int
derive_psk(struct dist *d, const unsigned char *cookie, size_t len)
{
	static const char salt[] = "commreg distributed registry";
	char info[128];
	EVP_PKEY_CTX *kc;
	size_t outlen = sizeof d->psk;
	int ok;

	snprintf(info, sizeof info, "link psk v1 %s", d->user);
	if ((kc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL)) == NULL)
		return -1;
	ok = EVP_PKEY_derive_init(kc) > 0 &&
	     EVP_PKEY_CTX_set_hkdf_md(kc, EVP_sha256()) > 0 &&
	     EVP_PKEY_CTX_set1_hkdf_salt(kc, (const unsigned char *)salt,
	         (int)(sizeof salt - 1)) > 0 &&
	     EVP_PKEY_CTX_set1_hkdf_key(kc, cookie, (int)len) > 0 &&
	     EVP_PKEY_CTX_add1_hkdf_info(kc, (unsigned char *)info,
	         (int)strlen(info)) > 0 &&
	     EVP_PKEY_derive(kc, d->psk, &outlen) > 0 &&
	     outlen == sizeof d->psk;
	EVP_PKEY_CTX_free(kc);
	return ok ? 0 : -1;
}

static struct dist *
ssl_dist(SSL *ssl)
{
	return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

/* TLS 1.3 takes these for an external PSK with SHA-256 (OpenSSL's
 * TLS_AES_128_GCM_SHA256 session): our identity and key. */
static unsigned int
psk_client(SSL *ssl, const char *hint, char *identity,
    unsigned int max_identity_len, unsigned char *psk, unsigned int max_psk_len)
{
	struct dist *d = ssl_dist(ssl);
	int n;

	n = snprintf(identity, max_identity_len, DIST_IDENTITY "%s", d->user);
	if (n < 0 || (unsigned)n >= max_identity_len ||
	    max_psk_len < sizeof d->psk)
		return 0;
	memcpy(psk, d->psk, sizeof d->psk);
	return sizeof d->psk;
}

static unsigned int
psk_server(SSL *ssl, const char *identity, unsigned char *psk,
    unsigned int max_psk_len)
{
	struct dist *d = ssl_dist(ssl);
	struct dlink *l = SSL_get_app_data(ssl);
	char want[128];

	snprintf(want, sizeof want, DIST_IDENTITY "%s", d->user);
	if (identity == NULL || strcmp(identity, want) != 0) {
		if (l != NULL)
			snprintf(l->why, sizeof l->why,
			    "it is not this user's registry (identity "
			    "\"%.60s\")",
			    identity != NULL ? identity : "");
		return 0;
	}
	if (max_psk_len < sizeof d->psk)
		return 0;
	memcpy(psk, d->psk, sizeof d->psk);
	return sizeof d->psk;
}

/*
 * The host a dialer meant to reach (SNI: the name of the port file it
 * read our address from, host_dial) must be this one.  A port file that
 * names another host's address (left behind, the address taken since by
 * this host) leads here; its Dist/Hello would then replace the dialer's
 * real link with this host, and the dialer would drop it on our answer,
 * again at every retry.  Refused in the handshake, before anything is
 * believed.  A dialer that names none is checked by our answer to its
 * Dist/Hello alone.
 */
static int
sni_check(SSL *ssl, int *alert, void *arg)
{
	struct dist *d = ssl_dist(ssl);
	struct dlink *l = SSL_get_app_data(ssl);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	/* OpenSSL calls it on the dialer's side too, with the name it sent. */
	if (!SSL_is_server(ssl) || name == NULL || strcmp(name, d->self) == 0)
		return SSL_TLSEXT_ERR_OK;
	if (l != NULL)
		snprintf(l->why, sizeof l->why,
		    "it dialled host \"%.60s\" at this address (a port file "
		    "left behind?); this is host %.60s",
		    name, d->self);
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *
tls_context(struct dist *d)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	/* The suites an external PSK hashed with SHA-256 may use. */
	SSL_CTX_set_ciphersuites(ctx,
	    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256");
	SSL_CTX_set_psk_client_callback(ctx, psk_client);
	SSL_CTX_set_psk_server_callback(ctx, psk_server);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_check);
	/* No resumption: every link proves the cookie afresh. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* A registry killed sends no close_notify; comm's framing already
	 * tells a cut message from a whole one, so that is just a close. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_app_data(ctx, d);
	return ctx;
}

/* ---- entries going out ------------------------------------------------ */

static bool
is_copy(struct dist *d, const struct reg_entry *e)
{
	struct dhost *h;

	TAILQ_FOREACH(h, &d->hosts, link)
		if (e->owner == h)
			return true;
	return false;
}

/* Our own entries, as a list of entry dicts, sorted by name: protocol.md
 * §4 says Dist/Snapshot carries them as Commreg/List gives them (our own
 * resync sorts by itself, another implementation may not). */
static void
snapshot_format(struct dist *d, struct tbuf *out)
{
	const struct reg_entry **v;
	size_t i, n;

	if ((v = registry_sorted(d->srv->reg, "*", 1, &n)) == NULL)
		return;
	for (i = 0; i < n; i++)
		if (!is_copy(d, v[i]) && v[i]->scope != REG_SCOPE_PRIVATE)
			registry_format_entry(out, 0, v[i]);
	free(v);
}

static void
send_snapshot(struct dlink *l)
{
	const char *w[2] = {"Dist/Snapshot", NULL};
	size_t lens[2];
	struct tbuf snap;

	tbuf_init(&snap);
	snapshot_format(l->d, &snap);
	if (snap.failed) {
		tbuf_free(&snap);
		peer_fail(l->peer, "out of memory");
		return;
	}
	w[1] = snap.p != NULL ? snap.p : "";
	lens[0] = strlen(w[0]);
	lens[1] = snap.len;
	peer_send_async(l->peer, w, lens, 2);
	tbuf_free(&snap);
	l->synced = true;
}

/* Every add and remove of our own entries goes to every linked host. */
static void
observe(const struct reg_entry *e, bool added, void *arg)
{
	struct dist *d = arg;
	struct dlink *l;
	struct tbuf body;
	const char *w[2];
	size_t lens[2];

	if (is_copy(d, e) || e->scope == REG_SCOPE_PRIVATE)
		return;
	tbuf_init(&body);
	if (added)
		registry_entry_dict(&body, e);
	else
		tbuf_add(&body, e->name, e->namelen);
	w[0] = added ? "Dist/Add" : "Dist/Remove";
	lens[0] = strlen(w[0]);
	w[1] = body.p != NULL ? body.p : "";
	lens[1] = body.len;
	TAILQ_FOREACH(l, &d->links, link) {
		if (l->peer == NULL || !l->synced)
			continue;
		if (body.failed)
			peer_fail(l->peer, "out of memory");
		else
			peer_send_async(l->peer, w, lens, 2);
	}
	tbuf_free(&body);
}

/* ---- entries coming in: the copies ------------------------------------ */

static struct dhost *
host_find(struct dist *d, const char *name)
{
	struct dhost *h;

	TAILQ_FOREACH(h, &d->hosts, link)
		if (strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

/* An address that means "this host" to the host that said it. */
static bool
host_is_local(const char *h)
{
	return h[0] == '\0' || strcmp(h, "localhost") == 0 ||
	       strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0;
}

static void
display_name(struct tbuf *out, const struct dhost *h, const char *name)
{
	tbuf_reset(out);
	tbuf_adds(out, name);
	tbuf_addc(out, '@');
	tbuf_adds(out, h->name);
}

/* Show index entry x of h in the server's table as shown (its name or
 * NAME@HOST); false when that name is taken. */
static bool
show_as(struct dhost *h, const struct reg_entry *x, const char *shown,
    size_t len)
{
	struct registry *r = h->d->srv->reg;
	struct reg_add a;
	struct tbuf err;
	struct reg_entry *e;

	if (registry_find(r, shown, len) != NULL)
		return false;
	memset(&a, 0, sizeof a);
	a.copy = true;
	a.name = shown;
	a.namelen = len;
	a.base = x->base;
	a.baselen = x->baselen;
	a.want_serial = x->serial;
	a.port = x->port;
	a.host = x->host;
	a.data = x->data;
	a.datalen = x->datalen;
	a.scope = REG_SCOPE_USER;
	a.uid = x->uid;
	a.pid = x->pid;
	a.since = x->since;
	a.path = h->name;
	tbuf_init(&err);
	e = registry_add(r, &a, h, &h->shown, &err);
	if (e == NULL)
		log_warnx("host %s: cannot show \"%s\": %s", h->name, x->name,
		    err.p != NULL ? err.p : "?");
	tbuf_free(&err);
	return e != NULL;
}

/* Where h's entry of that name is shown here, or NULL. */
static struct reg_entry *
shown_of(struct dhost *h, const char *name)
{
	struct registry *r = h->d->srv->reg;
	struct reg_entry *e;
	struct tbuf alt;

	e = registry_find(r, name, strlen(name));
	if (e != NULL && e->owner == h)
		return e;
	tbuf_init(&alt);
	display_name(&alt, h, name);
	e = alt.failed ? NULL : registry_find(r, alt.p, alt.len);
	tbuf_free(&alt);
	return e != NULL && e->owner == h ? e : NULL;
}

/* Show x (just indexed for h): under its own name if free, or taken
 * over from a copy of a host that sorts after h; else as NAME@HOST. */
static void
show(struct dhost *h, const struct reg_entry *x)
{
	struct registry *r = h->d->srv->reg;
	struct reg_entry *e;
	struct dhost *o;
	struct tbuf alt;
	char *oname;

	e = registry_find(r, x->name, x->namelen);
	if (e != NULL && is_copy(h->d, e)) {
		o = e->owner;
		if (strcmp(h->name, o->name) < 0) {
			/* The name is ours by the rule: the other host's
			 * copy moves to NAME@OTHER. */
			if ((oname = strdup(x->name)) == NULL)
				fatal("%s", __func__);
			registry_remove(r, e, &o->shown);
			e = registry_find(o->index, oname, strlen(oname));
			tbuf_init(&alt);
			display_name(&alt, o, oname);
			if (e != NULL && !alt.failed)
				show_as(o, e, alt.p, alt.len);
			tbuf_free(&alt);
			free(oname);
		}
	}
	if (show_as(h, x, x->name, x->namelen))
		return;
	tbuf_init(&alt);
	display_name(&alt, h, x->name);
	if (!alt.failed && !show_as(h, x, alt.p, alt.len))
		log_info("host %s: \"%s\" is not shown here: the names \"%s\" "
		         "and \"%s\" are both taken",
		    h->name, x->name, x->name, alt.p);
	tbuf_free(&alt);
}

/* A local application wants back the name a copy holds: the copy moves
 * to NAME@HOST, so a host's own applications keep their names across a
 * failover of its registry (docs/distributed.md "Names across hosts"). */
static void
dist_name_wanted(struct server *srv, const char *name, size_t len)
{
	struct registry *r = srv->reg;
	struct reg_entry *e, *x;
	struct dhost *h;
	struct tbuf alt;

	if ((e = registry_find(r, name, len)) == NULL || !is_copy(srv->dist, e))
		return;
	h = e->owner;
	x = registry_find(h->index, e->name, e->namelen);
	registry_remove(r, e, &h->shown);
	if (x == NULL)
		return;
	tbuf_init(&alt);
	display_name(&alt, h, x->name);
	if (!alt.failed)
		show_as(h, x, alt.p, alt.len);
	tbuf_free(&alt);
}

static void
unput(struct dhost *h, struct reg_entry *x)
{
	struct reg_entry *e;

	if ((e = shown_of(h, x->name)) != NULL)
		registry_remove(h->d->srv->reg, e, &h->shown);
	registry_remove(h->index, x, &h->indexed);
}

/*
 * One entry of h's, as its dict says: indexed and shown, replacing what
 * h had under that name.  Its host is made one we can use: an entry
 * registered for "localhost" on h is reached at h's address.
 */
static int
put(struct dhost *h, const char *dict, size_t len, char *err, size_t errlen)
{
	struct commreg_entry ce;
	struct reg_add a;
	struct reg_entry *x;
	struct tbuf data, terr;
	int rc = -1;

	memset(&ce, 0, sizeof ce);
	if (commreg_entry_parse(dict, len, &ce, err, errlen) == -1)
		return -1;
	tbuf_init(&data);
	tbuf_init(&terr);
	memset(&a, 0, sizeof a);
	a.copy = true;
	a.name = ce.name;
	a.namelen = strlen(ce.name);
	a.base = ce.base[0] != '\0' ? ce.base : ce.name;
	a.baselen = strlen(a.base);
	a.want_serial = (int)ce.serial;
	a.port = ce.port;
	a.host = ce.host;
	a.data = ce.data;
	a.datalen = strlen(ce.data);
	if (host_is_local(ce.host) && h->ip[0] != '\0') {
		/* The default data, "PORT HOST", follows the host. */
		tl_append_int(&data, 0, ce.port);
		tl_append_str(&data, 0, ce.host);
		if (!data.failed && strcmp(data.p, ce.data) == 0) {
			tbuf_reset(&data);
			tl_append_int(&data, 0, ce.port);
			tl_append_str(&data, 0, h->ip);
			a.data = data.p;
			a.datalen = data.len;
		}
		a.host = h->ip;
	}
	a.scope = REG_SCOPE_USER;
	a.uid = ce.uid >= 0 ? (uid_t)ce.uid : (uid_t)-1;
	a.pid = ce.pid > 0 ? (pid_t)ce.pid : 0;
	a.since = ce.since > 0 ? (time_t)ce.since : time(NULL);
	a.path = h->name;
	if (data.failed) {
		reason(err, errlen, "out of memory");
		goto out;
	}
	if ((x = registry_find(h->index, a.name, a.namelen)) != NULL) {
		/* Its time too: an index entry is what the host has,
		 * as it has it. */
		if (registry_entry_same(x, &a) && x->since == a.since) {
			rc = 0;
			goto out;
		}
		unput(h, x);
	}
	if ((x = registry_add(h->index, &a, h, &h->indexed, &terr)) == NULL) {
		reason(err, errlen, "entry \"%.80s\": %s", ce.name,
		    terr.p != NULL ? terr.p : "?");
		goto out;
	}
	show(h, x);
	rc = 0;
out:
	tbuf_free(&data);
	tbuf_free(&terr);
	commreg_entry_clear(&ce);
	return rc;
}

static void
host_purge(struct dhost *h, const char *why)
{
	struct reg_entry *x;
	size_t n = 0;

	while ((x = TAILQ_FIRST(&h->indexed)) != NULL) {
		unput(h, x);
		n++;
	}
	if (why != NULL)
		log_info("host %s: %s; dropped its %zu entries", h->name, why,
		    n);
	server_flush(h->d->srv);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A snapshot: h's entries become these, without a flicker for those
 * that stay (a link made again after a partition). */
static int
resync(struct dhost *h, const struct tl_elem *list, char *err, size_t errlen)
{
	struct tlist v;
	struct commreg_entry ce;
	struct reg_entry *x, *next;
	char **names;
	const char *why;
	size_t i, n = 0, before = 0, count;
	const char *kp;

	tlist_init(&v);
	if (tlist_parse(&v, list->p, list->len, &why) != 0) {
		reason(err, errlen, "a snapshot that is not a list: %s", why);
		tlist_free(&v);
		return -1;
	}
	if ((names = calloc(v.n + 1, sizeof *names)) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < v.n; i++) {
		memset(&ce, 0, sizeof ce);
		if (commreg_entry_parse(v.v[i].p, v.v[i].len, &ce, err,
		        errlen) == -1)
			goto fail;
		names[n++] = ce.name;
		ce.name = NULL;
		commreg_entry_clear(&ce);
	}
	qsort(names, n, sizeof *names, cmp_str);
	TAILQ_FOREACH_SAFE(x, &h->indexed, owner_link, next) {
		before++;
		kp = x->name;
		if (bsearch(&kp, names, n, sizeof *names, cmp_str) == NULL)
			unput(h, x);
	}
	for (i = 0; i < v.n; i++)
		if (put(h, v.v[i].p, v.v[i].len, err, errlen) == -1)
			goto fail;
	count = v.n;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	tlist_free(&v);
	log_info("host %s: %zu entries (had %zu)", h->name, count, before);
	return 0;
fail:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	tlist_free(&v);
	return -1;
}

/* ---- the Dist/... commands ---------------------------------------------- */

/* The link's host, or an error: nothing comes before Dist/Hello. */
static struct dhost *
link_host(struct cmd_ctx *c)
{
	struct dlink *l = c->peer->arg;

	if (l == NULL || l->h == NULL || l->h->cur != l) {
		tbuf_adds(c->result, "no Dist/Hello on this link");
		return NULL;
	}
	return l->h;
}

/* The same, for an entry's add or remove: on a link we made, none comes
 * before the answer to our Dist/Hello (only the snapshot does). */
static struct dhost *
link_host_greeted(struct cmd_ctx *c)
{
	struct dlink *l = c->peer->arg;
	struct dhost *h = link_host(c);

	if (h != NULL && l->outgoing && !l->greeted) {
		tbuf_adds(c->result, "no answer to Dist/Hello yet");
		return NULL;
	}
	return h;
}

static bool
host_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 255 || s[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (s[i] == '/' || (unsigned char)s[i] <= ' ' || s[i] == '@')
			return false;
	return true;
}

static struct dhost *host_new(struct dist *, const char *name);

/* Dist/Hello HOST USER: an accepted link says which host it is. */
static int
dist_cmd_hello(struct cmd_ctx *c)
{
	struct dlink *l = c->peer->arg, *old;
	struct dist *d = l->d;
	const struct tl_elem *host = &c->words->v[1], *user = &c->words->v[2];
	struct dhost *h;

	if (!host_name_ok(host->p, host->len) ||
	    strcmp(host->p, d->self) == 0 || strcmp(user->p, d->user) != 0) {
		tbuf_adds(c->result, "refused: host ");
		tbuf_add_quoted(c->result, host->p, host->len);
		tbuf_adds(c->result, " of user ");
		tbuf_add_quoted(c->result, user->p, user->len);
		log_limited(l->ip,
		    "refused registry link from %s: it says "
		    "it is host \"%.60s\" of user \"%.60s\"",
		    l->addr, host->p, user->p);
		return CMD_ERROR;
	}
	if (l->h == NULL) {
		if ((h = host_find(d, host->p)) == NULL)
			h = host_new(d, host->p);
		if ((old = h->cur) != NULL && old != l) {
			/* Its registry came back before we saw the old link
			 * go: the new one's snapshot replaces the old's
			 * entries in place. */
			old->h = NULL;
			h->cur = NULL;
			link_close(old, "replaced by a new link");
		}
		l->h = h;
		h->cur = l;
		snprintf(h->ip, sizeof h->ip, "%s", l->ip);
		log_info("host %s: linked (from %s)", h->name, l->addr);
		send_snapshot(l);
	}
	tbuf_adds(c->result, d->self);
	return CMD_OK;
}

/* Dist/Snapshot ENTRIES: every entry of the other host, now. */
static int
dist_cmd_snapshot(struct cmd_ctx *c)
{
	struct dlink *l = c->peer->arg;
	struct dhost *h;
	char err[300];

	if ((h = link_host(c)) == NULL)
		return CMD_ERROR;
	if (l->outgoing && !l->greeted) {
		/* It sends its snapshot before its answer to our Dist/Hello:
		 * kept until that answer says it is the host we dialled. */
		tbuf_reset(&l->early_snap);
		tbuf_add(&l->early_snap, c->words->v[1].p, c->words->v[1].len);
		if (l->early_snap.failed) {
			peer_fail(c->peer, "out of memory");
			return CMD_ERROR;
		}
		l->early = true;
		return CMD_OK;
	}
	if (resync(h, &c->words->v[1], err, sizeof err) == -1) {
		peer_fail(c->peer, "bad snapshot: %s", err);
		return CMD_ERROR;
	}
	server_flush(h->d->srv);
	return CMD_OK;
}

static int
dist_cmd_add(struct cmd_ctx *c)
{
	const struct tl_elem *e = &c->words->v[1];
	struct dhost *h;
	char err[300];

	if ((h = link_host_greeted(c)) == NULL)
		return CMD_ERROR;
	if (put(h, e->p, e->len, err, sizeof err) == -1) {
		peer_fail(c->peer, "bad entry: %s", err);
		return CMD_ERROR;
	}
	return CMD_OK;
}

static int
dist_cmd_remove(struct cmd_ctx *c)
{
	const struct tl_elem *name = &c->words->v[1];
	struct reg_entry *x;
	struct dhost *h;

	if ((h = link_host_greeted(c)) == NULL)
		return CMD_ERROR;
	if ((x = registry_find(h->index, name->p, name->len)) != NULL)
		unput(h, x);
	return CMD_OK;
}

/* Sorted by name (cmd_table_find). */
static const struct cmd_entry dist_cmds[] = {
    {"Dist/Add", 1, 1, "entry", dist_cmd_add},
    {"Dist/Hello", 2, 2, "host user", dist_cmd_hello},
    {"Dist/Remove", 1, 1, "name", dist_cmd_remove},
    {"Dist/Snapshot", 1, 1, "entries", dist_cmd_snapshot},
};

static const struct cmd_entry *
dist_find(const char *name, size_t len)
{
	return cmd_table_find(dist_cmds, sizeof dist_cmds / sizeof dist_cmds[0],
	    name, len);
}

/* ---- TLS and the life of a link ---------------------------------------- */

static void
dist_bev_error(struct peer *p, short what, char *buf, size_t len)
{
	struct dlink *l = p->arg;

	tlslink_reason(p->bev, what, l != NULL ? l->why : NULL, buf, len);
}

static void
link_free(struct dlink *l)
{
	TAILQ_REMOVE(&l->d->links, l, link);
	if (!l->outgoing)
		l->d->accepted--;
	event_free(l->deadline);
	tbuf_free(&l->early_snap);
	free(l);
}

/* The link is over: its host's entries go (if it carried them), and a
 * host we dial is dialled again. */
static void
link_close(struct dlink *l, const char *why)
{
	struct dhost *h = l->h;
	struct timeval tv;
	int ms;

	tlslink_release(l->deadline, &l->bev, &l->peer);
	if (h != NULL && h->cur == l) {
		h->cur = NULL;
		host_purge(h, why != NULL ? why : "link closed");
	}
	if (h != NULL && h->dialing == l)
		h->dialing = NULL;
	if (h != NULL && l->outgoing) {
		/* Ours to dial again, while its port file says where. */
		if (h->naddrs > 0 && h->cur == NULL && h->dialing == NULL &&
		    !evtimer_pending(h->retry, NULL)) {
			ms = backoff_ms(DIST_RETRY_MIN_MS, DIST_RETRY_MAX_MS,
			    h->attempt);
			h->attempt++;
			h->next_addr = (h->next_addr + 1) % h->naddrs;
			tv.tv_sec = ms / 1000;
			tv.tv_usec = (ms % 1000) * 1000;
			evtimer_add(h->retry, &tv);
		}
	}
	link_free(l);
}

/* The engine lets go of a link's peer. */
static void
dist_gone(struct peer *p, const char *why)
{
	struct dlink *l = p->arg;

	if (l == NULL)
		return;
	l->peer = NULL;
	link_close(l, why != NULL ? why : "link closed");
}

static void
hello_replied(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	struct dlink *l = arg;
	struct dhost *h = l->h;
	struct tl_elem snap;
	char err[300];

	if (code == 0 && h != NULL && len == strlen(h->name) &&
	    memcmp(res, h->name, len) == 0) {
		/* The host we dialled: from here on it is linked. */
		l->greeted = true;
		h->attempt = 0;
		log_info("host %s: linked (to %s)", h->name, l->addr);
		if (!l->early || h->cur != l)
			return;
		l->early = false;
		snap.p = l->early_snap.p != NULL ? l->early_snap.p : "";
		snap.len = l->early_snap.len;
		if (resync(h, &snap, err, sizeof err) == -1)
			peer_fail(p, "bad snapshot: %s", err);
		tbuf_free(&l->early_snap);
		tbuf_init(&l->early_snap);
		server_flush(h->d->srv);
		return;
	}
	if (p->state == PEER_DEAD)
		return; /* the link is going: its gone hook says why */
	if (code == 0)
		peer_fail(p,
		    "it says it is host \"%.*s\", not the one its "
		    "port file names",
		    (int)(len > 60 ? 60 : len), res);
	else
		peer_fail(p, "Dist/Hello refused: %.*s",
		    (int)(len > 200 ? 200 : len), res);
}

static void dist_ready(struct peer *);

static const struct peer_ops dist_ops = {
    .find = dist_find,
    .ready = dist_ready,
    .gone = dist_gone,
    .bev_error = dist_bev_error,
};

/* TLS is up: the engine speaks on it from here on. */
static void
tls_up(struct dlink *l)
{
	struct dhost *h = l->h;
	struct bufferevent *bev = l->bev;

	evtimer_del(l->deadline);
	l->bev = NULL;
	l->peer = peer_new_bev(&l->d->srv->eng, bev, !l->outgoing, l->addr,
	    &l->d->lim, &dist_ops, l);
	if (l->peer == NULL) {
		link_close(l, "out of memory");
		return;
	}
	if (!l->outgoing)
		return; /* its Dist/Hello says who it is */
	h->dialing = NULL;
	if (h->cur != NULL)
		link_close(h->cur, "replaced by a new link");
	h->cur = l;
	snprintf(h->ip, sizeof h->ip, "%s", l->ip);
}

/* The comm handshake is done: a link we made says who we are and sends
 * our entries (an accepted one does so on the other's Dist/Hello). */
static void
dist_ready(struct peer *p)
{
	struct dlink *l = p->arg;
	const char *w[3];
	size_t lens[3];

	if (l == NULL || !l->outgoing)
		return;
	w[0] = "Dist/Hello";
	w[1] = l->d->self;
	w[2] = l->d->user;
	lens[0] = strlen(w[0]);
	lens[1] = strlen(w[1]);
	lens[2] = strlen(w[2]);
	peer_request(p, w, lens, 3, l->d->lim.handshake_ms, hello_replied, l);
	send_snapshot(l);
}

static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct dlink *l = arg;
	char why[600];

	if (what & BEV_EVENT_CONNECTED) {
		tls_up(l);
		return;
	}
	tlslink_reason(l->bev, what, l->why, why, sizeof why);
	if (!l->outgoing)
		log_limited(l->ip, "refused registry link from %s: %s%s",
		    l->addr, why,
		    l->why[0] == '\0' ? " (a peer without this user's cookie?)"
		                      : "");
	else
		log_limited(l->addr, "host %s: cannot link to %s: %s%s",
		    l->h->name, l->addr, why,
		    strstr(why, "unrecognized name") != NULL
		        ? " (the registry there is another host's: its port "
		          "file names an address that is no longer its?)"
		        : "");
	link_close(l, NULL);
}

static void
tls_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct dlink *l = arg;

	if (!l->outgoing)
		log_limited(l->ip,
		    "refused registry link from %s: TLS not set up within "
		    "%d ms",
		    l->addr, l->d->lim.handshake_ms);
	else
		log_limited(l->addr,
		    "host %s: cannot link to %s: TLS not set "
		    "up within %d ms",
		    l->h->name, l->addr, l->d->lim.handshake_ms);
	link_close(l, NULL);
}

static struct dlink *
link_new(struct dist *d, struct dhost *h, bool outgoing)
{
	struct dlink *l;

	if ((l = calloc(1, sizeof *l)) == NULL)
		fatal("%s", __func__);
	l->d = d;
	l->h = h;
	l->outgoing = outgoing;
	tbuf_init(&l->early_snap);
	if ((l->deadline = evtimer_new(d->srv->base, tls_deadline_cb, l)) ==
	    NULL)
		fatalx("event_new failed");
	TAILQ_INSERT_TAIL(&d->links, l, link);
	if (!outgoing)
		d->accepted++;
	return l;
}

static void
host_dial(struct dhost *h)
{
	struct dist *d = h->d;
	struct sockaddr_in sin;
	struct dlink *l;
	SSL *ssl;
	size_t i;

	if (h->cur != NULL || h->dialing != NULL || h->naddrs == 0)
		return;
	evtimer_del(h->retry);
	i = h->next_addr % h->naddrs;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)h->ports[i]);
	if (inet_pton(AF_INET, h->addrs[i], &sin.sin_addr) != 1)
		return;
	l = link_new(d, h, true);
	h->dialing = l;
	snprintf(l->addr, sizeof l->addr, "%s:%d", h->addrs[i], h->ports[i]);
	snprintf(l->ip, sizeof l->ip, "%s", h->addrs[i]);
	if ((ssl = SSL_new(d->ctx)) == NULL)
		fatalx("SSL_new failed");
	SSL_set_app_data(ssl, l);
	/* The host we mean (sni_check): its port file's name. */
	SSL_set_tlsext_host_name(ssl, h->name);
	l->bev = tlslink_bev_new(d->srv->base, -1, ssl, false, tls_event_cb, l,
	    l->deadline, d->lim.handshake_ms);
	if (l->bev == NULL)
		fatalx("bufferevent_openssl_socket_new failed");
	if (bufferevent_socket_connect(l->bev, (struct sockaddr *)&sin,
	        (int)sizeof sin) == -1) {
		log_limited(l->addr,
		    "host %s: cannot link to %s: connect "
		    "failed",
		    h->name, l->addr);
		link_close(l, NULL);
		return;
	}
	tlslink_tune_socket(bufferevent_getfd(l->bev), &d->lim);
}

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	host_dial(arg);
}

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct dist *d = arg;
	char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
	struct dlink *l;
	SSL *ssl;
	int same_src = 0;

	getnameinfo(sa, (socklen_t)salen, host, sizeof host, serv, sizeof serv,
	    NI_NUMERICHOST | NI_NUMERICSERV);
	TAILQ_FOREACH(l, &d->links, link)
		if (!l->outgoing && strcmp(l->ip, host) == 0)
			same_src++;
	if (d->accepted >= TLSLINK_MAX_ACCEPTED ||
	    same_src >= TLSLINK_MAX_PER_SOURCE) {
		log_limited(host,
		    "refused registry link from %s:%s: too many links (%zu "
		    "in all, %d from there)",
		    host, serv, d->accepted, same_src);
		close(fd);
		return;
	}
	tlslink_tune_socket(fd, &d->lim);
	l = link_new(d, NULL, false);
	snprintf(l->addr, sizeof l->addr, "%.63s:%.16s", host, serv);
	snprintf(l->ip, sizeof l->ip, "%.63s", host);
	if ((ssl = SSL_new(d->ctx)) == NULL)
		fatalx("SSL_new failed");
	SSL_set_app_data(ssl, l);
	l->bev = tlslink_bev_new(d->srv->base, fd, ssl, true, tls_event_cb, l,
	    l->deadline, d->lim.handshake_ms);
	if (l->bev == NULL) {
		close(fd);
		link_free(l);
	}
}

/* As the registry's own listener (server.c): out of descriptors, the
 * pending link would make the listener fire again at once, at full
 * CPU; it rests a moment (listenrest.h). */
static void
accept_error(struct evconnlistener *lis, void *arg)
{
	struct dist *d = arg;

	listen_rest_accept_error(d->listener, d->accept_rest,
	    EVUTIL_SOCKET_ERROR(), "registry links");
}

/* ---- the other hosts' port files --------------------------------------- */

static struct dhost *
host_new(struct dist *d, const char *name)
{
	struct dhost *h;

	if ((h = calloc(1, sizeof *h)) == NULL)
		fatal("%s", __func__);
	h->d = d;
	snprintf(h->name, sizeof h->name, "%s", name);
	TAILQ_INIT(&h->indexed);
	TAILQ_INIT(&h->shown);
	if ((h->index = registry_new(NULL, NULL)) == NULL)
		fatal("%s", __func__);
	if ((h->retry = evtimer_new(d->srv->base, retry_cb, h)) == NULL)
		fatalx("event_new failed");
	TAILQ_INSERT_TAIL(&d->hosts, h, link);
	return h;
}

/* Read a host's port file: its "dist ADDR PORT" lines into h-to-be;
 * the count of addresses, 0 when it says none (yet), -1 with why in err
 * when it is not to be believed (checked as the tree's other files are:
 * ours, not a link, not writable or readable by others, since whoever
 * can write it chooses where we dial). */
static int
portfile_read(struct dist *d, const char *name, char addrs[][64], int *ports,
    char *err, size_t errlen)
{
	char path[PATH_MAX + 256], buf[DIST_PORTFILE_MAX + 1];
	char *line, *save = NULL;
	ssize_t n;
	int fd, count = 0;

	snprintf(path, sizeof path, "%s/%s", d->regdir, name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		return reason(err, errlen, "%s: %s", path,
		    errno == ELOOP ? "is a symbolic link; refusing to follow it"
		                   : strerror(errno));
	}
	if (safe_file_fd(fd, path, getuid(), err, errlen) == -1) {
		close(fd);
		return -1;
	}
	n = read(fd, buf, DIST_PORTFILE_MAX);
	close(fd);
	if (n <= 0 || buf[n - 1] != '\n')
		return 0; /* being written */
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char a[64];
		int p;
		struct in_addr ia;

		if (count < DIST_MAX_ADDRS &&
		    sscanf(line, "dist %63s %d", a, &p) == 2 && p > 0 &&
		    p < 65536 && inet_pton(AF_INET, a, &ia) == 1) {
			snprintf(addrs[count], 64, "%s", a);
			ports[count++] = p;
		}
	}
	return count;
}

/*
 * h's port file is not to be believed (why): it is not dialled, nor
 * dialled again, until it is; said once, not at every look at the
 * directory (every DIST_POLL_MS), and again only when why changes.  A
 * link up with h stays: the cookie proves who is at its other end, not
 * the file.
 */
static void
distrust(struct dhost *h, const char *why)
{
	if (strcmp(h->distrust, why) != 0) {
		snprintf(h->distrust, sizeof h->distrust, "%s", why);
		log_warnx("not linking to host %s: %s", h->name, why);
	}
	h->naddrs = 0;
	evtimer_del(h->retry);
	if (h->dialing != NULL)
		link_close(h->dialing, NULL);
}

/* Look at the directory: link to the hosts that say where, let go of
 * those whose port file went or says nothing more. */
static void
scan(struct dist *d)
{
	char addrs[DIST_MAX_ADDRS][64], why[512];
	int ports[DIST_MAX_ADDRS];
	struct dhost *h, *hn;
	struct dirent *de;
	DIR *dir;
	int n;
	size_t i;
	bool changed;

	TAILQ_FOREACH(h, &d->hosts, link)
		h->seen = false;
	if ((dir = opendir(d->regdir)) == NULL) {
		log_limited(d->regdir, "registry links: %s: %s", d->regdir,
		    strerror(errno));
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, d->self) == 0 ||
		    !host_name_ok(de->d_name, strlen(de->d_name)))
			continue;
		n = portfile_read(d, de->d_name, addrs, ports, why, sizeof why);
		if (n == 0) {
			/* Being written: the host stays as it is. */
			if ((h = host_find(d, de->d_name)) != NULL)
				h->seen = true;
			continue;
		}
		if ((h = host_find(d, de->d_name)) == NULL)
			h = host_new(d, de->d_name);
		h->seen = true;
		if (n < 0) {
			distrust(h, why);
			continue;
		}
		h->distrust[0] = '\0';
		changed = h->naddrs != (size_t)n;
		for (i = 0; i < (size_t)n && !changed; i++)
			changed = strcmp(h->addrs[i], addrs[i]) != 0 ||
			          h->ports[i] != ports[i];
		if (changed) {
			memcpy(h->addrs, addrs, sizeof addrs);
			memcpy(h->ports, ports, sizeof ports);
			h->naddrs = (size_t)n;
			h->next_addr = 0;
			h->attempt = 0;
			log_info("host %s: its registry links on %s:%d%s",
			    h->name, addrs[0], ports[0],
			    n > 1 ? " (and more)" : "");
			/* A new registry there: what we dial, or the old
			 * link, is for the old one. */
			if (strcmp(d->self, h->name) < 0) {
				if (h->dialing != NULL)
					link_close(h->dialing, NULL);
				evtimer_del(h->retry);
			}
		}
		/* Of two hosts, the one whose name sorts first dials. */
		if (strcmp(d->self, h->name) < 0 && h->cur == NULL &&
		    h->dialing == NULL && !evtimer_pending(h->retry, NULL))
			host_dial(h);
	}
	closedir(dir);
	TAILQ_FOREACH_SAFE(h, &d->hosts, link, hn) {
		if (!h->seen)
			h->distrust[0] = '\0'; /* a new file is said anew */
		if (h->seen || h->naddrs == 0)
			continue;
		h->naddrs = 0;
		evtimer_del(h->retry);
		if (h->dialing != NULL)
			link_close(h->dialing, NULL);
		if (h->cur != NULL)
			link_close(h->cur,
			    "its port file is gone or names no link address");
	}
	server_flush(d->srv);
}

static void
poll_cb(evutil_socket_t fd, short ev, void *arg)
{
	scan(arg);
}

static void
inotify_cb(evutil_socket_t fd, short ev, void *arg)
{
	char buf[4096];

	/* What changed does not matter: the look at the directory says. */
	while (read(fd, buf, sizeof buf) > 0)
		;
	scan(arg);
}

/* ---- where we listen --------------------------------------------------- */

/* The non-loopback IPv4 addresses of this host's interfaces, as port file
 * lines. */
static void
every_address(struct dist *d, int port)
{
	struct ifaddrs *ifa, *i;
	char a[64];
	size_t off = strlen(d->line);
	int count = 0;

	if (getifaddrs(&ifa) == -1)
		return;
	for (i = ifa; i != NULL && count < DIST_MAX_ADDRS; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		inet_ntop(AF_INET,
		    &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a,
		    sizeof a);
		off += (size_t)snprintf(d->line + off, sizeof d->line - off,
		    "dist %s %d\n", a, port);
		if (off >= sizeof d->line)
			break;
		count++;
	}
	freeifaddrs(ifa);
}

/* Where to listen: --dist-listen, else the address the host name
 * resolves to (not a loopback one), else every address. */
static int
listen_where(struct dist *d, const char *spec, struct sockaddr_in *sin,
    bool *every, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *r;
	char host[256], *colon;
	long port = 0;
	char *end;

	memset(sin, 0, sizeof *sin);
	sin->sin_family = AF_INET;
	*every = false;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if (spec != NULL) {
		snprintf(host, sizeof host, "%s", spec);
		if ((colon = strrchr(host, ':')) != NULL) {
			*colon = '\0';
			port = strtol(colon + 1, &end, 10);
			if (*end != '\0' || port < 0 || port > 65535)
				return reason(err, errlen,
				    "--dist-listen %s: bad port", spec);
		}
		sin->sin_port = htons((uint16_t)port);
		if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
			*every = true;
			return 0;
		}
		if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
			return reason(err, errlen,
			    "--dist-listen %s: no IPv4 address", spec);
		sin->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
		freeaddrinfo(res);
		return 0;
	}
	if (gethostname(host, sizeof host) == 0 &&
	    getaddrinfo(host, NULL, &hints, &res) == 0) {
		for (r = res; r != NULL; r = r->ai_next) {
			struct in_addr ia =
			    ((struct sockaddr_in *)r->ai_addr)->sin_addr;

			if ((ntohl(ia.s_addr) >> 24) == 127)
				continue;
			sin->sin_addr = ia;
			freeaddrinfo(res);
			return 0;
		}
		freeaddrinfo(res);
	}
	*every = true;
	return 0;
}

static int
dist_listen(struct dist *d, const char *spec, char *err, size_t errlen)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	char a[64];
	bool every;
	int fd, one = 1;

	if (listen_where(d, spec, &sin, &every, err, errlen) == -1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return reason(err, errlen, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(fd, 64) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
		inet_ntop(AF_INET, &sin.sin_addr, a, sizeof a);
		reason(err, errlen,
		    "cannot listen for registry links on "
		    "%s:%d: %s",
		    a, ntohs(sin.sin_port), strerror(errno));
		close(fd);
		return -1;
	}
	d->listener = evconnlistener_new(d->srv->base, accept_cb, d,
	    LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (d->listener == NULL) {
		close(fd);
		return reason(err, errlen, "evconnlistener_new failed");
	}
	evconnlistener_set_error_cb(d->listener, accept_error);
	if ((d->accept_rest = listen_rest_new(d->srv->base, &d->listener)) ==
	    NULL)
		return reason(err, errlen, "evtimer_new failed");
	d->line[0] = '\0';
	if (every)
		every_address(d, ntohs(sin.sin_port));
	else {
		inet_ntop(AF_INET, &sin.sin_addr, a, sizeof a);
		snprintf(d->line, sizeof d->line, "dist %s %d\n", a,
		    ntohs(sin.sin_port));
	}
	if (d->line[0] == '\0')
		return reason(err, errlen,
		    "no address other hosts could reach (only loopback); "
		    "use --dist-listen");
	return 0;
}

/* The port file: the port line, then ours, written in place (the lock
 * stays on the inode) as the election writes it: emptied, then one write
 * of the whole.  A reader sees the old content, an empty file (being
 * written, as during an election) or the new; never the new followed by
 * the tail of a longer old one. */
static int
portfile_write(struct election_claim *c, const char *more)
{
	char buf[DIST_PORTFILE_MAX];
	int n;

	n = snprintf(buf, sizeof buf, "%d\n%s", c->port, more);
	if (n < 0 || (size_t)n >= sizeof buf)
		return -1;
	if (ftruncate(c->lock_fd, 0) == -1 ||
	    pwrite(c->lock_fd, buf, (size_t)n, 0) != n)
		return -1;
	fsync(c->lock_fd);
	return 0;
}

/* ---- the interface ----------------------------------------------------- */

struct dist *
dist_start(struct server *srv, const char *regdir, struct election_claim *claim,
    const char *listen, char *err, size_t errlen)
{
	unsigned char cookie[DIST_COOKIE_MAX];
	struct timeval tv = {DIST_POLL_MS / 1000, (DIST_POLL_MS % 1000) * 1000};
	struct passwd *pw;
	struct dist *d;
	size_t len;
	int wd;

	if (cookie_read(regdir, cookie, &len, err, errlen) == -1)
		return NULL;
	if ((d = calloc(1, sizeof *d)) == NULL)
		fatal("%s", __func__);
	d->srv = srv;
	d->claim = claim;
	d->inotify_fd = -1;
	TAILQ_INIT(&d->hosts);
	TAILQ_INIT(&d->links);
	snprintf(d->self, sizeof d->self, "%s", srv->host);
	snprintf(d->regdir, sizeof d->regdir, "%s", regdir);
	pw = getpwuid(getuid());
	if (pw != NULL)
		snprintf(d->user, sizeof d->user, "%s", pw->pw_name);
	else
		snprintf(d->user, sizeof d->user, "%ld", (long)getuid());
	if (derive_psk(d, cookie, len) == -1) {
		OPENSSL_cleanse(cookie, sizeof cookie);
		reason(err, errlen, "cannot derive the link key (HKDF)");
		free(d);
		return NULL;
	}
	OPENSSL_cleanse(cookie, sizeof cookie);
	if ((d->ctx = tls_context(d)) == NULL) {
		reason(err, errlen, "cannot set up TLS");
		goto fail;
	}
	/* The links' limits: the registry's pings, and room for a
	 * snapshot of every entry. */
	d->lim = srv->lim;
	d->lim.max_message = DIST_MAX_MESSAGE;
	d->lim.max_output = DIST_MAX_OUTPUT;
	d->lim.partial_ms = DIST_PARTIAL_MS;
	d->lim.handshake_ms = DIST_HANDSHAKE_S * 1000;
	if (dist_listen(d, listen, err, errlen) == -1)
		goto fail;
	if (portfile_write(claim, d->line) == -1) {
		reason(err, errlen, "%s: cannot write our address: %s",
		    claim->path, strerror(errno));
		goto fail;
	}
	if (registry_observe(srv->reg, observe, d) == -1) {
		reason(err, errlen, "too many observers of the table");
		goto fail;
	}
	d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->inotify_fd != -1) {
		wd = inotify_add_watch(d->inotify_fd, regdir,
		    IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MODIFY |
		        IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB);
		if (wd == -1) {
			close(d->inotify_fd);
			d->inotify_fd = -1;
		} else {
			d->ev_inotify = event_new(srv->base, d->inotify_fd,
			    EV_READ | EV_PERSIST, inotify_cb, d);
			event_add(d->ev_inotify, NULL);
		}
	}
	d->poll = event_new(srv->base, -1, EV_PERSIST, poll_cb, d);
	event_add(d->poll, &tv);
	log_info("distributed registry: links for %s on %.*s (TLS 1.3, key "
	         "from the cookie)",
	    d->user, (int)strcspn(d->line + 5, "\n"), d->line + 5);
	srv->dist = d;
	srv->lookup_more = dist_lookup;
	srv->name_wanted = dist_name_wanted;
	scan(d);
	return d;
fail:
	if (d->accept_rest != NULL)
		event_free(d->accept_rest);
	if (d->listener != NULL)
		evconnlistener_free(d->listener);
	if (d->ctx != NULL)
		SSL_CTX_free(d->ctx);
	OPENSSL_cleanse(d->psk, sizeof d->psk);
	free(d);
	return NULL;
}

void
dist_free(struct dist *d)
{
	struct dhost *h;
	struct dlink *l;

	if (d == NULL)
		return;
	registry_unobserve(d->srv->reg, d);
	while ((l = TAILQ_FIRST(&d->links)) != NULL) {
		if (l->h != NULL && l->h->cur == l)
			l->h->cur = NULL;
		if (l->h != NULL && l->h->dialing == l)
			l->h->dialing = NULL;
		l->h = NULL;
		link_close(l, NULL);
	}
	while ((h = TAILQ_FIRST(&d->hosts)) != NULL) {
		struct reg_entry *x;

		while ((x = TAILQ_FIRST(&h->shown)) != NULL)
			registry_remove(d->srv->reg, x, &h->shown);
		while ((x = TAILQ_FIRST(&h->indexed)) != NULL)
			registry_remove(h->index, x, &h->indexed);
		registry_free(h->index);
		event_free(h->retry);
		TAILQ_REMOVE(&d->hosts, h, link);
		free(h);
	}
	/* The file stays as the remembered port, and says no more. */
	portfile_write(d->claim, "");
	if (d->ev_inotify != NULL)
		event_free(d->ev_inotify);
	if (d->inotify_fd != -1)
		close(d->inotify_fd);
	event_free(d->poll);
	if (d->accept_rest != NULL)
		event_free(d->accept_rest);
	evconnlistener_free(d->listener);
	SSL_CTX_free(d->ctx);
	OPENSSL_cleanse(d->psk, sizeof d->psk);
	d->srv->dist = NULL;
	d->srv->lookup_more = NULL;
	d->srv->name_wanted = NULL;
	free(d);
}

const struct reg_entry *
dist_lookup(struct server *srv, const char *name, size_t len)
{
	struct dist *d = srv->dist;
	const struct reg_entry *e, *best = NULL;
	const struct dhost *bh = NULL;
	struct dhost *h;
	const char *at;
	char host[256];
	size_t blen;

	at = memrchr(name, '@', len);
	if (at != NULL) {
		blen = (size_t)(at - name);
		snprintf(host, sizeof host, "%.*s", (int)(len - blen - 1),
		    at + 1);
		if (strcmp(host, d->self) == 0) {
			e = registry_find(d->srv->reg, name, blen);
			return e != NULL && !is_copy(d, e) ? e : NULL;
		}
		if ((h = host_find(d, host)) == NULL || h->cur == NULL)
			return NULL;
		return registry_find(h->index, name, blen);
	}
	TAILQ_FOREACH(h, &d->hosts, link) {
		if (h->cur == NULL ||
		    (e = registry_find(h->index, name, len)) == NULL)
			continue;
		if (bh == NULL || strcmp(h->name, bh->name) < 0) {
			best = e;
			bh = h;
		}
	}
	return best;
}
