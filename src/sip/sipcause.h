#ifndef OSPREY_SIPCAUSE_H
#define OSPREY_SIPCAUSE_H

#include <stdbool.h>
#include <stddef.h>

int		 sip_cause(int code);		/* Q.850 cause of a SIP code */
const char	*sip_cause_name(int q850);
int		 sip_cause_by_name(const char *);	/* -1 if unknown */
int		 sip_cause_code(int q850);	/* the SIP code for a cause */

/* A set of failure codes from the config: codes, classes and causes. */
#define CODESET_MAX	32

enum codeset_kind {
	CS_CODE,
	CS_CLASS,
	CS_CAUSE,
};

struct codeset {
	struct {
		enum codeset_kind	 kind;
		int			 value;
	}		 item[CODESET_MAX];
	unsigned	 n;
};

int	codeset_add(struct codeset *, const char *, char *, size_t);
bool	codeset_match(const struct codeset *, int);
void	codeset_print(const struct codeset *, char *, size_t);

#endif
