#ifndef OSPREY_SIPBUILD_H
#define OSPREY_SIPBUILD_H

#include <stdint.h>

#include "buf.h"
#include "sipmsg.h"

/* How a request is forwarded (RFC 3261 16.6). Borrowed pointers. */
struct fwd {
	struct slice	 ruri;
	const char	*via;		/* our Via value, with its branch */
	const char	*rr;		/* our Record-Route value, or NULL */
	const char	*path;		/* our Path value (RFC 3327), or NULL */
	struct slice	 topvia;	/* the sender's Via with received/rport */
	const struct slice *routes;	/* the Route set to send */
	unsigned	 nroutes;
	int		 max_forwards;
	const char	*extra;		/* more header lines, or NULL */
	const bool	*drop;		/* per header line of m: left out */
};

void	sipbuild_vias(const struct sipmsg *, const struct slice *,
	    struct buf *);
void	sipbuild_top_via(const struct sipmsg *, const char *, uint16_t,
	    struct buf *);
void	sipbuild_reply(const struct sipmsg *, int, const char *, const char *,
	    const struct slice *, const char *, struct buf *);
void	sipbuild_unsupported(const struct sipmsg *, struct buf *);
void	sipbuild_request(const struct sipmsg *, const struct fwd *,
	    struct buf *);
void	sipbuild_routes(const struct slice *, unsigned, struct buf *);
void	sipbuild_response(const struct sipmsg *, int, const char *,
	    struct buf *);
void	sipbuild_cancel(const struct sipmsg *, const char *, struct buf *);
int	sipbuild_ack(const struct sipmsg *, const struct sipmsg *,
	    struct buf *);

#endif
