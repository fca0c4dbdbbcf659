/* reader.c: reading file contents through the chunk store, shared by
 * `cairn cat`, `cairn extract` and the mount's fallback path. A reader is
 * one thread's decode buffer; it keeps the last chunk it decoded, so small
 * sequential reads decompress each chunk once. Every chunk is checked
 * against its id by the store, and its size against the run here.
 */
#include "index_internal.h"

#include <string.h>

struct cairn_index_reader {
	struct cairn_index *idx;
	struct cairn_unpacker *unpacker;
	uint8_t *buf; /* chunk_max bytes */
	size_t buf_size;
	struct cairn_id cached; /* the chunk in buf */
	size_t cached_size;
	bool have_cached;
	char error[600];
};

int cairn_index_reader_new(struct cairn_index *idx, struct cairn_unpacker *unpacker,
			   struct cairn_index_reader **ret)
{
	struct cairn_index_reader *reader;

	if (!idx->store)
		return -EINVAL; /* opened without a store: nothing to read from */
	reader = calloc(1, sizeof(*reader));
	if (!reader)
		return -ENOMEM;
	reader->idx = idx;
	reader->unpacker = unpacker;
	reader->buf_size = cairn_store_params(idx->store)->chunk_max;
	reader->buf = malloc(reader->buf_size);
	if (!reader->buf) {
		free(reader);
		return -ENOMEM;
	}
	*ret = reader;
	return 0;
}

void cairn_index_reader_free(struct cairn_index_reader *reader)
{
	if (!reader)
		return;
	free(reader->buf);
	free(reader);
}

const char *cairn_index_reader_error(const struct cairn_index_reader *reader)
{
	return reader->error;
}

static int reader_fail(struct cairn_index_reader *reader, int r, uint64_t ino,
		       const struct cairn_index_run *run, const char *why)
{
	cairn_format(reader->error, sizeof(reader->error),
		     "snapshot %s, inode %llu, offset %llu: %s", cairn_index_name(reader->idx),
		     (unsigned long long)ino, (unsigned long long)run->offset, why);
	return r;
}

static int reader_decode(struct cairn_index_reader *reader, uint64_t ino,
			 const struct cairn_index_run *run)
{
	if (reader->have_cached && cairn_id_compare(&reader->cached, &run->chunk_id) == 0) {
		if (reader->cached_size != run->size)
			return reader_fail(reader, -EBADMSG, ino, run,
					   "a chunk's size disagrees with the snapshot");
		return 0;
	}
	reader->have_cached = false;
	int64_t n =
		cairn_unpacker_get(reader->unpacker, &run->chunk_id, reader->buf, reader->buf_size);
	if (n < 0)
		return reader_fail(reader, n == -ENOENT || n == -ENOBUFS ? -EBADMSG : (int)n, ino,
				   run, cairn_unpacker_error(reader->unpacker));
	if ((uint64_t)n != run->size)
		return reader_fail(reader, -EBADMSG, ino, run,
				   "a chunk's size disagrees with the snapshot");
	reader->cached = run->chunk_id;
	reader->cached_size = (size_t)n;
	reader->have_cached = true;
	return 0;
}

int cairn_index_reader_run(struct cairn_index_reader *reader, uint64_t ino, uint32_t i,
			   const void **ret_data, struct cairn_index_run *ret_run)
{
	struct cairn_index_run run;

	int r = cairn_index_run(reader->idx, ino, i, &run);
	if (r < 0) {
		cairn_format(reader->error, sizeof(reader->error), "%s",
			     r == -EBADMSG ? cairn_index_error(reader->idx) : strerror(-r));
		return r;
	}
	if (!run.hole) {
		r = reader_decode(reader, ino, &run);
		if (r < 0)
			return r;
	}
	*ret_data = run.hole ? NULL : reader->buf;
	*ret_run = run;
	return 0;
}

int64_t cairn_index_read(struct cairn_index_reader *reader, uint64_t ino, uint64_t offset,
			 void *buf, size_t len)
{
	struct cairn_index_file file;
	uint8_t *out = buf;
	size_t done = 0;
	uint32_t i;

	int r = cairn_index_file(reader->idx, ino, &file);
	if (r == 0 && offset < file.size)
		r = cairn_index_find_run(reader->idx, ino, offset, &i);
	if (r < 0) {
		cairn_format(reader->error, sizeof(reader->error), "%s",
			     r == -EBADMSG ? cairn_index_error(reader->idx) : strerror(-r));
		return r;
	}
	if (offset >= file.size)
		return 0;
	if (len > file.size - offset)
		len = (size_t)(file.size - offset);
	while (done < len) {
		const void *data;
		struct cairn_index_run run;
		r = cairn_index_reader_run(reader, ino, i++, &data, &run);
		if (r < 0)
			return r;
		uint64_t pos = offset + done;
		size_t skip = (size_t)(pos - run.offset);
		size_t n = (size_t)(run.size - skip) < len - done ? (size_t)(run.size - skip)
								  : len - done;
		if (data)
			memcpy(out + done, (const uint8_t *)data + skip, n);
		else
			memset(out + done, 0, n);
		done += n;
	}
	return (int64_t)done;
}
