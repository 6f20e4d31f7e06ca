#ifndef OSPREY_CLUSTER_H
#define OSPREY_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redis_settings;

/*
 * The one secret the nodes of a cluster share through Redis
 * (osprey:cluster:secret, 64 hex digits), read whenever any feature uses
 * Redis (registrar.backend, dialog.backend).  The main loop's own
 * connection sends SET NX GET on every connection up (start, reconnect):
 * the first node draws it, every node reads it, and a node that knows one
 * writes that one back if Redis lost it.  Each purpose has its own key,
 * HMAC-SHA256(secret, label); the keys are read by any thread (a mutex),
 * with a generation that changes whenever the secret does.
 */
#define CLUSTER_SECRET_KEY	"osprey:cluster:secret"
#define CLUSTER_KEY_LEN		32

enum cluster_purpose {
	CLUSTER_NONCE,		/* digest nonces (auth) */
	CLUSTER_DIALOG_STAMP,	/* the dialog stamps in our Record-Route */
	CLUSTER_PATH_TOKEN,	/* the path tokens of via-node routes */
	CLUSTER_NPURPOSES
};

/* After each read of the secret, on the main loop; changed: a new one. */
typedef void cluster_fn(bool changed);

int	 cluster_start(struct event_base *, const struct redis_settings *,
	    char *, size_t);
void	 cluster_stop(void);
int	 cluster_watch(cluster_fn *);
bool	 cluster_key(enum cluster_purpose, uint8_t[CLUSTER_KEY_LEN],
	    uint32_t *);
uint32_t cluster_gen(void);
const char *cluster_label(enum cluster_purpose);

/* The steps, exposed for the unit tests. */
int	 cluster_adopt(const char *, size_t);
void	 cluster_forget(void);

#endif
