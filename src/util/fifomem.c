/*
 * Chunks for objects that end oldest first.  Over malloc they save a
 * malloc and a free per object, and above all the page faults of a heap
 * that grows again after each busy spell was trimmed: a chunk is one huge
 * page where the kernel gives them on request (transparent_hugepage
 * "madvise" or "always"), one fault where 4 KiB pages take 512.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "fifomem.h"

struct fifomem_chunk {
	struct fifomem	*fm;
	uint32_t	 live;		/* objects not freed */
	uint32_t	 used;		/* bytes handed out, this header too */
};

#define FIFOMEM_ALIGN	16
#define FIFOMEM_HEAD	((sizeof(struct fifomem_chunk) + FIFOMEM_ALIGN - 1) & \
			    ~(size_t)(FIFOMEM_ALIGN - 1))

/* A chunk aligned to its size (so an object finds its chunk); NULL. */
static struct fifomem_chunk *
fifomem_map(struct fifomem *fm)
{
	size_t		 n = 2 * FIFOMEM_CHUNK, lead;
	char		*p, *c;

	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return (NULL);
	c = (char *)(((uintptr_t)p + FIFOMEM_CHUNK - 1) &
	    ~(uintptr_t)(FIFOMEM_CHUNK - 1));
	lead = (size_t)(c - p);
	if (lead > 0)
		munmap(p, lead);
	munmap(c + FIFOMEM_CHUNK, n - lead - FIFOMEM_CHUNK);
#ifdef MADV_HUGEPAGE
	madvise(c, FIFOMEM_CHUNK, MADV_HUGEPAGE);	/* a hint */
#endif
	fm->chunks++;
	((struct fifomem_chunk *)(void *)c)->fm = fm;
	return ((struct fifomem_chunk *)(void *)c);
}

static void
fifomem_unmap(struct fifomem_chunk *c)
{
	c->fm->chunks--;
	munmap(c, FIFOMEM_CHUNK);
}

/* c holds nothing now. */
static void
fifomem_empty(struct fifomem_chunk *c)
{
	struct fifomem	*fm = c->fm;

	if (fm->cur == c)
		fm->cur = NULL;
	if (fm->spare == NULL && fm->chunks > 1) {
		fm->spare = c;		/* others hold objects */
		return;
	}
	fifomem_unmap(c);
	if (fm->spare != NULL && fm->chunks == 1) {
		fifomem_unmap(fm->spare);	/* the last object went */
		fm->spare = NULL;
	}
}

/* n bytes, 16-aligned; NULL when n > FIFOMEM_MAX or no chunk is mapped. */
void *
fifomem_alloc(struct fifomem *fm, size_t n)
{
	struct fifomem_chunk	*c = fm->cur;
	void			*p;

	if (n > FIFOMEM_MAX)
		return (NULL);
	n = (n + FIFOMEM_ALIGN - 1) & ~(size_t)(FIFOMEM_ALIGN - 1);
	if (c == NULL || c->used + n > FIFOMEM_CHUNK) {
		/* A full one goes when its last object does. */
		if ((c = fm->spare) != NULL)
			fm->spare = NULL;
		else if ((c = fifomem_map(fm)) == NULL)
			return (NULL);
		c->live = 0;
		c->used = FIFOMEM_HEAD;
		fm->cur = c;
	}
	p = (char *)c + c->used;
	c->used += (uint32_t)n;
	c->live++;
	return (p);
}

/* p from fifomem_alloc(); its chunk empties with its last object. */
void
fifomem_free(void *p)
{
	struct fifomem_chunk	*c;

	if (p == NULL)
		return;
	c = (void *)((uintptr_t)p & ~(uintptr_t)(FIFOMEM_CHUNK - 1));
	if (--c->live == 0)
		fifomem_empty(c);
}
