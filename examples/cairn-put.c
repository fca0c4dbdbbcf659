/* cairn-put.c: an example of the store API. It puts files into a store as
 * content-defined chunks and prints each file's id and chunk list, then the
 * store's totals: what `cairn add` does for every file of an archive.
 *
 * Usage: cairn-put STORE FILE...   (the store is created if missing)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

/* A file id names the file's chunk list (docs/FORMAT.md "Ids"). */
static void file_id_of(const struct cairn_store *store, const struct cairn_chunk_ref *chunks,
		       size_t count, struct cairn_id *ret)
{
	struct cairn_file_hasher hasher;
	uint64_t end = 0;

	cairn_file_id_init(&hasher, store);
	for (size_t i = 0; i < count; i++) {
		end += chunks[i].size;
		cairn_file_id_add_run(&hasher, &chunks[i].id, end);
	}
	cairn_file_hasher_final(&hasher, ret);
}

static int put_file(struct cairn_store *store, struct cairn_writer *writer, const char *path)
{
	static unsigned char buf[1 << 20];
	const struct cairn_chunk_ref *chunks;
	struct cairn_id file_id;
	char hex[CAIRN_ID_HEX + 1];
	uint64_t size;
	size_t count;
	ssize_t n;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cairn-put: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	int r = cairn_writer_file_begin(writer);
	while (r == 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		r = cairn_writer_file_write(writer, buf, (size_t)n);
	if (r == 0 && n < 0)
		r = -errno;
	close(fd);
	if (r == 0)
		r = cairn_writer_file_end(writer, &size, &chunks, &count);
	if (r < 0) {
		fprintf(stderr, "cairn-put: %s: %s\n", path, cairn_writer_error(writer));
		return r;
	}
	file_id_of(store, chunks, count, &file_id);
	cairn_id_to_hex(&file_id, hex);
	printf("%s  %s  %llu bytes in %zu chunk%s\n", hex, path, (unsigned long long)size, count,
	       count == 1 ? "" : "s");
	return 0;
}

static struct cairn_store *open_or_create(const char *path)
{
	struct cairn_store *store = cairn_store_new();

	if (!store)
		return NULL;
	int r = cairn_store_open(store, path);
	if (r == -ENOENT) {
		cairn_store_free(store);
		store = cairn_store_new();
		r = store ? cairn_store_create(store, path, NULL) : -ENOMEM;
	}
	if (r < 0) {
		fprintf(stderr, "cairn-put: %s\n",
			store ? cairn_store_error(store) : "out of memory");
		cairn_store_free(store);
		return NULL;
	}
	return store;
}

int main(int argc, char **argv)
{
	struct cairn_writer *writer;
	struct cairn_writer_stats stats;
	struct cairn_store_stats totals;
	int status = 0;

	if (argc < 3) {
		fprintf(stderr, "Usage: cairn-put STORE FILE...\n");
		return 2;
	}
	struct cairn_store *store = open_or_create(argv[1]);
	if (!store)
		return 1;
	if (cairn_writer_open(store, 0, 0, &writer) < 0) {
		fprintf(stderr, "cairn-put: %s\n", cairn_store_error(store));
		cairn_store_free(store);
		return 1;
	}
	for (int i = 2; i < argc && status == 0; i++)
		status = put_file(store, writer, argv[i]) < 0;
	if (status == 0 && cairn_writer_commit(writer) < 0) {
		fprintf(stderr, "cairn-put: %s\n", cairn_writer_error(writer));
		status = 1;
	}
	cairn_writer_stats(writer, &stats);
	cairn_writer_free(writer);
	if (status == 0 && cairn_store_stats(store, &totals) == 0)
		printf("put %llu bytes: %llu of %llu chunks new, %llu bytes stored; "
		       "store: %llu chunks, %llu bytes in %llu packs\n",
		       (unsigned long long)stats.bytes_in, (unsigned long long)stats.chunks_new,
		       (unsigned long long)stats.chunks_in, (unsigned long long)stats.bytes_stored,
		       (unsigned long long)totals.chunk_count,
		       (unsigned long long)totals.pack_bytes,
		       (unsigned long long)totals.pack_count);
	cairn_store_free(store);
	return status;
}
