/*
 * make check: every input in tests/fuzz/corpus/ (regress-* are crashers
 * the fuzzer found, kept after the fix) through the fuzz target, without
 * libFuzzer.  The target aborts on anything wrong.
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
main(int argc, char **argv)
{
	const char	*srcdir = getenv("srcdir");
	char		 dir[4096], path[8192];
	static uint8_t	 buf[1 << 16];
	struct dirent	*de;
	DIR		*d;
	FILE		*fp;
	size_t		 n;
	int		 count = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus", srcdir ? srcdir :
	    ".");
	if ((d = opendir(dir)) == NULL) {
		perror(dir);
		return (1);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((fp = fopen(path, "rb")) == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		LLVMFuzzerTestOneInput(buf, n);
		count++;
	}
	closedir(d);
	printf("fuzz replay: %d passed, 0 failed\n", count);
	return (count > 0 ? 0 : 1);
}
