/*
 * make check: every input in tests/fuzz/corpus/ (regress-* are crashers
 * the fuzzer found, kept after the fix) through the fuzz target, without
 * libFuzzer.  The target aborts on anything wrong.  With arguments, only
 * those files: tests/fuzz/replay FILE...
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef REPLAY_CORPUS
#define REPLAY_CORPUS	"tests/fuzz/corpus"
#endif

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* One input through the target; -1 if it cannot be read. */
static int
replay_file(const char *path)
{
	static uint8_t	 buf[1 << 16];
	FILE		*fp;
	size_t		 n;

	if ((fp = fopen(path, "rb")) == NULL)
		return (-1);
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, n);
	return (0);
}

int
main(int argc, char **argv)
{
	const char	*srcdir = getenv("srcdir");
	char		 dir[4096], path[8192];
	struct dirent	*de;
	DIR		*d;
	int		 count = 0, i;

	LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_file(argv[i]) == -1) {
				perror(argv[i]);
				return (1);
			}
		printf("fuzz replay: %d passed, 0 failed\n", argc - 1);
		return (0);
	}
	snprintf(dir, sizeof(dir), "%s/" REPLAY_CORPUS, srcdir ? srcdir :
	    ".");
	if ((d = opendir(dir)) == NULL) {
		perror(dir);
		return (1);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (replay_file(path) == 0)
			count++;
	}
	closedir(d);
	printf("fuzz replay: %d passed, 0 failed\n", count);
	return (count > 0 ? 0 : 1);
}
