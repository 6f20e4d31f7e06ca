/*
 * SIP response codes and the causes operators route on: ITU-T Q.850 cause
 * values with the names FreeSWITCH made familiar (USER_BUSY, NO_ANSWER ...).
 * One table serves the config (names), Reason headers and the logs.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sipcause.h"

/* Cause values and their names. */
static const struct {
	int		 q850;
	const char	*name;
	int		 code;		/* the SIP code a cause becomes */
} causes[] = {
	{ 1, "UNALLOCATED_NUMBER", 404 },
	{ 2, "NO_ROUTE_TRANSIT_NET", 404 },
	{ 3, "NO_ROUTE_DESTINATION", 404 },
	{ 16, "NORMAL_CLEARING", 200 },
	{ 17, "USER_BUSY", 486 },
	{ 18, "NO_USER_RESPONSE", 408 },
	{ 19, "NO_ANSWER", 480 },
	{ 20, "SUBSCRIBER_ABSENT", 480 },
	{ 21, "CALL_REJECTED", 603 },
	{ 22, "NUMBER_CHANGED", 410 },
	{ 25, "EXCHANGE_ROUTING_ERROR", 483 },
	{ 27, "DESTINATION_OUT_OF_ORDER", 502 },
	{ 28, "INVALID_NUMBER_FORMAT", 484 },
	{ 29, "FACILITY_REJECTED", 501 },
	{ 31, "NORMAL_UNSPECIFIED", 480 },
	{ 34, "NORMAL_CIRCUIT_CONGESTION", 503 },
	{ 38, "NETWORK_OUT_OF_ORDER", 502 },
	{ 41, "NORMAL_TEMPORARY_FAILURE", 503 },
	{ 42, "SWITCH_CONGESTION", 503 },
	{ 47, "RESOURCE_UNAVAILABLE", 503 },
	{ 55, "INCOMING_CALL_BARRED", 403 },
	{ 57, "BEARERCAPABILITY_NOTAUTH", 403 },
	{ 58, "BEARERCAPABILITY_NOTAVAIL", 503 },
	{ 63, "SERVICE_UNAVAILABLE", 405 },
	{ 65, "BEARERCAPABILITY_NOTIMPL", 488 },
	{ 79, "SERVICE_NOT_IMPLEMENTED", 501 },
	{ 88, "INCOMPATIBLE_DESTINATION", 488 },
	{ 102, "RECOVERY_ON_TIMER_EXPIRE", 504 },
	{ 111, "PROTOCOL_ERROR", 400 },
	{ 127, "INTERWORKING", 500 },
};

/*
 * The cause a SIP final response stands for (RFC 3398 8.2.6.1, with the
 * FreeSWITCH choices for 408 and 480 that operators know).
 */
static const struct {
	int	code;
	int	q850;
} code_cause[] = {
	{ 400, 41 }, { 401, 21 }, { 402, 21 }, { 403, 21 }, { 404, 1 },
	{ 405, 63 }, { 406, 79 }, { 407, 21 }, { 408, 18 }, { 410, 22 },
	{ 413, 127 }, { 414, 28 }, { 415, 79 }, { 416, 127 }, { 420, 127 },
	{ 421, 127 }, { 423, 127 }, { 480, 19 }, { 481, 41 }, { 482, 25 },
	{ 483, 25 }, { 484, 28 }, { 485, 1 }, { 486, 17 }, { 487, 16 },
	{ 488, 88 }, { 500, 41 }, { 501, 79 }, { 502, 38 }, { 503, 41 },
	{ 504, 102 }, { 505, 127 }, { 513, 127 }, { 600, 17 }, { 603, 21 },
	{ 604, 1 }, { 606, 88 }, { 607, 21 }, { 608, 21 },
};

int
sip_cause(int code)
{
	size_t	i;

	for (i = 0; i < sizeof(code_cause) / sizeof(code_cause[0]); i++)
		if (code_cause[i].code == code)
			return (code_cause[i].q850);
	switch (code / 100) {		/* unknown codes: by class */
	case 2: return (16);
	case 3: return (16);
	case 4: return (21);
	case 5: return (41);
	case 6: return (21);
	default: return (31);
	}
}

const char *
sip_cause_name(int q850)
{
	size_t	i;

	for (i = 0; i < sizeof(causes) / sizeof(causes[0]); i++)
		if (causes[i].q850 == q850)
			return (causes[i].name);
	return ("NORMAL_UNSPECIFIED");
}

int
sip_cause_by_name(const char *name)
{
	size_t	i;

	for (i = 0; i < sizeof(causes) / sizeof(causes[0]); i++)
		if (strcasecmp(causes[i].name, name) == 0)
			return (causes[i].q850);
	return (-1);
}

int
sip_cause_code(int q850)
{
	size_t	i;

	for (i = 0; i < sizeof(causes) / sizeof(causes[0]); i++)
		if (causes[i].q850 == q850)
			return (causes[i].code);
	return (500);
}

/*
 * One item of a code set from the config: 486, "486", "4xx", "USER_BUSY",
 * or "Q.850:17".  Returns 0, or -1 with err filled.
 */
int
codeset_add(struct codeset *cs, const char *item, char *err, size_t errlen)
{
	size_t		 len = strlen(item);
	unsigned long	 n;
	char		*end;
	int		 q;

	if (cs->n == CODESET_MAX) {
		snprintf(err, errlen, "too many codes (at most %d)",
		    CODESET_MAX);
		return (-1);
	}
	if (len == 3 && item[0] >= '3' && item[0] <= '6' &&
	    tolower((unsigned char)item[1]) == 'x' &&
	    tolower((unsigned char)item[2]) == 'x') {
		cs->item[cs->n].kind = CS_CLASS;
		cs->item[cs->n++].value = item[0] - '0';
		return (0);
	}
	if (strncasecmp(item, "Q.850:", 6) == 0) {
		n = strtoul(item + 6, &end, 10);
		if (*end != '\0' || end == item + 6 || n < 1 || n > 127) {
			snprintf(err, errlen, "\"%s\": Q.850 causes are 1..127",
			    item);
			return (-1);
		}
		cs->item[cs->n].kind = CS_CAUSE;
		cs->item[cs->n++].value = (int)n;
		return (0);
	}
	n = strtoul(item, &end, 10);
	if (*end == '\0' && end != item) {
		if (n < 300 || n > 699) {
			snprintf(err, errlen, "\"%s\": failure codes are "
			    "300..699", item);
			return (-1);
		}
		cs->item[cs->n].kind = CS_CODE;
		cs->item[cs->n++].value = (int)n;
		return (0);
	}
	if ((q = sip_cause_by_name(item)) == -1) {
		snprintf(err, errlen, "\"%s\" is not a SIP code, a class like "
		    "\"5xx\" or a cause name like \"USER_BUSY\"", item);
		return (-1);
	}
	cs->item[cs->n].kind = CS_CAUSE;
	cs->item[cs->n++].value = q;
	return (0);
}

bool
codeset_match(const struct codeset *cs, int code)
{
	unsigned	i;

	for (i = 0; i < cs->n; i++) {
		switch (cs->item[i].kind) {
		case CS_CODE:
			if (cs->item[i].value == code)
				return (true);
			break;
		case CS_CLASS:
			if (cs->item[i].value == code / 100)
				return (true);
			break;
		case CS_CAUSE:
			if (cs->item[i].value == sip_cause(code))
				return (true);
			break;
		}
	}
	return (false);
}

/* "408, 5xx, USER_BUSY" for logs and ospreyd -t -v. */
void
codeset_print(const struct codeset *cs, char *buf, size_t len)
{
	unsigned	i;
	size_t		off = 0;

	buf[0] = '\0';
	for (i = 0; i < cs->n && off < len; i++) {
		const char	*sep = i ? ", " : "";
		int		 v = cs->item[i].value;

		switch (cs->item[i].kind) {
		case CS_CODE:
			off += snprintf(buf + off, len - off, "%s%d", sep, v);
			break;
		case CS_CLASS:
			off += snprintf(buf + off, len - off, "%s%dxx", sep, v);
			break;
		case CS_CAUSE:
			off += snprintf(buf + off, len - off, "%s%s", sep,
			    sip_cause_name(v));
			break;
		}
	}
}
