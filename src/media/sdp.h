#ifndef OSPREY_SDP_H
#define OSPREY_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "sipmsg.h"

/*
 * SDP bodies (RFC 4566, RFC 3264): finding one in a SIP message, reading
 * what a media relay needs (the connection addresses, the media lines,
 * RTCP and ICE attributes), deciding whether an address is private, and
 * putting a new body into a message.  Everything read is a slice into the
 * body; nothing is copied.
 *
 * Only a body whose Content-Type is application/sdp counts.  A multipart
 * body (SDP beside ISUP or a PIDF, RFC 5621) is not taken apart: it is
 * reported as another type and relayed as it is.
 */

#define SDP_MAX_MEDIA	16

enum sdp_body_kind {
	SDP_BODY_NONE,		/* no body */
	SDP_BODY_SDP,		/* application/sdp */
	SDP_BODY_OTHER,		/* another type (multipart/mixed too) */
};

struct sdp_conn {
	struct slice	 addr;		/* empty: none given */
	uint8_t		 family;	/* 4, 6; 0: none */
	bool		 numeric;	/* an IP address, not a host name */
};

struct sdp_media {
	struct slice	 type;		/* "audio" */
	struct slice	 proto;		/* "RTP/AVP" */
	uint16_t	 port;		/* 0: rejected or disabled */
	uint16_t	 nports;	/* "port/n"; 1 when not given */
	struct sdp_conn	 conn;		/* its own c=; family 0: the session's */
	uint16_t	 rtcp_port;	/* a=rtcp; 0: none */
	struct sdp_conn	 rtcp_conn;	/* a=rtcp's address, if any */
	bool		 ice;		/* ice-ufrag, ice-pwd or candidate */
	bool		 rtcp_mux;
};

/* Slices into the body it was read from. */
struct sdp {
	struct sdp_conn	 origin;	/* o= */
	struct sdp_conn	 conn;		/* the session's c= */
	bool		 ice;		/* session-level ICE attributes */
	unsigned	 nmedia;
	struct sdp_media media[SDP_MAX_MEDIA];
};

enum sdp_body_kind sdp_body(const struct sipmsg *, struct slice *);
int		 sdp_parse(struct sdp *, struct slice, char *, size_t);
const struct sdp_conn *sdp_media_conn(const struct sdp *, unsigned);
bool		 sdp_addr_private(const struct sdp_conn *);
bool		 sdp_private(const struct sdp *);
bool		 sdp_has_ice(const struct sdp *);
int		 sdp_replace_body(const struct sipmsg *, struct slice,
		     struct buf *, char *, size_t);

#endif
