/* fuzz_import.c: libFuzzer target for archive ingestion: the input is an
 * archive, read by libarchive into the index and the store (a temp store
 * made once per process), as `cairn add` reads one. The first byte picks the
 * input's kind (bit 0: a seekable file, else a pipe, which libarchive reads
 * as a stream; bit 1: damage keeps a partial snapshot, as `cairn add
 * --partial`) and is not part of the archive. Damaged gzip and lz4 streams
 * (checked by the decoder's own layers) are among the seeds. An import that
 * succeeds is committed and then read back: the snapshot must pass the full
 * check with its chunks, every file must read to its end, and the source id
 * must be the id of the input's bytes. A problem there is a bug of cairn's
 * (it wrote what it cannot read, or hashed the input wrong), so the target
 * aborts on it; for the rest, any crash, sanitizer report or leak is a bug
 * and return codes do not matter. The same function replays the corpus in the normal
 * test suite (replay.c).
 */
#include "index.h"
#include "util.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEEKABLE          0x01u
#define PARTIAL           0x02u
#define COMMITS_PER_STORE 200u
#define READ_FILES_MAX    4096u
#define READ_BYTES_MAX    (4u << 20)

static struct harness {
	char base[256];
	char store_path[300];
	struct cairn_store *store;
	unsigned commits;
} h;

static const struct cairn_store_params store_params = {
	.chunk_min = 1024,
	.chunk_avg = 4096,
	.chunk_max = 16384,
	.zstd_level = 1,
	.pack_max = 1u << 20,
};

static const struct cairn_import_options import_options = {
	.max_entries = 20000,
	.max_ratio = 100,
	.ratio_slack = 1u << 20, /* keeps each input fast: bombs stop early */
};
static const struct cairn_import_options partial_options = {
	.max_entries = 20000,
	.max_ratio = 100,
	.ratio_slack = 1u << 20,
	.partial = true,
};

/* ---- the store ---- */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void store_close(void)
{
	cairn_store_free(h.store);
	h.store = NULL;
	if (h.store_path[0])
		nftw(h.store_path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void harness_cleanup(void)
{
	store_close();
	if (h.base[0])
		rmdir(h.base);
}

static void store_start(void)
{
	if (!h.base[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(h.base, sizeof(h.base), "%s/cairn-fuzz-import-XXXXXX", tmp ? tmp : "/tmp");
		if (!mkdtemp(h.base))
			abort();
		snprintf(h.store_path, sizeof(h.store_path), "%s/store", h.base);
		atexit(harness_cleanup);
		signal(SIGPIPE, SIG_IGN); /* the feeder's write after an import stopped early */
	}
	h.store = cairn_store_new();
	if (!h.store || cairn_store_create(h.store, h.store_path, &store_params) < 0) {
		fprintf(stderr, "fuzz_import: cannot make a store in %s\n", h.store_path);
		abort();
	}
	h.commits = 0;
}

/* ---- the input ---- */

struct feeder {
	int fd;
	const uint8_t *data;
	size_t size;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;

	cairn_write_all(f->fd, f->data, f->size); /* EPIPE when the import stops early */
	close(f->fd);
	return NULL;
}

static int input_file(const uint8_t *data, size_t size)
{
	int fd = memfd_create("archive", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (cairn_write_all(fd, data, size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- reading the snapshot back ---- */

static void no_report(void *userdata, const char *problem)
{
	(void)userdata;
	fprintf(stderr, "fuzz_import: the new snapshot: %s\n", problem);
}

static void read_back_file(struct cairn_index *idx, struct cairn_content_reader *reader,
			   uint64_t ino, uint64_t *budget)
{
	static uint8_t buf[1u << 16];
	struct cairn_index_file file;

	if (cairn_content_open(reader, idx, ino, &file) < 0)
		return;
	for (uint64_t offset = 0; offset<file.size && * budget> 0;) {
		int64_t n = cairn_content_read(reader, offset, buf, sizeof(buf));
		if (n <= 0) {
			fprintf(stderr, "fuzz_import: inode %llu at %llu: %s\n",
				(unsigned long long)ino, (unsigned long long)offset,
				cairn_content_error(reader));
			abort();
		}
		offset += (uint64_t)n;
		*budget = *budget > (uint64_t)n ? *budget - (uint64_t)n : 0;
	}
}

static void read_back(void)
{
	struct cairn_index *idx = cairn_index_new();
	struct cairn_content_reader *reader = NULL;
	struct cairn_index_info info;
	uint64_t budget = READ_BYTES_MAX;

	if (!idx || cairn_index_open(idx, h.store, "fuzz") < 0) {
		fprintf(stderr, "fuzz_import: the new snapshot does not open: %s\n",
			idx ? cairn_index_error(idx) : "out of memory");
		abort();
	}
	if (cairn_index_check(idx, true, no_report, NULL) != 0)
		abort();
	cairn_index_info(idx, &info);
	if (cairn_content_reader_new(h.store, NULL, &reader) == 0) {
		for (uint64_t ino = 1; ino <= info.inode_count && ino <= READ_FILES_MAX; ino++)
			read_back_file(idx, reader, ino, &budget);
	}
	cairn_content_reader_free(reader);
	cairn_index_free(idx);
}

/* ---- one input ---- */

/* Messages are formatted only when someone listens: listen, so the
 * formatting of every warning runs too. */
static void on_warn(void *userdata, const char *warning)
{
	*(size_t *)userdata += strlen(warning);
}

static void on_progress(void *userdata, const struct cairn_import_progress *p)
{
	*(size_t *)userdata += (size_t)p->entries;
}

/* The writer (its compression thread) lives for one input only, so that
 * everything an input allocates is freed by its end, as leak checks want. */
/* The source id the import hashed as libarchive read (with seeks and skips
 * for a file, the drained rest for a pipe) must be the id of the bytes. */
static void check_source_id(struct cairn_import *imp, const uint8_t *data, size_t size)
{
	struct cairn_id hashed, expected;

	int fd = input_file(data, size);
	if (fd < 0)
		return;
	int r = cairn_archive_id(h.store, fd, &expected);
	close(fd);
	cairn_import_source_id(imp, &hashed);
	if (r == 0 && cairn_id_compare(&hashed, &expected) != 0) {
		fprintf(stderr,
			"fuzz_import: the source id is not the id of the archive's bytes\n");
		abort();
	}
}

static void import_one(int fd, const uint8_t *data, size_t size, bool partial)
{
	struct cairn_writer *writer;
	struct cairn_import *imp = NULL;

	if (cairn_writer_open(h.store, CAIRN_WRITER_NOWAIT, 1, &writer) < 0)
		abort();
	size_t sink = 0;
	int r = cairn_import_new(h.store, writer, partial ? &partial_options : &import_options,
				 &imp);
	if (r == 0) {
		cairn_import_set_warn(imp, on_warn, &sink);
		cairn_import_set_progress(imp, on_progress, &sink);
		r = cairn_import_archive(imp, fd, "fuzz/input");
	}
	if (r == 0)
		check_source_id(imp, data, size);
	if (r == 0)
		r = cairn_import_commit(imp, "fuzz", CAIRN_IMPORT_REPLACE);
	cairn_import_free(imp);
	cairn_writer_free(writer);
	if (r == 0) {
		read_back();
		h.commits++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pthread_t thread;
	int fds[2];

	if (size < 1)
		return 0;
	if (!h.store || h.commits >= COMMITS_PER_STORE) {
		store_close();
		store_start();
	}
	if (data[0] & SEEKABLE) {
		int fd = input_file(data + 1, size - 1);
		if (fd >= 0) {
			import_one(fd, data + 1, size - 1, data[0] & PARTIAL);
			close(fd);
		}
		return 0;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		return 0;
	struct feeder feeder = {.fd = fds[1], .data = data + 1, .size = size - 1};
	if (pthread_create(&thread, NULL, feed, &feeder) != 0) {
		close(fds[0]);
		close(fds[1]);
		return 0;
	}
	import_one(fds[0], data + 1, size - 1, data[0] & PARTIAL);
	close(fds[0]);
	pthread_join(thread, NULL);
	return 0;
}
