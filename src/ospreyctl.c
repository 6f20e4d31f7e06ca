/*
 * ospreyctl: talk to a running ospreyd over its control socket, found
 * with -s, or in the configuration file (-c, else the default one, read
 * by the daemon's own loader).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"
#include "xmalloc.h"

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: ospreyctl [-j] [-c file | -s socket] command "
	    "[args]\n"
	    "commands:\n"
	    "  status                  daemon version, open transactions\n"
	    "  stats                   counters\n"
	    "  transactions [CALL-ID]  open transactions\n"
	    "  registrations [USER]    registered contacts, the node of "
	    "each\n"
	    "  reload                  re-read the config (as SIGHUP)\n"
	    "  loglevel LEVEL          error, warning, notice, info, debug\n"
	    "  dialogs [CALL-ID]       calls up and being answered\n"
	    "  cancel CALL-ID CSEQ     cancel a pending INVITE, as its caller "
	    "would\n"
	    "  hangup CALL-ID          end a call: a BYE to both parties\n"
	    "options:\n"
	    "  -j, --json              machine-readable output\n"
	    "  -c file                 the control socket of this config "
	    "file\n"
	    "                          (default " OSPREY_DEFAULT_CONF ")\n"
	    "  -s socket               this control socket (without -c and "
	    "a\n"
	    "                          default config: " CTL_DEFAULT_SOCKET
	    ")\n");
}

/*
 * The control socket a config file names.  Exits 2 when the file given
 * with -c cannot be read or turns the socket off.  A missing default file
 * means the default socket, and so does a broken one, with a warning (so
 * that `ospreyctl reload` still reaches the daemon to hear the error).
 */
static char *
socket_of_conf(const char *file, bool given)
{
	struct conf	 cf;
	char		 err[512], *path;

	if (!given && access(file, F_OK) == -1 && errno == ENOENT)
		return (xstrdup(CTL_DEFAULT_SOCKET));
	memset(&cf, 0, sizeof(cf));
	if (conf_load(file, &cf, err, sizeof(err)) == -1) {
		if (!given) {
			fprintf(stderr, "ospreyctl: warning: %s\nospreyctl: "
			    "warning: trying " CTL_DEFAULT_SOCKET "\n", err);
			return (xstrdup(CTL_DEFAULT_SOCKET));
		}
		fprintf(stderr, "ospreyctl: %s\nospreyctl: no control socket "
		    "from %s; use -s socket\n", err, file);
		exit(2);
	}
	path = cf.ctl.socket ? xstrdup(cf.ctl.socket) : NULL;
	conf_free(&cf);
	if (path == NULL) {
		fprintf(stderr, "ospreyctl: %s turns the control socket off "
		    "(control.socket = \"\")\n", file);
		exit(2);
	}
	return (path);
}

int
main(int argc, char **argv)
{
	const char		*conf = NULL, *sock = NULL;
	char			*path;
	struct sockaddr_un	 sun;
	char			 req[1024], buf[8192], *nl;
	size_t			 off = 0, got = 0;
	bool			 json = false, first = true, ok = false;
	ssize_t			 n;
	int			 i, fd = -1, rc = 3;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-j") == 0 || strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc &&
		    conf == NULL && sock == NULL)
			sock = argv[++i];
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc &&
		    conf == NULL && sock == NULL)
			conf = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return (0);
		} else {
			usage(stderr);
			return (2);
		}
	}
	if (i == argc) {
		usage(stderr);
		return (2);
	}
	for (n = i; n < argc; n++)	/* "dialogs --json" */
		if (strcmp(argv[n], "--json") == 0 ||
		    strcmp(argv[n], "-j") == 0) {
			json = true;
			memmove(&argv[n], &argv[n + 1], (argc - n) *
			    sizeof(*argv));
			argc--;
			n--;
		}
	off = (size_t)snprintf(req, sizeof(req), "%s", json ? "json" : "");
	for (; i < argc && off < sizeof(req); i++) {
		if (strpbrk(argv[i], " \t\r\n") != NULL) {
			fprintf(stderr, "ospreyctl: arguments cannot contain "
			    "white space\n");
			return (2);
		}
		off += (size_t)snprintf(req + off, sizeof(req) - off, "%s%s",
		    off ? " " : "", argv[i]);
	}
	if (off + 2 >= sizeof(req)) {
		fprintf(stderr, "ospreyctl: command too long\n");
		return (2);
	}
	req[off++] = '\n';
	path = sock != NULL ? xstrdup(sock) :
	    socket_of_conf(conf ? conf : OSPREY_DEFAULT_CONF, conf != NULL);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "ospreyctl: %s: path too long\n", path);
		rc = 2;
		goto done;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "ospreyctl: cannot reach ospreyd at %s: %s\n"
		    "ospreyctl: is ospreyd running? (systemctl status osprey)\n",
		    path, strerror(errno));
		goto done;
	}
	if (write(fd, req, off) != (ssize_t)off) {
		fprintf(stderr, "ospreyctl: write: %s\n", strerror(errno));
		goto done;
	}
	/* First line: OK or ERR reason; then the body, copied to stdout. */
	while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
		got += (size_t)n;
		buf[got] = '\0';
		if (first) {
			if ((nl = strchr(buf, '\n')) == NULL &&
			    got < sizeof(buf) - 1)
				continue;
			if (nl != NULL)
				*nl = '\0';
			ok = strcmp(buf, "OK") == 0;
			if (!ok)
				fprintf(stderr, "ospreyctl: %s\n",
				    strncmp(buf, "ERR ", 4) == 0 ? buf + 4 :
				    buf);
			first = false;
			if (nl != NULL)
				fwrite(nl + 1, 1, got - (size_t)(nl + 1 - buf),
				    stdout);
		} else
			fwrite(buf, 1, got, stdout);
		got = 0;
	}
	if (first)
		fprintf(stderr, "ospreyctl: no answer from ospreyd\n");
	else
		rc = ok ? 0 : 1;
done:
	if (fd != -1)
		close(fd);
	free(path);
	return (rc);
}
