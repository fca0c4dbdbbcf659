/* chunk_reader.c: reading chunks by id (cairn_unpacker). An unpacker is one
 * thread's frame reader (zstd context, buffers, the last decompressed frame;
 * pack_read.c), so reads on many threads share nothing but the store's
 * mapped table and pack fds. Every chunk is checked against its id here.
 */
#include "store_internal.h"

#include <string.h>

struct cairn_unpacker {
	struct cairn_store *store;
	struct frame_reader reader;
	char error[512];
};

int cairn_unpacker_new(struct cairn_store *store, struct cairn_unpacker **ret)
{
	struct cairn_unpacker *unpacker = calloc(1, sizeof(*unpacker));

	if (!unpacker)
		return -ENOMEM;
	unpacker->store = store;
	if (frame_reader_init(&unpacker->reader, &store->params, 1) < 0) {
		free(unpacker);
		return -ENOMEM;
	}
	atomic_fetch_add(&store->unpackers, 1);
	*ret = unpacker;
	return 0;
}

void cairn_unpacker_free(struct cairn_unpacker *unpacker)
{
	if (!unpacker)
		return;
	atomic_fetch_sub(&unpacker->store->unpackers, 1);
	frame_reader_release(&unpacker->reader);
	free(unpacker);
}

const char *cairn_unpacker_error(const struct cairn_unpacker *unpacker)
{
	return unpacker->error;
}

static int64_t unpacker_get(struct cairn_unpacker *unpacker, const struct cairn_id *id, void *buf,
			    size_t buf_size, cairn_chunk_fn fn, void *userdata)
{
	struct cairn_store *store = unpacker->store;
	const struct chunk_table *table = store_table(store);
	const struct table_entry *entry = table_find(table, id);
	char hex[CAIRN_ID_HEX + 1];

	unpacker->error[0] = '\0';
	if (!entry) {
		cairn_id_to_hex(id, hex);
		cairn_format(unpacker->error, sizeof(unpacker->error),
			     "%s: chunk %s is not in the store", store->path, hex);
		return -ENOENT;
	}
	if (entry->size > buf_size) {
		cairn_format(unpacker->error, sizeof(unpacker->error),
			     "a buffer of %zu bytes cannot hold a chunk of %u", buf_size,
			     entry->size);
		return -ENOBUFS;
	}
	int fd = store_pack_fd(store, entry->pack_num);
	if (fd < 0) {
		char name[32];
		pack_name(entry->pack_num, name);
		cairn_format(unpacker->error, sizeof(unpacker->error), "%s/packs/%s: %s",
			     store->path, name, cairn_path_strerror(fd));
		return fd == -ENOENT ? -EBADMSG : fd;
	}
	char msg[400];
	int64_t r = frame_reader_get(&unpacker->reader, store, fd, entry, buf, buf_size, msg,
				     sizeof(msg));
	if (r < 0)
		cairn_format(unpacker->error, sizeof(unpacker->error), "%s: %s", store->path, msg);
	else if (fn && entry->members > 1)
		frame_reader_each_member(&unpacker->reader, store, entry, fn, userdata);
	return r;
}

int64_t cairn_unpacker_get(struct cairn_unpacker *unpacker, const struct cairn_id *id, void *buf,
			   size_t buf_size)
{
	return unpacker_get(unpacker, id, buf, buf_size, NULL, NULL);
}

int64_t cairn_unpacker_get_neighbours(struct cairn_unpacker *unpacker, const struct cairn_id *id,
				      void *buf, size_t buf_size, cairn_chunk_fn fn, void *userdata)
{
	return unpacker_get(unpacker, id, buf, buf_size, fn, userdata);
}
