/*
 * The config file (libconfig syntax) into struct conf.  Every error names
 * the file and the line: "osprey.conf:12: timers.t1: must be 1..60000".
 */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

static int
load_routes(struct ctx *c, const config_setting_t *root, struct conf *cf)
{
	static const char *const keys[] = { "user", "domain", "targets", NULL };
	const config_setting_t	*rs = config_setting_get_member(root, "routes");
	char			 msg[256];
	int			 i, j;

	if (rs == NULL)
		return (0);
	if (!config_setting_is_list(rs))
		return (conf_err(c, rs, "routes: must be a list ( { ... } )"));
	for (i = 0; i < config_setting_length(rs); i++) {
		const config_setting_t	*e = config_setting_get_elem(rs, i);
		const config_setting_t	*ts;
		const char		*user = NULL, *domain = NULL;
		struct route		*r;

		if (!config_setting_is_group(e))
			return (conf_err(c, e, "routes: each entry is a group "
			    "{ user = ...; targets = [ ... ]; }"));
		if (check_keys(c, e, "routes", keys) == -1 ||
		    get_str(c, e, "routes.", "user", &user) == -1 ||
		    get_str(c, e, "routes.", "domain", &domain) == -1)
			return (-1);
		ts = config_setting_get_member(e, "targets");
		if (ts == NULL)
			return (conf_err(c, e, "routes.targets: required"));
		if ((!config_setting_is_array(ts) &&
		    !config_setting_is_list(ts)) ||
		    config_setting_length(ts) == 0)
			return (conf_err(c, ts, "routes.targets: must be a "
			    "non-empty list of SIP URIs"));
		r = route_add(&cf->proxy.routes, user, domain,
		    config_setting_source_line(e), msg, sizeof(msg));
		if (r == NULL)
			return (conf_err(c, e, "routes: %s", msg));
		for (j = 0; j < config_setting_length(ts); j++) {
			const config_setting_t	*t = config_setting_get_elem(ts,
			    j);

			if (config_setting_type(t) != CONFIG_TYPE_STRING)
				return (conf_err(c, t, "routes.targets: must "
				    "be strings"));
			if (route_add_target(r, config_setting_get_string(t),
			    msg, sizeof(msg)) == -1)
				return (conf_err(c, t, "routes.targets: %s",
				    msg));
		}
	}
	return (0);
}

int
conf_load(const char *path, struct conf *cf, char *err, size_t errlen)
{
	static const char *const keys[] = { "listen", "domains", "relay",
	    "record_route", "timers", "routes", "max_message_size",
	    "log_level", NULL };
	struct ctx		 c = { path, err, errlen };
	config_t		 cfg;
	const config_setting_t	*root;
	const char		*lvl = NULL;
	long long		 maxsz = 65535;
	int			 rc = -1;

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
	    load_routes(&c, root, cf) == -1 ||
	    get_int(&c, root, "", "max_message_size", 1024, 65535, &maxsz) == -1 ||
	    get_str(&c, root, "", "log_level", &lvl) == -1)
		goto fail;
	cf->proxy.max_message_size = (size_t)maxsz;
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
		const struct route	*r = &cf->proxy.routes.r[i];

		fprintf(fp, "route user=%s domain=%s ->",
		    r->user_src ? r->user_src : "*",
		    r->domain_src ? r->domain_src : "*");
		for (j = 0; j < r->ntargets; j++)
			fprintf(fp, " %s", r->targets[j].uri);
		fprintf(fp, "\n");
	}
	fprintf(fp, "max_message_size %zu\nlog_level %s\n",
	    cf->proxy.max_message_size, log_level_name(cf->log_level));
}
