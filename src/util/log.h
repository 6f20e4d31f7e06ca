#ifndef OSPREY_LOG_H
#define OSPREY_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LVL_ERR,
	LOG_LVL_WARNING,
	LOG_LVL_NOTICE,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

#define PRINTFLIKE(a, b) __attribute__((format(printf, a, b)))

void	log_init(bool to_stderr, enum log_level);
void	log_set_level(enum log_level);
int	log_level_parse(const char *);		/* -1 if unknown */
const char *log_level_name(enum log_level);
bool	log_enabled(enum log_level);

void	log_warn(const char *, ...) PRINTFLIKE(1, 2);	/* adds errno */
void	log_warnx(const char *, ...) PRINTFLIKE(1, 2);
void	log_notice(const char *, ...) PRINTFLIKE(1, 2);
/* Start and stop lines: written at notice priority whatever the level. */
void	log_always(const char *, ...) PRINTFLIKE(1, 2);
void	log_info(const char *, ...) PRINTFLIKE(1, 2);
void	log_debug(const char *, ...) PRINTFLIKE(1, 2);
/* Warnings caused by peers: rate limited, so a flood cannot fill a disk. */
void	log_peer(const char *, ...) PRINTFLIKE(1, 2);
void	fatal(const char *, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));
void	fatalx(const char *, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));

/* Arguments are not even computed when the level is off. */
#define log_debug(...) do {						\
	if (log_enabled(LOG_LVL_DEBUG))					\
		(log_debug)(__VA_ARGS__);				\
} while (0)
#define log_info(...) do {						\
	if (log_enabled(LOG_LVL_INFO))					\
		(log_info)(__VA_ARGS__);				\
} while (0)

#endif
