/*
 * A RESP peer for the unit tests: it listens on loopback and answers what
 * the test's handler says, so that a test can choose the order of replies
 * and pushes on two connections (what a real Redis leaves to chance), or
 * answer as a Redis of another version does.
 */
#ifndef OSPREY_RESP_PEER_H
#define OSPREY_RESP_PEER_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis.h>

struct event_base;
struct resp_peer;
struct resp_conn;

/* A command (an array of strings) from a client on conn. */
typedef void resp_cmd_fn(struct resp_conn *, const redisReply *, void *);

struct resp_peer *resp_peer_start(struct event_base *, resp_cmd_fn *,
	    void *, char *, size_t);
void	 resp_peer_free(struct resp_peer *);
void	 resp_send(struct resp_conn *, const char *, size_t);
void	 resp_sends(struct resp_conn *, const char *);
void	 resp_bulk(struct resp_conn *, const char *, size_t);
bool	 resp_arg_is(const redisReply *, size_t, const char *);
bool	 resp_loop_until(struct event_base *, bool (*)(void *), void *,
	    unsigned);

#endif
