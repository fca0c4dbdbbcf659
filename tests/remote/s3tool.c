/* s3tool.c: a command-line driver of the store's S3 client (store/s3.h)
 * for the remote tests: each subcommand is one client call, configured by
 * the AWS environment as cairn would be, so a shell test can run it
 * against a real engine and through the fault proxy. Bytes read go to
 * stdout; the client's message goes to stderr as one line; -s adds the
 * request count.
 *
 *   s3tool [-s] [-j PARALLEL] [-P PAGE] [-t TIMEOUT_S] BUCKET put KEY FILE
 *          ... get KEY [OFFSET LENGTH] | ranges KEY OFF:LEN... | head KEY
 *          ... delete KEY | list PREFIX | putfile KEY FILE PARTSIZE
 *          ... fill PREFIX COUNT (COUNT small objects PREFIX00000...)
 */
#define CAIRN_BUILDING_STORE 1
#include "curl_dl.h"
#include "s3.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct tool {
	struct s3_client *client;
	unsigned parallel;
};

static int usage(void)
{
	fprintf(stderr,
		"usage: s3tool [-s] [-j PARALLEL] [-P PAGE] [-t TIMEOUT_S] BUCKET COMMAND ARGS...\n");
	return 2;
}

static int write_out(const void *data, size_t size)
{
	return cairn_write_all(STDOUT_FILENO, data, size);
}

static int cmd_put(struct tool *t, char **argv)
{
	_cleanup_close_ int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	_cleanup_free_ uint8_t *data = malloc((size_t)st.st_size + 1);
	if (!data || cairn_pread_full(fd, data, (size_t)st.st_size, 0) != st.st_size)
		return -EIO;
	return s3_put(t->client, argv[0], data, (size_t)st.st_size);
}

static int cmd_putfile(struct tool *t, char **argv)
{
	_cleanup_close_ int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	return s3_put_file(t->client, argv[0], fd, (uint64_t)st.st_size,
			   (size_t)strtoull(argv[2], NULL, 0), t->parallel);
}

static int cmd_get(struct tool *t, char **argv, int argc)
{
	struct s3_buf buf = {0};
	uint64_t offset = argc >= 3 ? strtoull(argv[1], NULL, 0) : 0;
	uint64_t size = argc >= 3 ? strtoull(argv[2], NULL, 0) : UINT64_MAX;
	int r = s3_get(t->client, argv[0], offset, size, &buf);

	if (r == 0)
		r = write_out(buf.data, buf.size);
	s3_buf_free(&buf);
	return r;
}

static int cmd_ranges(struct tool *t, char **argv, int argc)
{
	size_t count = (size_t)argc - 1;
	_cleanup_free_ struct s3_range *ranges = calloc(count, sizeof(*ranges));
	int r;

	if (!ranges)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		char *colon = strchr(argv[i + 1], ':');
		if (!colon)
			return -EINVAL;
		ranges[i].key = argv[0];
		ranges[i].offset = strtoull(argv[i + 1], NULL, 0);
		ranges[i].size = strtoull(colon + 1, NULL, 0);
		ranges[i].dest = malloc(ranges[i].size + 1);
		if (!ranges[i].dest)
			return -ENOMEM;
	}
	r = s3_get_ranges(t->client, ranges, count, t->parallel);
	for (size_t i = 0; i < count; i++) {
		if (r == 0)
			r = write_out(ranges[i].dest, ranges[i].size);
		free(ranges[i].dest);
	}
	return r;
}

static int print_key(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
	printf("%s %" PRIu64 " %" PRId64 "\n", key, size, mtime);
	return 0;
}

static int cmd_fill(struct tool *t, char **argv)
{
	unsigned long count = strtoul(argv[1], NULL, 10);
	char key[512];

	for (unsigned long i = 0; i < count; i++) {
		snprintf(key, sizeof(key), "%s%05lu", argv[0], i);
		int r = s3_put(t->client, key, key, strlen(key));
		if (r < 0)
			return r;
	}
	return 0;
}

static int run(struct tool *t, const char *cmd, char **argv, int argc)
{
	uint64_t size;
	int r;

	if (strcmp(cmd, "put") == 0 && argc == 2)
		return cmd_put(t, argv);
	if (strcmp(cmd, "putfile") == 0 && argc == 3)
		return cmd_putfile(t, argv);
	if (strcmp(cmd, "get") == 0 && (argc == 1 || argc == 3))
		return cmd_get(t, argv, argc);
	if (strcmp(cmd, "ranges") == 0 && argc >= 2)
		return cmd_ranges(t, argv, argc);
	if (strcmp(cmd, "head") == 0 && argc == 1) {
		r = s3_head(t->client, argv[0], &size);
		if (r == 0)
			printf("%" PRIu64 "\n", size);
		return r;
	}
	if (strcmp(cmd, "delete") == 0 && argc == 1)
		return s3_delete(t->client, argv[0]);
	if (strcmp(cmd, "list") == 0 && argc == 1)
		return s3_list(t->client, argv[0], print_key, NULL);
	if (strcmp(cmd, "fill") == 0 && argc == 2)
		return cmd_fill(t, argv);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct tool t = {.parallel = 4};
	struct s3_config cfg;
	bool stats = false;
	unsigned page = 0, timeout_s = 0;
	char why[512];
	int opt, r;

	while ((opt = getopt(argc, argv, "sj:P:t:")) != -1) {
		if (opt == 's')
			stats = true;
		else if (opt == 'j')
			t.parallel = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'P')
			page = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 't')
			timeout_s = (unsigned)strtoul(optarg, NULL, 10);
		else
			return usage();
	}
	if (argc - optind < 2)
		return usage();
	r = s3_config_load(&cfg, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "s3tool: %s\n", why);
		return 1;
	}
	if (timeout_s)
		cfg.timeout_s = timeout_s;
	r = s3_client_new(&cfg, argv[optind], &t.client);
	s3_config_free(&cfg);
	if (r == -ENOSYS)
		curl_dl_load(why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "s3tool: %s\n", r == -ENOSYS ? why : strerror(-r));
		return 1;
	}
	s3_client_set_list_page(t.client, page);
	r = run(&t, argv[optind + 1], argv + optind + 2, argc - optind - 2);
	fflush(stdout);
	if (r == -EINVAL && !s3_error(t.client)[0])
		r = usage();
	else if (r < 0)
		fprintf(stderr, "s3tool: %s\n",
			s3_error(t.client)[0] ? s3_error(t.client) : strerror(-r));
	if (stats) {
		uint64_t requests, bytes_in;
		s3_counters(t.client, &requests, &bytes_in);
		fprintf(stderr, "s3tool: %" PRIu64 " requests, %" PRIu64 " bytes in\n", requests,
			bytes_in);
	}
	s3_client_free(t.client);
	return r == 0 ? 0 : r == 2 ? 2 : 1;
}
