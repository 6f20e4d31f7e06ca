#ifndef OSPREY_REGISTRAR_H
#define OSPREY_REGISTRAR_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "location.h"
#include "sipmsg.h"
#include "tp.h"

struct event_base;
struct redis_settings;

/* Where the location service lives (registrar.backend). */
enum registrar_backend {
	REG_BACKEND_SQLITE,	/* this node; database, if set, on disk */
	REG_BACKEND_REDIS,	/* shared through Redis (locredis.c) */
};

/*
 * The end of a REGISTER answered later (backend redis): the status, its
 * reason phrase (NULL: the standard one) and header lines; borrowed.
 */
typedef void registrar_done_fn(void *, int, const char *, const char *);

/* RFC 3261 section 10: REGISTER for our domains. */
struct registrar_settings {
	bool		 enabled;
	uint32_t	 min_expires_s;
	uint32_t	 max_expires_s;
	uint32_t	 default_expires_s;
	unsigned	 max_contacts;	/* per address-of-record */
	unsigned	 max_per_source;	/* bindings from one address */
	char		*database;	/* owned; NULL: memory only */
	int		 backend;	/* enum registrar_backend */
};

/* Retry-After of a REGISTER that could not be stored (backend redis). */
#define REG_RETRY_AFTER_S	5

#define REG_AOR_LEN	512
#define REG_MAX_VALUES	64	/* Contact values in one REGISTER */

/* One Contact value of a REGISTER, judged; points into the request. */
struct reg_contact {
	struct binding_info	 bi;
	struct binding		*old;		/* the binding it names */
	bool			 remove;	/* expires 0 */
};

/* What a REGISTER asks for, judged before anything changes. */
struct reg_plan {
	struct reg_contact	 c[REG_MAX_VALUES];
	unsigned		 n;
	unsigned		 added;		/* new bindings */
	unsigned		 removed;	/* existing ones removed */
	uint32_t		 hdr_expires;	/* Expires, else the default */
	bool			 star;		/* Contact: *, remove all */
	bool			 brief;		/* one below min_expires */
	struct slice		 path;		/* Path values, joined */
	struct buf		 pathbuf;	/* holds path */
	char			 pathstore[1024];
};

int	registrar_init(struct event_base *, const char *, char *, size_t);
int	registrar_share(struct event_base *, const struct redis_settings *,
	    char *, size_t);
bool	registrar_shared(void);
void	registrar_unshare(void);
bool	registrar_share_changed(const struct redis_settings *);
void	registrar_set(const struct registrar_settings *);
void	registrar_shutdown(void);
bool	registrar_enabled(void);
int	registrar_aor(struct slice, struct slice, char *, size_t);
int	registrar_register(const struct sipmsg *, struct slice,
	    const struct tp_sock *, const struct tp_addr *, bool, struct buf *,
	    char *, size_t);
int	registrar_register_async(const struct sipmsg *, struct slice,
	    const struct tp_sock *, const struct tp_addr *, bool, struct buf *,
	    char *, size_t, registrar_done_fn *, void *);
void	registrar_settings_cleanup(struct registrar_settings *);

/* The steps of registrar_register(), exposed for the unit tests. */
int	registrar_contact_parse(struct slice, uint32_t, struct binding_info *,
	    char *, size_t);
int	registrar_plan(const struct sipmsg *, struct slice,
	    const struct tp_sock *, const struct tp_addr *, struct reg_plan *,
	    char *, size_t);
void	registrar_plan_cleanup(struct reg_plan *);
int	registrar_admit(const struct reg_plan *, struct slice,
	    const struct tp_addr *, bool, struct buf *, char *, size_t);
void	registrar_apply(const struct reg_plan *, struct slice);
void	registrar_answer(const struct sipmsg *, struct slice,
	    const struct reg_plan *, struct buf *);

#endif
