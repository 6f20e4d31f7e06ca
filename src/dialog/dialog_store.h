#ifndef OSPREY_DIALOG_STORE_H
#define OSPREY_DIALOG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/*
 * The dialog store (dialog.database): confirmed dialogs in SQLite, so
 * that they outlive a restart.  Any worker queues its changes (under a
 * mutex, no SQLite on its loop); the main loop writes them every
 * DIALOG_COMMIT_MS in one transaction, as the registrar's store does.
 * A record is dialog.c's business: bytes under its key.
 */
#define DIALOG_COMMIT_MS	100

int	 dialog_store_open(struct event_base *, const char *, char *, size_t);
bool	 dialog_store_is_open(void);
void	 dialog_store_put(const char *key, size_t klen, const void *rec,
	    size_t len);
void	 dialog_store_del(const char *key, size_t klen);
int	 dialog_store_load(void (*)(void *, const void *, size_t), void *);
void	 dialog_store_secret(uint8_t out[32]);
void	 dialog_store_flush(void);
void	 dialog_store_close(void);

#endif
