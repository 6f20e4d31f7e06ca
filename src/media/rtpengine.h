#ifndef OSPREY_RTPENGINE_H
#define OSPREY_RTPENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "bencode.h"
#include "buf.h"
#include "tp.h"

/*
 * The rtpengine "ng" control client: bencoded dictionaries over UDP, each
 * datagram "COOKIE SP DICT", the reply carrying the same cookie (rtpengine
 * answers a retransmission from its cache).  Each worker loop has its own
 * socket (one per address family in use) and its own requests in flight;
 * the instances' health is shared by all workers (atomics).  Nothing here
 * blocks: rtpengine_send() queues, the answer comes to a callback.
 *
 * Who calls it: the proxy (proxy_media.c: offer with the INVITE's SDP,
 * answer with the 183/2xx's, delete when the call ends); the tests; the
 * prober of worker 0.
 */

#define RTPE_MAX_INSTANCES	16
#define RTPE_TAG_MAX		128	/* a To tag noted per call */

/* media.relay and media.on_failure, in the order of their names. */
enum media_relay {
	MEDIA_RELAY_NEVER,
	MEDIA_RELAY_NAT,
	MEDIA_RELAY_ALWAYS,
};

enum media_on_failure {
	MEDIA_FAIL_RELAY_NONE,	/* the call goes on without the relay */
	MEDIA_FAIL_503,
};

/* media.ice: rtpengine's "ICE" values, in the order of their names. */
enum media_ice {
	MEDIA_ICE_REMOVE,	/* ICE attributes stripped */
	MEDIA_ICE_FORCE,	/* stripped, rtpengine the only candidate */
	MEDIA_ICE_DEFAULT,	/* force if the SDP had ICE, else none */
	MEDIA_ICE_FORCE_RELAY,	/* theirs kept, rtpengine a relay one */
	MEDIA_ICE_OPTIONAL,	/* rtpengine a low-priority candidate */
};

struct rtpe_instance_conf {
	char		*uri;		/* owned: "udp:127.0.0.1:2223" */
	struct tp_addr	 addr;
	unsigned	 weight;	/* 1..1000; 0: never for new calls */
};

/* The media section of the config (conf.c fills it). */
struct media_settings {
	int			 relay;		/* enum media_relay */
	int			 on_failure;	/* enum media_on_failure */
	int			 ice;		/* enum media_ice */
	struct rtpe_instance_conf inst[RTPE_MAX_INSTANCES];
	unsigned		 ninst;
	uint32_t		 timeout_ms;	/* per try */
	unsigned		 tries;		/* per instance */
	uint32_t		 probe_interval_ms;
};

enum rtpe_cmd {
	RTPE_PING,
	RTPE_OFFER,
	RTPE_ANSWER,
	RTPE_DELETE,
	RTPE_QUERY,
};

/* Flags of a request (rtpengine's names in the comments). */
#define RTPE_TRUST_ADDRESS	0x0001	/* "trust-address" */
#define RTPE_SIP_SOURCE		0x0002	/* "SIP-source-address" */
#define RTPE_REPLACE_ORIGIN	0x0004	/* replace: "origin" */
#define RTPE_REPLACE_SESS_CONN	0x0008	/* replace: "session-connection" */
#define RTPE_ICE_REMOVE		0x0010	/* ICE: "remove" */
#define RTPE_ICE_FORCE		0x0020	/* ICE: "force" */
#define RTPE_SYMMETRIC		0x0040	/* "symmetric" */
#define RTPE_FATAL		0x0080	/* delete: unknown call is an error */
#define RTPE_ICE_DEFAULT	0x0100	/* ICE: "default" */
#define RTPE_ICE_FORCE_RELAY	0x0200	/* ICE: "force-relay" */
#define RTPE_ICE_OPTIONAL	0x0400	/* ICE: "optional" */
#define RTPE_ICE_MASK		(RTPE_ICE_REMOVE | RTPE_ICE_FORCE | \
				    RTPE_ICE_DEFAULT | RTPE_ICE_FORCE_RELAY | \
				    RTPE_ICE_OPTIONAL)

/* What the proxy notes of a call (rtpengine_call_mark()). */
#define RTPE_MARK_PENDING	0x01	/* an offer of the callee's (a late
					   offer's 1xx or 2xx) waits for the
					   caller's answer */

/* What to ask; every slice and string is copied by rtpengine_send(). */
struct rtpe_request {
	enum rtpe_cmd	 cmd;
	struct slice	 callid;	/* all but ping */
	struct slice	 from_tag;	/* offer, answer, delete */
	struct slice	 to_tag;	/* answer; optional elsewhere */
	struct slice	 via_branch;	/* optional */
	struct slice	 sdp;		/* offer, answer */
	struct slice	 received_from;	/* the SIP source IP; optional */
	unsigned	 flags;		/* RTPE_* */
	const char	*direction[2];	/* interface names; NULL: none */
	const char	*transport;	/* "transport-protocol"; NULL: keep */
	int		 instance;	/* ping: which one (0..n-1) */
};

enum rtpe_status {
	RTPE_OK,		/* answered "ok" or "pong" */
	RTPE_ERROR,		/* answered "error": reason says why */
	RTPE_TIMEOUT,		/* no answer from the instance(s) */
	RTPE_DOWN,		/* no instance up to ask: said at once */
	RTPE_BAD_REPLY,		/* an answer that is not a valid reply */
};

/* Borrowed: lives for the callback only. */
struct rtpe_result {
	enum rtpe_status	 status;
	const char		*why;		/* for a log line; never NULL */
	struct slice		 reason;	/* error-reason or warning */
	struct slice		 sdp;		/* offer, answer: the new SDP */
	const struct bencode_doc *doc;		/* the reply; NULL: none */
	const struct bencode	*reply;		/* its dictionary */
	int			 instance;	/* asked last; -1: none */
	const char		*uri;		/* its uri; "-": none */
};

struct rtpe_req;
typedef void rtpe_done_fn(void *, const struct rtpe_result *);

struct rtpe_stats {
	uint64_t	requests;	/* sent, not counting retransmissions */
	uint64_t	retransmissions;
	uint64_t	timeouts;	/* an instance gave no answer */
	uint64_t	errors;		/* "error" and invalid replies */
	uint64_t	down;		/* requests refused at once: all down */
};

int		 rtpengine_parse_uri(const char *, struct tp_addr *, char *,
		     size_t);
int		 rtpengine_configure(const struct media_settings *, char *,
		     size_t);
void		 rtpengine_set_timing(const struct media_settings *);
bool		 rtpengine_same_instances(const struct media_settings *);
bool		 rtpengine_enabled(void);
enum media_relay rtpengine_relay(void);
enum media_on_failure rtpengine_on_failure(void);
unsigned	 rtpengine_ice_flag(void);
const char	*rtpengine_ice_name(enum media_ice);
int		 rtpengine_start(struct event_base *, bool prober, char *,
		     size_t);
void		 rtpengine_stop(void);
struct rtpe_req	*rtpengine_send(const struct rtpe_request *, rtpe_done_fn *,
		     void *, char *, size_t);
void		 rtpengine_cancel(struct rtpe_req *);
unsigned	 rtpengine_order(struct slice, unsigned *);
void		 rtpengine_call_mark(struct slice, unsigned, unsigned);
unsigned	 rtpengine_call_marks(struct slice);
bool		 rtpengine_call_answered(struct slice, struct slice);
int		 rtpengine_call_is_answered(struct slice, struct slice);
unsigned	 rtpengine_count(void);
const char	*rtpengine_uri(unsigned);
bool		 rtpengine_is_up(unsigned);
void		 rtpengine_stats(struct rtpe_stats *);
const char	*rtpengine_cmd_name(enum rtpe_cmd);
const char	*rtpengine_status_name(enum rtpe_status);

#endif
