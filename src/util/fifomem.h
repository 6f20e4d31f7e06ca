#ifndef OSPREY_FIFOMEM_H
#define OSPREY_FIFOMEM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Memory for objects freed in about the order they were allocated (the
 * transaction records, which end on FIFO lists): 2 MiB chunks of their own
 * mapping, aligned to their size and asked for as huge pages, handed out
 * front to back.  A chunk counts what it holds; when the last of it is
 * freed it is kept as the spare, the next chunk to fill, if there is none
 * and other chunks still hold objects, and unmapped otherwise: memory goes
 * back to the system as the oldest objects end, and at a steady rate no
 * chunk is mapped (and zeroed) afresh.  When the last object of all goes,
 * so does the spare.  One fifomem belongs to one thread; it must not move
 * while it has chunks (they point to it).
 */
#define FIFOMEM_CHUNK	((size_t)2 << 20)
#define FIFOMEM_MAX	(FIFOMEM_CHUNK / 8)	/* larger: NULL */

struct fifomem_chunk;

struct fifomem {
	struct fifomem_chunk	*cur;		/* handing out from */
	struct fifomem_chunk	*spare;		/* empty, for the next */
	size_t			 chunks;	/* mapped, the spare too */
};

void	*fifomem_alloc(struct fifomem *, size_t);
void	 fifomem_free(void *);

#endif
