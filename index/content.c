/* content.c: the content reader of content.h, the one place that turns a
 * file's chunk list into its bytes for `cairn cat`, `cairn extract` and the
 * mount (its fallback read and its blobs), and the default chunk source: an
 * unpacker decoding into a one-chunk buffer that remembers the last chunk,
 * so small sequential reads decompress each chunk once. Every chunk is
 * checked against its id by its source (the store's unpacker), and its size
 * against its run here.
 */
#include "index_internal.h"

#include <string.h>

/* ---- the default source: an unpacker and a one-chunk buffer ---- */

struct unpacker_source {
	struct cairn_unpacker *unpacker;
	uint8_t *buf; /* chunk_max bytes */
	size_t buf_size;
	struct cairn_id cached; /* the chunk in buf */
	uint64_t cached_size;
	bool have_cached;
};

static int unpacker_source_get(void *userdata, const struct cairn_id *id, uint64_t size,
			       struct cairn_chunk *ret, char *msg, size_t msg_size)
{
	struct unpacker_source *src = userdata;

	(void)size; /* the buffer holds any chunk; the reader checks the size */
	if (!src->have_cached || cairn_id_compare(&src->cached, id) != 0) {
		src->have_cached = false;
		int64_t n = cairn_unpacker_get(src->unpacker, id, src->buf, src->buf_size);
		if (n < 0) {
			cairn_format(msg, msg_size, "%s", cairn_unpacker_error(src->unpacker));
			return n == -ENOBUFS ? -EBADMSG : (int)n;
		}
		src->cached = *id;
		src->cached_size = (uint64_t)n;
		src->have_cached = true;
	}
	*ret = (struct cairn_chunk){.data = src->buf, .size = src->cached_size};
	return 0;
}

static const struct cairn_chunk_source_ops unpacker_source_ops = {
	.get = unpacker_source_get, .release = NULL, /* the bytes stay in buf until the next get */
};

static void unpacker_source_free(struct unpacker_source *src)
{
	if (!src)
		return;
	cairn_unpacker_free(src->unpacker);
	free(src->buf);
	free(src);
}

static int unpacker_source_new(struct cairn_store *store, struct unpacker_source **ret)
{
	struct unpacker_source *src = calloc(1, sizeof(*src));

	if (!src)
		return -ENOMEM;
	src->buf_size = cairn_store_params(store)->chunk_max;
	src->buf = malloc(src->buf_size);
	if (!src->buf || cairn_unpacker_new(store, &src->unpacker) < 0) {
		unpacker_source_free(src);
		return -ENOMEM;
	}
	*ret = src;
	return 0;
}

/* ---- the reader ---- */

struct cairn_content_reader {
	struct cairn_store *store;
	struct cairn_chunk_source source;
	struct unpacker_source *own_source; /* the default source, or NULL */

	/* the bound file; idx is NULL when unbound */
	struct cairn_index *idx;
	uint64_t ino;
	struct cairn_index_file file;
	uint32_t position; /* the run cairn_content_next serves next */
	uint32_t last;     /* the run served last, when have_last */
	bool have_last;

	struct cairn_chunk lent; /* when have_lent: to give back to the source */
	bool have_lent;
	char error[600];
};

int cairn_content_reader_new(struct cairn_store *store, const struct cairn_chunk_source *source,
			     struct cairn_content_reader **ret)
{
	if (source && (!source->ops || !source->ops->get))
		return -EINVAL;
	struct cairn_content_reader *reader = calloc(1, sizeof(*reader));
	if (!reader)
		return -ENOMEM;
	reader->store = store;
	if (source) {
		reader->source = *source;
	} else {
		int r = unpacker_source_new(store, &reader->own_source);
		if (r < 0) {
			free(reader);
			return r;
		}
		reader->source = (struct cairn_chunk_source){
			.ops = &unpacker_source_ops,
			.userdata = reader->own_source,
		};
	}
	*ret = reader;
	return 0;
}

static void give_back(struct cairn_content_reader *reader)
{
	if (!reader->have_lent)
		return;
	reader->have_lent = false;
	if (reader->source.ops->release)
		reader->source.ops->release(reader->source.userdata, &reader->lent);
}

void cairn_content_reader_free(struct cairn_content_reader *reader)
{
	if (!reader)
		return;
	give_back(reader);
	unpacker_source_free(reader->own_source);
	free(reader);
}

const char *cairn_content_error(const struct cairn_content_reader *reader)
{
	return reader->error;
}

/* Records why a call on the index failed and returns r. */
static int index_failed(struct cairn_content_reader *reader, struct cairn_index *idx, int r)
{
	cairn_format(reader->error, sizeof(reader->error), "%s",
		     r == -EBADMSG ? cairn_index_error(idx) : strerror(-r));
	return r;
}

/* Records what went wrong at offset of the bound file and returns r. The
 * caller names the file: it knows the path, the reader only the inode. */
static int content_failed(struct cairn_content_reader *reader, int r, uint64_t offset,
			  const char *why)
{
	cairn_format(reader->error, sizeof(reader->error), "offset %llu: %s",
		     (unsigned long long)offset, why);
	return r;
}

int cairn_content_open(struct cairn_content_reader *reader, struct cairn_index *idx, uint64_t ino,
		       struct cairn_index_file *ret_file)
{
	struct cairn_index_file file;

	give_back(reader);
	reader->idx = NULL;
	if (idx->store != reader->store) {
		cairn_format(reader->error, sizeof(reader->error),
			     "snapshot %s is not on the reader's store", cairn_index_name(idx));
		return -EXDEV;
	}
	int r = cairn_index_file(idx, ino, &file);
	if (r < 0)
		return index_failed(reader, idx, r);
	reader->idx = idx;
	reader->ino = ino;
	reader->file = file;
	reader->position = 0;
	reader->have_last = false;
	if (ret_file)
		*ret_file = file;
	return 0;
}

int cairn_content_seek(struct cairn_content_reader *reader, uint64_t offset)
{
	uint32_t i;

	if (!reader->idx)
		return -EINVAL;
	reader->have_last = false;
	if (offset >= reader->file.size) {
		reader->position = reader->file.run_count;
		return 0;
	}
	int r = cairn_index_find_run(reader->idx, reader->ino, offset, &i);
	if (r < 0)
		return index_failed(reader, reader->idx, r);
	reader->position = i;
	return 0;
}

/* Borrows run's chunk from the source into reader->lent, checking its size
 * against the run. */
static int borrow(struct cairn_content_reader *reader, const struct cairn_index_run *run)
{
	char msg[512];
	struct cairn_chunk chunk;

	msg[0] = '\0'; /* a source may say nothing */
	give_back(reader);
	int r = reader->source.ops->get(reader->source.userdata, &run->chunk_id, run->size, &chunk,
					msg, sizeof(msg));
	if (r < 0)
		return content_failed(reader, r == -ENOENT ? -EBADMSG : r, run->offset, msg);
	reader->lent = chunk;
	reader->have_lent = true;
	if (chunk.size != run->size)
		return content_failed(reader, -EBADMSG, run->offset,
				      "a chunk's size disagrees with the snapshot");
	return 0;
}

int cairn_content_next(struct cairn_content_reader *reader, struct cairn_content_run *ret)
{
	struct cairn_index_run run;

	if (!reader->idx)
		return -EINVAL;
	if (reader->position >= reader->file.run_count)
		return 0;
	int r = cairn_index_run(reader->idx, reader->ino, reader->position, &run);
	if (r < 0)
		return index_failed(reader, reader->idx, r);
	if (run.hole)
		give_back(reader);
	else if ((r = borrow(reader, &run)) < 0)
		return r;
	*ret = (struct cairn_content_run){
		.run = run,
		.number = reader->position,
		.data = run.hole ? NULL : reader->lent.data,
	};
	reader->last = reader->position++;
	reader->have_last = true;
	return 1;
}

int64_t cairn_content_read(struct cairn_content_reader *reader, uint64_t offset, void *buf,
			   size_t len)
{
	struct cairn_content_run cr;
	uint8_t *out = buf;
	size_t done = 0;

	int r = cairn_content_seek(reader, offset);
	if (r < 0)
		return r;
	if (offset >= reader->file.size)
		return 0;
	if (len > reader->file.size - offset)
		len = (size_t)(reader->file.size - offset);
	while (done < len) {
		r = cairn_content_next(reader, &cr);
		if (r == 0)
			r = content_failed(reader, -EBADMSG, offset + done,
					   "the file's runs end before its size");
		if (r < 0)
			break;
		size_t skip = (size_t)(offset + done - cr.run.offset);
		size_t n = (size_t)(cr.run.size - skip) < len - done ? (size_t)(cr.run.size - skip)
								     : len - done;
		if (cr.data)
			memcpy(out + done, cr.data + skip, n);
		else
			memset(out + done, 0, n);
		done += n;
	}
	give_back(reader);
	return r < 0 ? r : (int64_t)done;
}

int cairn_content_peek(struct cairn_content_reader *reader, uint32_t ahead,
		       struct cairn_index_run *ret)
{
	if (!reader->idx)
		return -EINVAL;
	uint64_t i = (uint64_t)reader->last + ahead;
	if (!reader->have_last || ahead == 0 || i >= reader->file.run_count)
		return -ERANGE;
	int r = cairn_index_run(reader->idx, reader->ino, (uint32_t)i, ret);
	if (r < 0)
		return index_failed(reader, reader->idx, r);
	return 0;
}

/* ---- whole files ---- */

/* Checks bytes said to be run's chunk against its id. */
static int verify_run(struct cairn_content_reader *reader, const struct cairn_index_run *run,
		      const void *data)
{
	int r = cairn_store_chunk_verify(reader->store, &run->chunk_id, data, run->size);
	if (r < 0)
		return content_failed(reader, r == -ENOENT ? -EBADMSG : r, run->offset,
				      "a chunk does not match its id");
	return 0;
}

int cairn_content_prefetch(struct cairn_content_reader *reader)
{
	struct cairn_index_run run;
	char why[512];
	size_t n = 0;

	if (!reader->idx)
		return -EINVAL;
	if (!cairn_store_is_remote(reader->store) || reader->file.run_count == 0)
		return 0;
	_cleanup_free_ struct cairn_id *ids = malloc(reader->file.run_count * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (uint32_t i = 0; i < reader->file.run_count; i++) {
		int r = cairn_index_run(reader->idx, reader->ino, i, &run);
		if (r < 0)
			return index_failed(reader, reader->idx, r);
		if (!run.hole)
			ids[n++] = run.chunk_id;
	}
	int r = cairn_store_prefetch(reader->store, ids, n, why, sizeof(why));
	if (r < 0)
		cairn_format(reader->error, sizeof(reader->error), "%s", why);
	return r;
}

int cairn_content_copy_to_fd(struct cairn_content_reader *reader, int fd,
			     cairn_progress_fn progress, void *userdata)
{
	struct cairn_content_run cr;

	/* Best effort: what it could not fetch is fetched as it is read. */
	(void)cairn_content_prefetch(reader);
	int r = cairn_content_seek(reader, 0);
	while (r == 0 && (r = cairn_content_next(reader, &cr)) == 1) {
		if (!cr.data)
			r = content_failed(reader, -EOPNOTSUPP, cr.run.offset,
					   "sparse files are not copied whole");
		else if ((r = verify_run(reader, &cr.run, cr.data)) == 0 &&
			 (r = cairn_write_all(fd, cr.data, (size_t)cr.run.size)) < 0)
			content_failed(reader, r, cr.run.offset, strerror(-r));
		else if (r == 0 && progress)
			progress(userdata, cr.run.offset + cr.run.size);
	}
	give_back(reader);
	return r;
}

int cairn_content_check_fd(struct cairn_content_reader *reader, int fd)
{
	const uint32_t chunk_max = cairn_store_params(reader->store)->chunk_max;
	const size_t window = chunk_max > (4u << 20) ? chunk_max : (4u << 20);
	struct cairn_index_run run;
	uint64_t base = 0, filled = 0; /* buf holds fd's bytes [base, base + filled) */

	if (!reader->idx)
		return -EINVAL;
	_cleanup_free_ uint8_t *buf = malloc(window);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < reader->file.run_count; i++) {
		int r = cairn_index_run(reader->idx, reader->ino, i, &run);
		if (r < 0)
			return index_failed(reader, reader->idx, r);
		if (run.hole || run.size > chunk_max)
			return content_failed(reader, -EBADMSG, run.offset,
					      "a hole or an oversized run");
		/* Read a window of many runs at a time, starting at this one. */
		if (run.offset + run.size > base + filled) {
			uint64_t want = reader->file.size - run.offset;
			ssize_t n = cairn_pread_full(fd, buf, want < window ? (size_t)want : window,
						     (off_t)run.offset);
			if (n < 0)
				return content_failed(reader, (int)n, run.offset,
						      strerror(-(int)n));
			base = run.offset;
			filled = (uint64_t)n;
			if (run.size > filled)
				return content_failed(reader, -EBADMSG, run.offset,
						      "the copy is shorter than the file");
		}
		r = verify_run(reader, &run, buf + (run.offset - base));
		if (r < 0)
			return r;
	}
	return 0;
}
