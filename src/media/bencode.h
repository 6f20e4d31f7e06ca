#ifndef OSPREY_BENCODE_H
#define OSPREY_BENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * Bencode (BitTorrent's encoding; rtpengine's "ng" control protocol):
 * integers i42e, byte strings 4:spam, lists l...e, dictionaries d...e with
 * byte-string keys.
 *
 * The encoder appends to a struct buf.  The decoder is strict, for replies
 * that come from the network: it never reads past the end, bounds the
 * depth, the number of values and the length, and rejects every malformed
 * input with a reason (leading zeros, "-0", an integer that overflows, a
 * string longer than the rest, a key that is not a string, bytes after
 * the value).  Dictionary keys need not be sorted (rtpengine does not sort
 * them); a key given twice is an error.
 */

#define BENCODE_MAX_DEPTH	32
#define BENCODE_MAX_VALUES	4096
#define BENCODE_MAX_LEN		65536

enum bencode_type {
	BENCODE_INT,
	BENCODE_STR,
	BENCODE_LIST,
	BENCODE_DICT,
};

/*
 * A decoded value.  The values of a document are in one array in the order
 * they appear: a container's first child follows it, and a child's next
 * sibling is at its end.  A dictionary's children alternate key and value.
 */
struct bencode {
	enum bencode_type	 type;
	uint32_t		 end;	/* index just past this value's subtree */
	uint32_t		 n;	/* list: items; dict: pairs */
	long long		 i;	/* BENCODE_INT */
	struct slice		 s;	/* BENCODE_STR: into the input */
};

/* Owned by the caller; the strings point into the input it decoded. */
struct bencode_doc {
	struct bencode	*v;	/* owned; v[0] is the top value */
	uint32_t	 n;
	uint32_t	 cap;
};

int		 bencode_decode(struct bencode_doc *, const char *, size_t,
		     char *, size_t);
void		 bencode_doc_free(struct bencode_doc *);
const struct bencode *bencode_root(const struct bencode_doc *);
/* The first child of a list or dictionary (NULL when empty), the next. */
const struct bencode *bencode_child(const struct bencode_doc *,
		     const struct bencode *);
const struct bencode *bencode_next(const struct bencode_doc *,
		     const struct bencode *, const struct bencode *parent);
/* A dictionary's value under key, or NULL. */
const struct bencode *bencode_get(const struct bencode_doc *,
		     const struct bencode *, const char *);
/* The string under key, or false when absent or not a string. */
bool		 bencode_get_str(const struct bencode_doc *,
		     const struct bencode *, const char *, struct slice *);

/* The encoder: a container is opened, filled and closed with 'e'. */
void		 bencode_add_str(struct buf *, const char *, size_t);
void		 bencode_add_cstr(struct buf *, const char *);
void		 bencode_add_int(struct buf *, long long);
void		 bencode_open_dict(struct buf *);
void		 bencode_open_list(struct buf *);
void		 bencode_close(struct buf *);

#endif
