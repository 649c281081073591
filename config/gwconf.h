/*
 * The host's comm configuration: the *.ini files of /etc/tcl/comm
 * (docs/config.md).
 *
 * One directory, read by the host gateway (commgwd: its sockets, TLS
 * files, admission policy, quotas, remote gateways) and by every user
 * registry (where the gateway's Unix socket is).  Files are read in
 * lexical order with inih through a reader of our own, so that every
 * message can name file:line and the offending word, and an over-long
 * line is an error rather than a silent split.  The whole set is parsed
 * into one struct gwconf, validated whole, and only then handed over:
 * nothing half-loaded is ever used (a reload that fails keeps the old
 * configuration).
 *
 * Trust: a file or directory writable by anyone but its owner (and, for
 * the gateway running as root, owned by anyone but root) is refused, as
 * is a TLS key readable by group or other, with a message saying which
 * file and why; so is a directory above them that someone else could
 * change (safepath.h, safe_walk).
 *
 * The gateway's privileged process reads the files (as root), and its
 * unprivileged one, which serves, parses what it was handed
 * (gwconf_load_mem, gateway/privsep.h): the same parser, the same
 * messages.
 *
 * This module knows nothing of sockets.
 */
#ifndef CONFIG_GWCONF_H
#define CONFIG_GWCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define GWCONF_DIR_DEFAULT "/etc/tcl/comm"
/* Points the directory elsewhere (tests, an unprivileged demo); the
 * daemons' --config-dir option wins over it. */
#define GWCONF_DIR_ENV        "TCL_COMM_CONFIG_DIR"
#define GWCONF_SOCKET_DEFAULT "/run/tcl-comm/gateway.sock"
/* inih's Debian build stops at 200; our reader refuses longer lines. */
#define GWCONF_LINE_MAX 1024
/* Larger files are refused: a *.ini, and a PEM file (certificate, key,
 * CA), each read whole into memory. */
#define GWCONF_FILE_MAX (1024 * 1024)
#define GWCONF_PEM_MAX  (1024 * 1024)

/* Scopes an entry may be offered in beyond its user (bit set). */
#define GWCONF_SCOPE_HOST   0x1
#define GWCONF_SCOPE_GLOBAL 0x2

enum gwconf_action { GWCONF_ALLOW, GWCONF_DENY };

struct gwconf_ports {
	int lo, hi; /* inclusive, 1..65535 */
};

/*
 * [rule NAME]: one admission rule.  Every condition given must hold for
 * the rule to match (and); within one key, any listed value (or).  A
 * condition not given matches everything.  Rules are tried in order
 * (files in lexical order, sections in file order): the first match
 * decides.  See policy.h for what happens when none matches.
 */
struct gwconf_rule {
	char *name;
	char *file; /* where it was defined, for messages */
	int line;
	enum gwconf_action action;
	uid_t *uids; /* users = alice bob (resolved at load) */
	size_t nuids;
	gid_t *gids; /* groups = staff (resolved at load) */
	size_t ngids;
	char **names; /* names = foo* bar (Tcl string match patterns) */
	size_t nnames;
	struct gwconf_ports *ports; /* ports = 1024-65535 7000 */
	size_t nports;
	unsigned scopes; /* scopes = host global (0: any) */
	char *message;   /* message = ... (optional, told on deny) */
};

/* [quota]: the default, and per user or group (the largest applies):
 *   default = 32
 *   user alice = 64        (a name or a numeric uid)
 *   group staff = 128      (a name or a numeric gid) */
struct gwconf_quota {
	bool group; /* gid, else uid */
	uid_t uid;
	gid_t gid;
	int max_entries;
};

/* [remote NAME]: another gateway, linked to over TLS (gateway/fed.c). */
struct gwconf_remote {
	char *name;
	char *file;
	int line;
	char *host; /* address = HOST:PORT */
	int port;
	char *peer_name; /* peer_name = the name its certificate must carry */
	char **exports;  /* export = patterns of our global names it gets */
	size_t nexports;
	char **imports; /* import = patterns of its names we take */
	size_t nimports;
	bool upstream; /* upstream = yes: our parent in the tree */
	bool reexport; /* reexport = yes: pass on what others gave us */
};

/*
 * A gateway's name (a remote's peer_name, the name our certificate gives
 * us) is a host name: 1..253 of letters, digits, ".", "-" and "_".  It
 * ends entries' names (NAME@USER@GATEWAY) and is a word of their paths,
 * so a space or an "@" in it would let one name pass for another.
 */
bool gwconf_gateway_name_ok(const char *name);

/* A file as read: its name (a path) and its bytes, data[len] == '\0'. */
struct gwconf_blob {
	char *name;
	char *data;
	size_t len;
};

struct gwconf {
	char *dir;    /* NULL from gwconf_parse_string */
	char **files; /* the files read, in order (the name given, for
	               * gwconf_parse_string) */
	size_t nfiles;

	/* [gateway] */
	char *socket_path; /* socket = (default GWCONF_SOCKET_DEFAULT) */
	char *run_as;      /* user = tclcomm (NULL: stay who we are) */
	char
	    *listen_host; /* listen = HOST:PORT, TLS for remotes (NULL: none) */
	int listen_port;
	char *certificate; /* certificate, key, ca: PEM files */
	char *key;
	char *ca;
	int max_connections;   /* default 1024 */
	int max_message;       /* bytes, default 65536 */
	int handshake_timeout; /* seconds, default 10 */
	int liveness_ms;       /* a silent peer is pinged at a third of it
	                          and dropped at all of it; 0: never */
	int lookup_timeout_ms; /* forwarded lookups, default 2000 */
	int link_max_message;  /* bytes in one message on a federation
	                          link, default 16 MiB */
	int link_max_snapshot; /* bytes of one snapshot from a remote, in
	                          pieces, default 64 MiB */

	struct gwconf_rule *rules;
	size_t nrules;
	int quota_default; /* [quota] default = N, default 32 */
	struct gwconf_quota *quotas;
	size_t nquotas;
	struct gwconf_remote *remotes;
	size_t nremotes;

	/* GWCONF_GATEWAY: what was read, once trusted.  texts: every *.ini,
	 * in order, named as in files (gwconf_load only: what the privileged
	 * process hands on).  The PEM of certificate, key and ca, named by
	 * their paths (data NULL when not configured): the gateway makes its
	 * TLS context of these bytes (gateway/fed.h), never of a file read
	 * again. */
	struct gwconf_blob *texts;
	size_t ntexts;
	struct gwconf_blob cert_pem, key_pem, ca_pem;
};

/* Messages of a failed load: "file:line: what is wrong", each one line
 * ("file: what is wrong" for a file or directory refused as a whole).
 * Start from {0}; gwconf_errors_free() empties it for the next load. */
struct gwconf_errors {
	char **v;
	size_t n;
};

enum gwconf_mode {
	/* A user registry: only the gateway's socket matters; key files are
	 * not looked at (it cannot read them anyway). */
	GWCONF_CLIENT,
	/* The gateway: everything, TLS files included. */
	GWCONF_GATEWAY,
};

/*
 * Load and validate every *.ini in dir (NULL: $TCL_COMM_CONFIG_DIR, else
 * GWCONF_DIR_DEFAULT): regular files whose names end in ".ini" and do not
 * start with ".", in strcmp order.  Returns the configuration, or NULL
 * with at least one message appended to errs (all the errors found, not
 * only the first; errs may be NULL).
 *
 * A missing directory sets *missing (missing may be NULL).  For
 * GWCONF_CLIENT it is not an error: the result is a configuration of
 * defaults (socket_path GWCONF_SOCKET_DEFAULT, no files).  For
 * GWCONF_GATEWAY it is one: NULL, with "DIR: no such directory".
 *
 * Not thread-safe (inih's line buffer size is a global of Debian's build,
 * set for the duration of each parse).
 */
struct gwconf *gwconf_load(const char *dir, enum gwconf_mode, bool *missing,
    struct gwconf_errors *errs);
/*
 * The same from files already read and trusted by someone else (the
 * gateway's privileged process, gateway/privsep.h): `ini` are the *.ini
 * files of dir in order, each named by its path as gwconf_load names
 * them, so that every message is the same "file:line: ..."; `pem` the
 * TLS files, named by their paths, which the configuration's
 * certificate, key and ca must find there.  No file is opened and no
 * trust is checked here.  Returns the configuration (texts not kept),
 * or NULL with the errors.
 */
struct gwconf *gwconf_load_mem(const char *dir, const struct gwconf_blob *ini,
    size_t nini, const struct gwconf_blob *pem, size_t npem, enum gwconf_mode,
    struct gwconf_errors *errs);
/* Forget the PEM texts (the key's bytes overwritten first): once the TLS
 * context is made they are not needed. */
void gwconf_wipe_tls(struct gwconf *);
/* Frees, the key's bytes overwritten first. */
void gwconf_free(struct gwconf *);
void gwconf_errors_free(struct gwconf_errors *);
/* The directory gwconf_load(NULL, ...) reads. */
const char *gwconf_default_dir(void);

/* Parse a whole configuration from memory, as one file named `name`
 * (the fuzzer and unit tests; no file trust checks, no name resolution
 * beyond getpwnam/getgrnam). */
struct gwconf *gwconf_parse_string(const char *name, const char *text,
    enum gwconf_mode, struct gwconf_errors *errs);

#endif
