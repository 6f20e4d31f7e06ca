#ifndef OSPREY_METRICS_H
#define OSPREY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct evbuffer;
struct tp;

/*
 * The Prometheus endpoint (evhttp): GET /metrics in the text exposition
 * format 0.0.4.  Off unless configured.  The counters are read at each
 * scrape from the proxy, the transaction table and the gateway list; this
 * module owns only the HTTP server and the event-loop lag timer.
 */
int	metrics_start(struct event_base *, const char *, uint16_t, char *,
	    size_t);
void	metrics_stop(void);

/* The transport's UDP counters; tp is borrowed and must outlive metrics. */
void	metrics_set_tp(const struct tp *);

/* Append the whole exposition to out; also without metrics_start(). */
void	metrics_render(struct evbuffer *);

#endif
