/* replay.c: runs a fuzz target's corpus in the normal test suite, without
 * libFuzzer: every file named on the command line, or found in a directory
 * named there, is fed once to LLVMFuzzerTestOneInput (tests/fuzz builds one
 * replayer per target). A crash or sanitizer report fails the test; each
 * input's name is printed before it runs, so the last one names the culprit,
 * and the last line counts the inputs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;

	if (!f || fstat(fileno(f), &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *data = malloc(size ? size : 1);
	if (!data || fread(data, 1, size, f) != size) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		free(data);
		fclose(f);
		return -1;
	}
	fclose(f);
	printf("%s\n", path);
	fflush(stdout);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

static int replay_dir(const char *path, unsigned *count)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	char full[4096];
	int r = 0;

	if (!dir)
		return replay_file(path) == 0 ? ((*count)++, 0) : -1;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
		if (replay_file(full) < 0)
			r = -1;
		else
			(*count)++;
	}
	closedir(dir);
	return r;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int failed = 0;

	for (int i = 1; i < argc; i++)
		if (replay_dir(argv[i], &count) < 0)
			failed = 1;
	printf("%u passed, %d failed\n", count, failed);
	return failed;
}
