/*
 * The config file (libconfig syntax) into struct conf.  Every error names
 * the file and the line: "osprey.conf:12: timers.t1: must be 1..60000".
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <libconfig.h>

#include "conf.h"
#include "log.h"
#include "xmalloc.h"

struct ctx {
	const char	*path;
	char		*err;
	size_t		 errlen;
};

static int
conf_err(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(c->err, c->errlen, "%s:%d: ", c->path,
	    s ? config_setting_source_line(s) : 1);
	if (n < 0 || (size_t)n >= c->errlen)
		return (-1);
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - n, fmt, ap);
	va_end(ap);
	return (-1);
}

/* Every member of group s must be named in allowed. */
static int
check_keys(struct ctx *c, const config_setting_t *s, const char *where,
    const char *const *allowed)
{
	int	i, j;

	for (i = 0; i < config_setting_length(s); i++) {
		const config_setting_t	*m = config_setting_get_elem(s, i);
		const char		*name = config_setting_name(m);

		for (j = 0; allowed[j] != NULL; j++)
			if (name != NULL && strcmp(name, allowed[j]) == 0)
				break;
		if (allowed[j] == NULL)
			return (conf_err(c, m, "unknown key %s%s%s", where,
			    *where ? "." : "", name ? name : "?"));
	}
	return (0);
}

static int
get_int(struct ctx *c, const config_setting_t *g, const char *where,
    const char *key,
    long long min, long long max, long long *out)
{
	const config_setting_t	*s = config_setting_get_member(g, key);
	long long		 v;

	if (s == NULL)
		return (0);
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		return (conf_err(c, s, "%s%s: must be a number", where, key));
	if (v < min || v > max)
		return (conf_err(c, s, "%s%s: must be %lld..%lld, not %lld",
		    where, key, min, max, v));
	*out = v;
	return (0);
}

static int
get_bool(struct ctx *c, const config_setting_t *g, const char *where,
    const char *key, bool *out)
{
	const config_setting_t	*s = config_setting_get_member(g, key);

	if (s == NULL)
		return (0);
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return (conf_err(c, s, "%s%s: must be true or false", where,
		    key));
	*out = config_setting_get_bool(s);
	return (0);
}

/* A string member; *out points into libconfig's memory, or stays NULL. */
static int
get_str(struct ctx *c, const config_setting_t *g, const char *where,
    const char *key,
    const char **out)
{
	const config_setting_t	*s = config_setting_get_member(g, key);

	if (s == NULL)
		return (0);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return (conf_err(c, s, "%s%s: must be a string", where, key));
	*out = config_setting_get_string(s);
	return (0);
}

static int
load_listen(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "transport", "address", "port",
	    NULL };
	const config_setting_t	*l = config_setting_get_member(root, "listen");
	int			 i;

	if (l == NULL)
		return (conf_err(c, NULL, "listen: at least one is required"));
	if (!config_setting_is_list(l) && !config_setting_is_array(l))
		return (conf_err(c, l, "listen: must be a list ( { ... } )"));
	if (config_setting_length(l) == 0)
		return (conf_err(c, l, "listen: at least one is required"));
	if (config_setting_length(l) > TP_MAX_SOCKS)
		return (conf_err(c, l, "listen: at most %d", TP_MAX_SOCKS));
	for (i = 0; i < config_setting_length(l); i++) {
		const config_setting_t	*e = config_setting_get_elem(l, i);
		struct conf_listen	*cl = &cf->listen[cf->nlisten];
		const char		*tr = "udp", *addr = NULL;
		long long		 port = 5060;
		struct tp_addr		 a;

		if (!config_setting_is_group(e))
			return (conf_err(c, e, "listen: each entry is a group "
			    "{ transport = ...; address = ...; port = ...; }"));
		if (check_keys(c, e, "listen", keys) == -1 ||
		    get_str(c, e, "listen.", "transport", &tr) == -1 ||
		    get_str(c, e, "listen.", "address", &addr) == -1 ||
		    get_int(c, e, "listen.", "port", 1, 65535, &port) == -1)
			return (-1);
		if (strcmp(tr, "udp") != 0)
			return (conf_err(c, config_setting_get_member(e,
			    "transport"), "listen.transport: \"%s\" is not "
			    "supported (only \"udp\")", tr));
		if (addr == NULL)
			return (conf_err(c, e, "listen.address: required"));
		if (tp_addr_set(&a, (struct slice){ addr, strlen(addr) },
		    (uint16_t)port) == -1)
			return (conf_err(c, config_setting_get_member(e,
			    "address"), "listen.address: \"%s\" is not an IPv4 "
			    "or IPv6 address", addr));
		cl->transport = xstrdup(tr);
		cl->address = xstrdup(addr);
		cl->port = (uint16_t)port;
		cf->nlisten++;
	}
	return (0);
}

static int
load_domains(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	const config_setting_t	*d = config_setting_get_member(root, "domains");
	int			 i, n;

	if (d == NULL)
		return (0);
	if (!config_setting_is_array(d) && !config_setting_is_list(d))
		return (conf_err(c, d, "domains: must be a list of strings"));
	n = config_setting_length(d);
	cf->proxy.domains = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		const config_setting_t	*e = config_setting_get_elem(d, i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING ||
		    *config_setting_get_string(e) == '\0')
			return (conf_err(c, e, "domains: must be host names"));
		cf->proxy.domains[cf->proxy.ndomains++] =
		    xstrdup(config_setting_get_string(e));
	}
	return (0);
}

static int
load_timers(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "t1", "t2", "t4", "c", "cancel",
	    NULL };
	const config_setting_t	*t = config_setting_get_member(root, "timers");
	long long		 t1 = 500, t2 = 4000, t4 = 5000, tc = 180000;
	long long		 cancel = 5000;

	if (t != NULL) {
		if (!config_setting_is_group(t))
			return (conf_err(c, t, "timers: must be a group "
			    "{ t1 = ...; }"));
		if (check_keys(c, t, "timers", keys) == -1 ||
		    get_int(c, t, "timers.", "t1", 1, 60000, &t1) == -1 ||
		    get_int(c, t, "timers.", "t2", 1, 600000, &t2) == -1 ||
		    get_int(c, t, "timers.", "t4", 1, 600000, &t4) == -1 ||
		    get_int(c, t, "timers.", "c", 100, 3600000, &tc) == -1 ||
		    get_int(c, t, "timers.", "cancel", 10, 600000, &cancel) == -1)
			return (-1);
		if (t2 < t1)
			return (conf_err(c, config_setting_get_member(t, "t2"),
			    "timers.t2: must not be less than t1"));
	}
	cf->txn.t1_ms = (uint32_t)t1;
	cf->txn.t2_ms = (uint32_t)t2;
	cf->txn.t4_ms = (uint32_t)t4;
	cf->txn.c_ms = (uint32_t)tc;
	cf->txn.d_ms = 64 * t1 < 32000 ? (uint32_t)(64 * t1) : 32000;
	cf->proxy.cancel_ms = (uint32_t)cancel;
	return (0);
}

/* A code set: one code or name, or a list/array of them. */
static int
get_codes(struct ctx *c, const config_setting_t *s, const char *where,
    struct codeset *cs)
{
	char	msg[256], num[16];
	int	i, n = 1;

	if (config_setting_is_array(s) || config_setting_is_list(s))
		n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		const config_setting_t	*e = (config_setting_is_array(s) ||
		    config_setting_is_list(s)) ? config_setting_get_elem(s, i) :
		    s;
		const char		*item;

		if (config_setting_type(e) == CONFIG_TYPE_INT) {
			snprintf(num, sizeof(num), "%d",
			    config_setting_get_int(e));
			item = num;
		} else if (config_setting_type(e) == CONFIG_TYPE_STRING)
			item = config_setting_get_string(e);
		else
			return (conf_err(c, e, "%s: codes are numbers, classes "
			    "like \"5xx\" or cause names", where));
		if (codeset_add(cs, item, msg, sizeof(msg)) == -1)
			return (conf_err(c, e, "%s: %s", where, msg));
	}
	return (0);
}

static int
load_targets(struct ctx *c, const config_setting_t *ts, struct route *r,
    long long timeout)
{
	static const char *const keys[] = { "uri", "timeout", "weight",
	    NULL };
	char	msg[256];
	int	j;

	for (j = 0; j < config_setting_length(ts); j++) {
		const config_setting_t	*t = config_setting_get_elem(ts, j);
		const char		*uri = NULL;
		long long		 tmo = timeout, weight = 1;

		if (config_setting_type(t) == CONFIG_TYPE_STRING)
			uri = config_setting_get_string(t);
		else if (config_setting_is_group(t)) {
			if (check_keys(c, t, "routes.targets", keys) == -1 ||
			    get_str(c, t, "routes.targets.", "uri", &uri) ==
			    -1 ||
			    get_int(c, t, "routes.targets.", "timeout", 0,
			    3600000, &tmo) == -1 ||
			    get_int(c, t, "routes.targets.", "weight", 0,
			    1000, &weight) == -1)
				return (-1);
			if (uri == NULL)
				return (conf_err(c, t, "routes.targets.uri: "
				    "required"));
		} else
			return (conf_err(c, t, "routes.targets: each is a SIP "
			    "URI or a group { uri = ...; timeout = ...; }"));
		if (route_add_target(r, uri, msg, sizeof(msg)) == -1)
			return (conf_err(c, t, "routes.targets: %s", msg));
		r->targets[r->ntargets - 1].timeout_ms = (uint32_t)tmo;
		r->targets[r->ntargets - 1].weight = (unsigned)weight;
	}
	return (0);
}

static int
load_on_failure(struct ctx *c, const config_setting_t *of, struct route *r)
{
	static const char *const keys[] = { "code", "route", NULL };
	int	i;

	if (!config_setting_is_list(of))
		return (conf_err(c, of, "routes.on_failure: must be a list "
		    "( { code = ...; route = \"name\"; } )"));
	for (i = 0; i < config_setting_length(of); i++) {
		const config_setting_t	*e = config_setting_get_elem(of, i);
		const config_setting_t	*code;
		struct failure_rule	*f;
		const char		*name = NULL;

		if (!config_setting_is_group(e))
			return (conf_err(c, e, "routes.on_failure: each entry "
			    "is a group { code = ...; route = ...; }"));
		if (r->nfailure == ROUTE_MAX_RULES)
			return (conf_err(c, e, "routes.on_failure: at most %d",
			    ROUTE_MAX_RULES));
		f = &r->on_failure[r->nfailure];
		memset(f, 0, sizeof(*f));
		if (check_keys(c, e, "routes.on_failure", keys) == -1 ||
		    get_str(c, e, "routes.on_failure.", "route", &name) == -1)
			return (-1);
		if ((code = config_setting_get_member(e, "code")) == NULL)
			return (conf_err(c, e, "routes.on_failure.code: "
			    "required"));
		if (name == NULL)
			return (conf_err(c, e, "routes.on_failure.route: "
			    "required"));
		if (get_codes(c, code, "routes.on_failure.code", &f->codes) ==
		    -1)
			return (-1);
		f->route_name = xstrdup(name);
		r->nfailure++;
	}
	return (0);
}

static int
load_route(struct ctx *c, const config_setting_t *e, struct conf *cf,
    bool matchable)
{
	static const char *const keys[] = { "name", "user", "domain",
	    "targets", "fork", "balance", "failover", "on_failure",
	    "timeout", "recurse", "max_redirects", "probe", "public", NULL };
	const char	*where = matchable ? "routes" : "failure_routes";
	const config_setting_t	*ts, *s;
	const char	*user = NULL, *domain = NULL, *name = NULL;
	const char	*fork = NULL, *bal = NULL;
	long long	 timeout = 0, maxr = 3;
	char		 msg[256];
	struct route	*r;

	if (!config_setting_is_group(e))
		return (conf_err(c, e, "%s: each entry is a group "
		    "{ user = ...; targets = [ ... ]; }", where));
	if (check_keys(c, e, where, keys) == -1 ||
	    get_str(c, e, "routes.", "name", &name) == -1 ||
	    get_str(c, e, "routes.", "user", &user) == -1 ||
	    get_str(c, e, "routes.", "domain", &domain) == -1 ||
	    get_str(c, e, "routes.", "fork", &fork) == -1 ||
	    get_str(c, e, "routes.", "balance", &bal) == -1 ||
	    get_int(c, e, "routes.", "timeout", 0, 3600000, &timeout) == -1 ||
	    get_int(c, e, "routes.", "max_redirects", 0, 16, &maxr) == -1)
		return (-1);
	if (!matchable && (user != NULL || domain != NULL))
		return (conf_err(c, e, "failure_routes: user and domain do not "
		    "apply (these routes are reached by on_failure only)"));
	if (!matchable && name == NULL)
		return (conf_err(c, e, "failure_routes.name: required"));
	if (name != NULL && route_find(&cf->proxy.routes, name) != NULL)
		return (conf_err(c, e, "%s.name: \"%s\" is used twice", where,
		    name));
	ts = config_setting_get_member(e, "targets");
	if (ts == NULL)
		return (conf_err(c, e, "%s.targets: required", where));
	if ((!config_setting_is_array(ts) && !config_setting_is_list(ts)) ||
	    config_setting_length(ts) == 0)
		return (conf_err(c, ts, "%s.targets: must be a non-empty list "
		    "of SIP URIs", where));
	r = route_add(&cf->proxy.routes, user, domain,
	    config_setting_source_line(e), msg, sizeof(msg));
	if (r == NULL)
		return (conf_err(c, e, "%s: %s", where, msg));
	r->matchable = matchable;
	r->max_redirects = (unsigned)maxr;
	if (name != NULL)
		r->name = xstrdup(name);
	if (fork != NULL) {
		if (strcmp(fork, "serial") == 0)
			r->fork = FORK_SERIAL;
		else if (strcmp(fork, "parallel") != 0)
			return (conf_err(c, config_setting_get_member(e,
			    "fork"), "routes.fork: \"%s\" is not \"parallel\" "
			    "or \"serial\"", fork));
	}
	if (bal != NULL) {
		static const char *const names[] = { "order", "weight",
		    "round_robin", "hash" };
		unsigned	i;

		for (i = 0; i < 4 && strcmp(bal, names[i]) != 0; i++)
			;
		if (i == 4)
			return (conf_err(c, config_setting_get_member(e,
			    "balance"), "routes.balance: \"%s\" is not one of "
			    "order, weight, round_robin, hash", bal));
		r->balance = (enum balance)i;
	}
	if (get_bool(c, e, "routes.", "recurse", &r->recurse) == -1 ||
	    get_bool(c, e, "routes.", "probe", &r->probe) == -1 ||
	    get_bool(c, e, "routes.", "public", &r->public) == -1 ||
	    load_targets(c, ts, r, timeout) == -1)
		return (-1);
	if ((s = config_setting_get_member(e, "failover")) != NULL) {
		if (get_codes(c, s, "routes.failover", &r->failover) == -1)
			return (-1);
	} else {
		codeset_add(&r->failover, "408", msg, sizeof(msg));
		codeset_add(&r->failover, "5xx", msg, sizeof(msg));
	}
	if ((s = config_setting_get_member(e, "on_failure")) != NULL &&
	    load_on_failure(c, s, r) == -1)
		return (-1);
	return (0);
}

static int
load_routes(struct ctx *c, const config_setting_t *root, struct conf *cf,
    const char *key, bool matchable)
{
	const config_setting_t	*rs = config_setting_get_member(root, key);
	int			 i;

	if (rs == NULL)
		return (0);
	if (!config_setting_is_list(rs))
		return (conf_err(c, rs, "%s: must be a list ( { ... } )", key));
	for (i = 0; i < config_setting_length(rs); i++)
		if (load_route(c, config_setting_get_elem(rs, i), cf,
		    matchable) == -1)
			return (-1);
	return (0);
}

static int
load_dns(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "nameservers", "timeout", NULL };
	const config_setting_t	*d = config_setting_get_member(root, "dns");
	const config_setting_t	*ns;
	long long		 tmo = 2000;
	int			 i;

	cf->dns.timeout_ms = 2000;
	if (d == NULL)
		return (0);
	if (!config_setting_is_group(d))
		return (conf_err(c, d, "dns: must be a group "
		    "{ nameservers = [ ... ]; }"));
	if (check_keys(c, d, "dns", keys) == -1 ||
	    get_int(c, d, "dns.", "timeout", 100, 60000, &tmo) == -1)
		return (-1);
	cf->dns.timeout_ms = (uint32_t)tmo;
	if ((ns = config_setting_get_member(d, "nameservers")) == NULL)
		return (0);
	if (!config_setting_is_array(ns) && !config_setting_is_list(ns))
		return (conf_err(c, ns, "dns.nameservers: must be a list of "
		    "addresses"));
	for (i = 0; i < config_setting_length(ns); i++) {
		const config_setting_t	*e = config_setting_get_elem(ns, i);

		if (i == RESOLVE_MAX_NS)
			return (conf_err(c, e, "dns.nameservers: at most %d",
			    RESOLVE_MAX_NS));
		if (config_setting_type(e) != CONFIG_TYPE_STRING ||
		    resolver_parse_ns(config_setting_get_string(e),
		    &cf->dns.ns[cf->dns.nns]) == -1)
			return (conf_err(c, e, "dns.nameservers: want \"ADDRESS\" "
			    "or \"ADDRESS:PORT\" (IPv6 in brackets)"));
		cf->dns.nns++;
	}
	return (0);
}

static int
load_metrics(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "address", "port", NULL };
	const config_setting_t	*m = config_setting_get_member(root,
	    "metrics");
	const char		*addr = "127.0.0.1";
	long long		 port = 9091;
	struct tp_addr		 a;

	if (m == NULL)
		return (0);
	if (!config_setting_is_group(m))
		return (conf_err(c, m, "metrics: must be a group "
		    "{ address = ...; port = ...; }"));
	if (check_keys(c, m, "metrics", keys) == -1 ||
	    get_str(c, m, "metrics.", "address", &addr) == -1 ||
	    get_int(c, m, "metrics.", "port", 1, 65535, &port) == -1)
		return (-1);
	if (tp_addr_set(&a, (struct slice){ addr, strlen(addr) },
	    (uint16_t)port) == -1)
		return (conf_err(c, config_setting_get_member(m, "address"),
		    "metrics.address: \"%s\" is not an IPv4 or IPv6 address",
		    addr));
	cf->metrics_address = xstrdup(addr);
	cf->metrics_port = (uint16_t)port;
	return (0);
}

static int
load_control(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "socket", "mode", NULL };
	const config_setting_t	*g = config_setting_get_member(root,
	    "control");
	const char		*path = "/run/osprey/ospreyd.sock";
	const char		*mode = "0660";
	char			*end;
	unsigned long		 m;

	if (g != NULL) {
		if (!config_setting_is_group(g))
			return (conf_err(c, g, "control: must be a group "
			    "{ socket = ...; mode = ...; }"));
		if (check_keys(c, g, "control", keys) == -1 ||
		    get_str(c, g, "control.", "socket", &path) == -1 ||
		    get_str(c, g, "control.", "mode", &mode) == -1)
			return (-1);
	}
	m = strtoul(mode, &end, 8);
	if (*mode == '\0' || *end != '\0' || m > 0777)
		return (conf_err(c, config_setting_get_member(g, "mode"),
		    "control.mode: \"%s\" is not an octal mode like "
		    "\"0660\"", mode));
	if (*path == '\0')	/* "" turns the control socket off */
		cf->ctl.socket = NULL;
	else if (*path != '/')
		return (conf_err(c, config_setting_get_member(g, "socket"),
		    "control.socket: must be an absolute path"));
	else
		cf->ctl.socket = xstrdup(path);
	cf->ctl.mode = (mode_t)m;
	return (0);
}

static int
load_probe(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "interval", "timeout", "failures",
	    NULL };
	const config_setting_t	*p = config_setting_get_member(root, "probe");
	long long		 interval = 10000, tmo = 2000, failures = 3;

	if (p != NULL) {
		if (!config_setting_is_group(p))
			return (conf_err(c, p, "probe: must be a group "
			    "{ interval = ...; }"));
		if (check_keys(c, p, "probe", keys) == -1 ||
		    get_int(c, p, "probe.", "interval", 500, 3600000,
		    &interval) == -1 ||
		    get_int(c, p, "probe.", "timeout", 100, 60000, &tmo) == -1 ||
		    get_int(c, p, "probe.", "failures", 1, 100, &failures) ==
		    -1)
			return (-1);
	}
	cf->proxy.probe_interval_ms = (uint32_t)interval;
	cf->proxy.probe_timeout_ms = (uint32_t)tmo;
	cf->proxy.probe_failures = (unsigned)failures;
	return (0);
}

/* A path from the config; a relative one is taken from the config's dir. */
static char *
conf_path(const char *cfpath, const char *p)
{
	const char	*slash = strrchr(cfpath, '/');
	size_t		 dlen;
	char		*out;

	if (*p == '/' || slash == NULL)
		return (xstrdup(p));
	dlen = (size_t)(slash - cfpath) + 1;
	out = xmalloc(dlen + strlen(p) + 1);
	memcpy(out, cfpath, dlen);
	strcpy(out + dlen, p);
	return (out);
}

static int
load_registrar(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "enabled", "min_expires",
	    "max_expires", "default_expires", "max_contacts", "database",
	    "max_per_source", NULL };
	const config_setting_t	*g = config_setting_get_member(root,
				    "registrar");
	struct registrar_settings *rs = &cf->reg;
	long long		 mn = 60, mx = 3600, def = 3600, maxc = 10;
	long long		 maxs = 1000;
	const char		*db = NULL;

	rs->enabled = true;
	if (g != NULL) {
		if (!config_setting_is_group(g))
			return (conf_err(c, g, "registrar: must be a group "
			    "{ min_expires = ...; }"));
		if (check_keys(c, g, "registrar", keys) == -1 ||
		    get_bool(c, g, "registrar.", "enabled", &rs->enabled) ==
		    -1 ||
		    get_int(c, g, "registrar.", "min_expires", 1, 86400,
		    &mn) == -1 ||
		    get_int(c, g, "registrar.", "max_expires", 1, 31536000,
		    &mx) == -1 ||
		    get_int(c, g, "registrar.", "default_expires", 1,
		    31536000, &def) == -1 ||
		    get_int(c, g, "registrar.", "max_contacts", 1, 64,
		    &maxc) == -1 ||
		    get_int(c, g, "registrar.", "max_per_source", 1, 10000000,
		    &maxs) == -1 ||
		    get_str(c, g, "registrar.", "database", &db) == -1)
			return (-1);
		if (mn > mx)
			return (conf_err(c, g, "registrar: min_expires (%lld) "
			    "is above max_expires (%lld)", mn, mx));
		if (def < mn || def > mx)
			return (conf_err(c, g, "registrar.default_expires: "
			    "must be within min_expires..max_expires "
			    "(%lld..%lld)", mn, mx));
	}
	rs->min_expires_s = (uint32_t)mn;
	rs->max_expires_s = (uint32_t)mx;
	rs->default_expires_s = (uint32_t)def;
	rs->max_contacts = (unsigned)maxc;
	rs->max_per_source = (unsigned)maxs;
	/*
	 * A relative database lives in the service's state directory
	 * (StateDirectory= sets STATE_DIRECTORY), else beside the config.
	 */
	if (db != NULL && *db != '\0') {
		const char	*sd = getenv("STATE_DIRECTORY");

		if (*db != '/' && sd != NULL && *sd == '/' &&
		    strchr(sd, ':') == NULL) {
			rs->database = xmalloc(strlen(sd) + strlen(db) + 2);
			sprintf(rs->database, "%s/%s", sd, db);
		} else
			rs->database = conf_path(c->path, db);
	}
	return (0);
}

static int
load_auth(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "users", "nonce_expiry",
	    "algorithms", "trusted", NULL };
	const config_setting_t	*g = config_setting_get_member(root, "auth");
	const config_setting_t	*s;
	struct auth_settings	*as = &cf->auth;
	long long		 ne = 300;
	const char		*users = NULL;
	char			 msg[512];
	int			 i;

	/*
	 * MD5 first by default: many phones (and sipsak) read only the first
	 * challenge and know nothing but MD5.
	 */
	as->algorithms = AUTH_MD5;
	as->sha256_first = false;
	if (g == NULL) {
		as->nonce_expiry_s = (uint32_t)ne;
		return (0);
	}
	if (!config_setting_is_group(g))
		return (conf_err(c, g, "auth: must be a group "
		    "{ users = \"...\"; }"));
	if (check_keys(c, g, "auth", keys) == -1 ||
	    get_str(c, g, "auth.", "users", &users) == -1 ||
	    get_int(c, g, "auth.", "nonce_expiry", 1, 86400, &ne) == -1)
		return (-1);
	as->nonce_expiry_s = (uint32_t)ne;
	if ((s = config_setting_get_member(g, "algorithms")) != NULL) {
		if (!config_setting_is_array(s) || config_setting_length(s) == 0)
			return (conf_err(c, s, "auth.algorithms: must be a "
			    "list such as [ \"SHA-256\", \"MD5\" ]"));
		as->algorithms = 0;
		for (i = 0; i < config_setting_length(s); i++) {
			const char *a = config_setting_get_string_elem(s, i);
			unsigned    bit;

			if (a != NULL && strcasecmp(a, "MD5") == 0)
				bit = AUTH_MD5;
			else if (a != NULL && strcasecmp(a, "SHA-256") == 0)
				bit = AUTH_SHA256;
			else
				return (conf_err(c, s, "auth.algorithms: "
				    "\"%s\" is not SHA-256 or MD5", a ? a :
				    "?"));
			if (as->algorithms == 0)
				as->sha256_first = bit == AUTH_SHA256;
			as->algorithms |= bit;
		}
	}
	if ((s = config_setting_get_member(g, "trusted")) != NULL) {
		if (!config_setting_is_array(s))
			return (conf_err(c, s, "auth.trusted: must be a list "
			    "of addresses or networks"));
		for (i = 0; i < config_setting_length(s); i++) {
			const char *a = config_setting_get_string_elem(s, i);

			if (a == NULL || acl_add(&as->trusted, a, msg,
			    sizeof(msg)) == -1)
				return (conf_err(c, s, "auth.trusted: %s",
				    a ? msg : "must be strings"));
		}
	}
	if (users != NULL) {
		as->users_file = conf_path(c->path, users);
		if ((cf->users = auth_users_load(as->users_file, msg,
		    sizeof(msg))) == NULL)
			return (conf_err(c, config_setting_get_member(g,
			    "users"), "auth.users: %s", msg));
	}
	return (0);
}

/* Kamailio's stock list, and two more seen in the wild. */
#define SCANNERS_DEFAULT \
	"friendly|scanner|sipcli|sipvicious|VaxSIPUserAgent|pplsip|" \
	"sundayddr|iWar"

static int
load_security(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "rate_window", "rate_requests",
	    "ban_time", "auth_failures", "auth_window", "exempt", "scanners",
	    "scanner_user_agents", "max_transactions", "max_sources",
	    "call_rate", NULL };
	const config_setting_t	*g = config_setting_get_member(root,
				    "security");
	const config_setting_t	*s;
	struct guard_settings	*gs = &cf->guard;
	long long		 win = 2000, req = 200, ban = 60, af = 5;
	long long		 aw = 60, maxt = 65536, maxs = 100000, cr = 0;
	const char		*ua = SCANNERS_DEFAULT;
	char			 msg[256];
	int			 i, rc;

	gs->scanners = true;
	if (g != NULL) {
		if (!config_setting_is_group(g))
			return (conf_err(c, g, "security: must be a group "
			    "{ rate_requests = ...; }"));
		if (check_keys(c, g, "security", keys) == -1 ||
		    get_int(c, g, "security.", "rate_window", 0, 3600000,
		    &win) == -1 ||
		    get_int(c, g, "security.", "rate_requests", 1, 10000000,
		    &req) == -1 ||
		    get_int(c, g, "security.", "ban_time", 1, 86400, &ban) ==
		    -1 ||
		    get_int(c, g, "security.", "auth_failures", 0, 1000, &af) ==
		    -1 ||
		    get_int(c, g, "security.", "auth_window", 1, 86400, &aw) ==
		    -1 ||
		    get_int(c, g, "security.", "max_transactions", 100,
		    10000000, &maxt) == -1 ||
		    get_int(c, g, "security.", "max_sources", 100, 10000000,
		    &maxs) == -1 ||
		    get_int(c, g, "security.", "call_rate", 0, 1000000, &cr) ==
		    -1 ||
		    get_bool(c, g, "security.", "scanners", &gs->scanners) ==
		    -1 ||
		    get_str(c, g, "security.", "scanner_user_agents", &ua) == -1)
			return (-1);
		if ((s = config_setting_get_member(g, "exempt")) != NULL) {
			if (!config_setting_is_array(s))
				return (conf_err(c, s, "security.exempt: must be "
				    "a list of addresses or networks"));
			for (i = 0; i < config_setting_length(s); i++) {
				const char *a =
				    config_setting_get_string_elem(s, i);

				if (a == NULL || acl_add(&gs->exempt, a, msg,
				    sizeof(msg)) == -1)
					return (conf_err(c, s, "security.exempt: "
					    "%s", a ? msg : "must be strings"));
			}
		}
	}
	gs->window_ms = (uint32_t)win;
	gs->max_requests = (unsigned)req;
	gs->ban_ms = (uint32_t)ban * 1000;
	gs->auth_failures = (unsigned)af;
	gs->auth_window_ms = (uint32_t)aw * 1000;
	gs->max_sources = (unsigned)maxs;
	gs->call_rate = (unsigned)cr;
	cf->proxy.max_transactions = (unsigned)maxt;
	if ((rc = regcomp(&gs->scanner_re, ua, REG_EXTENDED | REG_ICASE |
	    REG_NOSUB)) != 0) {
		regerror(rc, &gs->scanner_re, msg, sizeof(msg));
		return (conf_err(c, g ? config_setting_get_member(g,
		    "scanner_user_agents") : NULL,
		    "security.scanner_user_agents: %s", msg));
	}
	gs->scanner_src = xstrdup(ua);
	return (0);
}

int
conf_load(const char *path, struct conf *cf, char *err, size_t errlen)
{
	static const char *const keys[] = { "listen", "domains", "relay",
	    "record_route", "timers", "routes", "failure_routes", "probe",
	    "dns", "metrics", "control", "shutdown_grace", "max_message_size",
	    "log_level", "registrar", "auth", "security", NULL };
	struct ctx		 c = { path, err, errlen };
	config_t		 cfg;
	const config_setting_t	*root;
	const char		*lvl = NULL;
	long long		 maxsz = 65535, grace = 5000;
	char			 msg[256];
	int			 rc = -1, line = 0;

	memset(cf, 0, sizeof(*cf));
	cf->proxy.record_route = true;
	cf->log_level = LOG_LVL_INFO;
	config_init(&cfg);
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot read the file", path);
		else
			snprintf(err, errlen, "%s:%d: %s",
			    config_error_file(&cfg) ? config_error_file(&cfg) :
			    path, config_error_line(&cfg),
			    config_error_text(&cfg));
		goto fail;
	}
	root = config_root_setting(&cfg);
	if (check_keys(&c, root, "", keys) == -1 ||
	    load_listen(&c, root, cf) == -1 ||
	    load_domains(&c, root, cf) == -1 ||
	    get_bool(&c, root, "", "relay", &cf->proxy.relay) == -1 ||
	    get_bool(&c, root, "", "record_route", &cf->proxy.record_route) == -1 ||
	    load_timers(&c, root, cf) == -1 ||
	    load_routes(&c, root, cf, "routes", true) == -1 ||
	    load_routes(&c, root, cf, "failure_routes", false) == -1 ||
	    load_probe(&c, root, cf) == -1 ||
	    load_dns(&c, root, cf) == -1 ||
	    load_metrics(&c, root, cf) == -1 ||
	    load_control(&c, root, cf) == -1 ||
	    load_registrar(&c, root, cf) == -1 ||
	    load_auth(&c, root, cf) == -1 ||
	    load_security(&c, root, cf) == -1 ||
	    get_int(&c, root, "", "shutdown_grace", 0, 600000, &grace) == -1 ||
	    get_int(&c, root, "", "max_message_size", 1024, 65535, &maxsz) == -1 ||
	    get_str(&c, root, "", "log_level", &lvl) == -1)
		goto fail;
	cf->proxy.max_message_size = (size_t)maxsz;
	cf->shutdown_grace_ms = (uint32_t)grace;
	if (route_link(&cf->proxy.routes, &line, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s:%d: %s", path, line, msg);
		goto fail;
	}
	if (lvl != NULL && (cf->log_level = log_level_parse(lvl)) == -1) {
		conf_err(&c, config_setting_get_member(root, "log_level"),
		    "log_level: \"%s\" is not one of error, warning, notice, "
		    "info, debug", lvl);
		goto fail;
	}
	rc = 0;
fail:
	config_destroy(&cfg);
	if (rc == -1)
		conf_free(cf);
	return (rc);
}

void
conf_free(struct conf *cf)
{
	unsigned	i;

	for (i = 0; i < cf->nlisten; i++) {
		free(cf->listen[i].transport);
		free(cf->listen[i].address);
	}
	cf->nlisten = 0;
	for (i = 0; i < cf->proxy.ndomains; i++)
		free(cf->proxy.domains[i]);
	free(cf->proxy.domains);
	cf->proxy.domains = NULL;
	cf->proxy.ndomains = 0;
	route_table_free(&cf->proxy.routes);
	free(cf->metrics_address);
	cf->metrics_address = NULL;
	free(cf->ctl.socket);
	cf->ctl.socket = NULL;
	registrar_settings_cleanup(&cf->reg);
	auth_settings_cleanup(&cf->auth);
	auth_users_free(cf->users);
	cf->users = NULL;
	guard_settings_cleanup(&cf->guard);
}

/* The config as understood, for ospreyd -t -v. */
void
conf_print(const struct conf *cf, FILE *fp)
{
	unsigned	i, j;

	for (i = 0; i < cf->nlisten; i++)
		fprintf(fp, "listen %s %s port %u\n", cf->listen[i].transport,
		    cf->listen[i].address, cf->listen[i].port);
	for (i = 0; i < cf->proxy.ndomains; i++)
		fprintf(fp, "domain %s\n", cf->proxy.domains[i]);
	fprintf(fp, "relay %s\nrecord_route %s\n", cf->proxy.relay ? "yes" :
	    "no", cf->proxy.record_route ? "yes" : "no");
	fprintf(fp, "timers t1=%u t2=%u t4=%u c=%u d=%u cancel=%u\n",
	    cf->txn.t1_ms, cf->txn.t2_ms, cf->txn.t4_ms, cf->txn.c_ms,
	    cf->txn.d_ms, cf->proxy.cancel_ms);
	for (i = 0; i < cf->proxy.routes.n; i++) {
		const struct route	*r = cf->proxy.routes.r[i];
		char			 codes[256];

		fprintf(fp, "%s %s user=%s domain=%s fork=%s balance=%s",
		    r->matchable ? "route" : "failure_route",
		    r->name ? r->name : "-", r->user_src ? r->user_src : "*",
		    r->domain_src ? r->domain_src : "*",
		    route_fork_name(r->fork), route_balance_name(r->balance));
		codeset_print(&r->failover, codes, sizeof(codes));
		fprintf(fp, " failover=[%s]", codes);
		if (r->recurse)
			fprintf(fp, " recurse=%u", r->max_redirects);
		if (r->probe)
			fprintf(fp, " probe");
		if (r->public)
			fprintf(fp, " public");
		fprintf(fp, "\n");
		for (j = 0; j < r->ntargets; j++) {
			fprintf(fp, "  target %s", r->targets[j].uri);
			if (r->targets[j].timeout_ms)
				fprintf(fp, " timeout=%u",
				    r->targets[j].timeout_ms);
			if (r->targets[j].weight != 1)
				fprintf(fp, " weight=%u",
				    r->targets[j].weight);
			fprintf(fp, "\n");
		}
		for (j = 0; j < r->nfailure; j++) {
			codeset_print(&r->on_failure[j].codes, codes,
			    sizeof(codes));
			fprintf(fp, "  on_failure [%s] -> %s\n", codes,
			    r->on_failure[j].route_name);
		}
	}
	fprintf(fp, "probe interval=%u timeout=%u failures=%u\n",
	    cf->proxy.probe_interval_ms, cf->proxy.probe_timeout_ms,
	    cf->proxy.probe_failures);
	for (i = 0; i < cf->dns.nns; i++) {
		char	ip[INET6_ADDRSTRLEN];

		tp_addr_ip(&cf->dns.ns[i], ip, sizeof(ip));
		fprintf(fp, "dns nameserver %s port %u\n", ip,
		    tp_addr_port(&cf->dns.ns[i]));
	}
	fprintf(fp, "dns timeout %u\n", cf->dns.timeout_ms);
	if (cf->metrics_address != NULL)
		fprintf(fp, "metrics %s port %u\n", cf->metrics_address,
		    cf->metrics_port);
	fprintf(fp, "control %s mode %04o\n", cf->ctl.socket ? cf->ctl.socket :
	    "off", (unsigned)cf->ctl.mode);
	if (cf->reg.enabled)
		fprintf(fp, "registrar expires=%u..%u default=%u "
		    "max_contacts=%u max_per_source=%u database=%s\n",
		    cf->reg.min_expires_s, cf->reg.max_expires_s,
		    cf->reg.default_expires_s, cf->reg.max_contacts,
		    cf->reg.max_per_source, cf->reg.database ?
		    cf->reg.database : "(memory)");
	else
		fprintf(fp, "registrar off\n");
	if (cf->auth.users_file != NULL) {
		fprintf(fp, "auth users=%s (%u) nonce_expiry=%u algorithms=%s\n",
		    cf->auth.users_file, auth_users_count(cf->users),
		    cf->auth.nonce_expiry_s, cf->auth.algorithms ==
		    (AUTH_MD5 | AUTH_SHA256) ? (cf->auth.sha256_first ?
		    "SHA-256,MD5" : "MD5,SHA-256") : cf->auth.algorithms ==
		    AUTH_MD5 ? "MD5" : "SHA-256");
	} else
		fprintf(fp, "auth off\n");
	for (i = 0; i < cf->auth.trusted.n; i++) {
		char	net[INET6_ADDRSTRLEN + 8];

		acl_format(&cf->auth.trusted.net[i], net, sizeof(net));
		fprintf(fp, "trusted %s\n", net);
	}
	if (cf->guard.window_ms > 0)
		fprintf(fp, "rate_limit %u requests per %u ms, ban %u s\n",
		    cf->guard.max_requests, cf->guard.window_ms,
		    cf->guard.ban_ms / 1000);
	else
		fprintf(fp, "rate_limit off\n");
	if (cf->guard.auth_failures > 0)
		fprintf(fp, "auth_failures %u in %u s, then ban\n",
		    cf->guard.auth_failures, cf->guard.auth_window_ms / 1000);
	for (i = 0; i < cf->guard.exempt.n; i++) {
		char	net[INET6_ADDRSTRLEN + 8];

		acl_format(&cf->guard.exempt.net[i], net, sizeof(net));
		fprintf(fp, "exempt %s\n", net);
	}
	fprintf(fp, "scanners %s\n", cf->guard.scanners ?
	    cf->guard.scanner_src : "off");
	fprintf(fp, "max_transactions %u\n", cf->proxy.max_transactions);
	if (cf->guard.call_rate > 0)
		fprintf(fp, "call_rate %u per second\n", cf->guard.call_rate);
	fprintf(fp, "shutdown_grace %u\n", cf->shutdown_grace_ms);
	fprintf(fp, "max_message_size %zu\nlog_level %s\n",
	    cf->proxy.max_message_size, log_level_name(cf->log_level));
}
