#ifndef OSPREY_REGISTRAR_H
#define OSPREY_REGISTRAR_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "sipmsg.h"
#include "tp.h"

struct event_base;

/* RFC 3261 section 10: REGISTER for our domains. */
struct registrar_settings {
	bool		 enabled;
	uint32_t	 min_expires_s;
	uint32_t	 max_expires_s;
	uint32_t	 default_expires_s;
	unsigned	 max_contacts;	/* per address-of-record */
	unsigned	 max_per_source;	/* bindings from one address */
	char		*database;	/* owned; NULL: memory only */
};

#define REG_AOR_LEN	512

int	registrar_init(struct event_base *, const char *, char *, size_t);
void	registrar_set(const struct registrar_settings *);
void	registrar_shutdown(void);
bool	registrar_enabled(void);
int	registrar_aor(struct slice, struct slice, char *, size_t);
int	registrar_register(const struct sipmsg *, struct slice,
	    const struct tp_sock *, const struct tp_addr *, bool, struct buf *,
	    char *, size_t);
void	registrar_settings_cleanup(struct registrar_settings *);

#endif
