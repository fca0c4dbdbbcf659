/* writer_copy.c: records copied from another store as they are stored, for
 * `cairn copy` between stores that share a hash key. Decompressing and
 * compressing again is most of what a copy would cost; a record whose
 * chunks are all wanted and all new to the destination goes into the
 * writer's open pack with its compressed bytes as they are, after every
 * chunk in it is decoded and checked against its id (invariant 2: nothing
 * unchecked lands). The same key makes the same ids and variants valid in
 * both stores. A record with chunks nobody wants would bring them along, so
 * it is not copied: the caller reads and puts its chunks one by one. A
 * delta record is copied only when its base is in the destination already,
 * stored whole (not a delta), so that its chain there is one long whatever
 * it was in the source (DELTA_MAX_DEPTH holds); its reference says so.
 */
#include "writer_internal.h"

#include <stdio.h>
#include <string.h>

struct cairn_record_copier {
	struct cairn_store *src;
	struct cairn_writer *writer;
	struct frame_reader reader;
	uint8_t *buf;    /* one chunk of src */
	uint8_t *head;   /* a record's header and member table */
	uint8_t *record; /* a delta record, read again after its check */
	char error[600];
};

int cairn_record_copier_new(struct cairn_store *src, struct cairn_writer *writer,
			    struct cairn_record_copier **ret)
{
	struct cairn_record_copier *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->src = src;
	c->writer = writer;
	c->buf = malloc(src->params.chunk_max);
	c->head = malloc(record_head_size(RECORD_MAX_MEMBERS));
	c->record = malloc(pack_scratch_size(&src->params));
	int r = c->buf && c->head && c->record ? frame_reader_init(&c->reader, &src->params, 1)
					       : -ENOMEM;
	if (r < 0) {
		free(c->buf);
		free(c->head);
		free(c->record);
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void cairn_record_copier_free(struct cairn_record_copier *c)
{
	if (!c)
		return;
	frame_reader_release(&c->reader);
	free(c->buf);
	free(c->head);
	free(c->record);
	free(c);
}

const char *cairn_record_copier_error(const struct cairn_record_copier *c)
{
	return c->error;
}

static const struct pack_member *head_members(const struct cairn_record_copier *c)
{
	return (const struct pack_member *)(c->head + sizeof(struct pack_record));
}

/* Whether every chunk of the record (its member table in c->head) is
 * wanted and in neither the destination's table nor its session. */
static bool record_wanted(struct cairn_record_copier *c, const struct table_entry *e,
			  cairn_chunk_want_fn want, void *userdata)
{
	const struct chunk_table *dst_table = store_table(c->writer->store);
	const struct pack_member *m = head_members(c);

	for (unsigned i = 0; i < e->members; i++) {
		struct cairn_id id;
		memcpy(id.bytes, m[i].chunk_id, CAIRN_ID_SIZE);
		if (!want(userdata, &id) || table_find(dst_table, &id) ||
		    writer_find_new(c->writer, &id))
			return false;
	}
	return true;
}

/* Decodes every chunk of the record and checks it against its id; the
 * reader is left holding the whole record (header, members, payload). */
static int record_check_all(struct cairn_record_copier *c, int fd, const struct table_entry *e)
{
	const struct pack_member *m = head_members(c);
	uint32_t inner = 0;
	char msg[400];

	frame_reader_forget(&c->reader); /* the first get reads this record */
	for (unsigned i = 0; i < e->members; i++) {
		struct table_entry member = *e;
		memcpy(member.chunk_id, m[i].chunk_id, CAIRN_ID_SIZE);
		member.size = m[i].size;
		member.variant = m[i].variant;
		member.inner_offset = inner;
		inner += m[i].size;
		int64_t n = frame_reader_get(&c->reader, c->src, fd, &member, c->buf,
					     c->src->params.chunk_max, msg, sizeof(msg));
		if (n < 0) {
			cairn_format(c->error, sizeof(c->error), "%s: %s", c->src->path, msg);
			return (int)n;
		}
	}
	return 0;
}

/* The record (in the reader) appended to the open pack as the workers
 * append theirs, its chunks new entries of the session. */
static int record_append(struct cairn_record_copier *c, const struct table_entry *e,
			 uint8_t *record)
{
	struct cairn_writer *w = c->writer;
	const struct pack_member *m =
		(const struct pack_member *)(record + sizeof(struct pack_record));
	struct group group = {0};

	for (unsigned i = 0; i < e->members; i++) {
		struct cairn_id id;
		memcpy(id.bytes, m[i].chunk_id, CAIRN_ID_SIZE);
		struct new_entry *entry = writer_entry_add(w, &id, m[i].variant, m[i].size);
		if (!entry)
			return -ENOMEM;
		entry->e.inner_offset = group.size;
		entry->delta_depth = e->codec == CODEC_DELTA; /* its reference says 1 */
		group.members[group.count++] = entry;
		group.size += m[i].size;
		w->stats.chunks_in++;
		w->stats.chunks_new++;
		w->stats.bytes_in += m[i].size;
		w->stats.bytes_new += m[i].size;
	}
	pthread_mutex_lock(&w->lock);
	int r = w->failure ? check_failure_locked(w)
			   : pack_append(w, &group, record, e->stored_size, e->codec);
	if (r < 0 && !w->failure)
		w->failure = r;
	for (unsigned i = 0; i < group.count; i++)
		atomic_store_explicit(&group.members[i]->state, r < 0 ? ENTRY_FAILED : ENTRY_STORED,
				      memory_order_release);
	if (r < 0)
		cairn_format(c->error, sizeof(c->error), "%s: %s", w->store->path, w->failure_msg);
	pthread_cond_broadcast(&w->done_cond);
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* Whether the destination holds the chunk base_id of base_size bytes
 * whole (committed, or stored by this session), not as a delta. */
static bool base_whole(struct cairn_record_copier *c, const uint8_t base_id[CAIRN_ID_SIZE],
		       uint32_t base_size)
{
	struct cairn_id id;

	memcpy(id.bytes, base_id, CAIRN_ID_SIZE);
	const struct table_entry *e = table_find(store_table(c->writer->store), &id);
	if (e)
		return e->codec != CODEC_DELTA && e->size == base_size;
	struct new_entry *n = writer_find_new(c->writer, &id);
	/* A worker writes a new entry's codec before its state. */
	return n && atomic_load_explicit(&n->state, memory_order_acquire) == ENTRY_STORED &&
	       n->e.codec != CODEC_DELTA && n->e.size == base_size;
}

/* A delta record (checked already) read again into c->record, its base
 * where it goes looked at, and its reference's depth made 1. Returns 1
 * when it may be copied, 0 when not, or -errno. */
static int delta_prepare(struct cairn_record_copier *c, int fd, const struct table_entry *e)
{
	size_t size = record_head_size(1) + e->stored_size;
	struct delta_ref ref;

	if (e->stored_size < sizeof(ref) || size > pack_scratch_size(&c->src->params))
		return 0;
	ssize_t n = cairn_pread_full(fd, c->record, size, e->offset);
	if (n < 0) {
		cairn_format(c->error, sizeof(c->error), "%s: packs: %s", c->src->path,
			     strerror((int)-n));
		return (int)n;
	}
	if ((size_t)n != size || memcmp(c->record, c->head, record_head_size(1)) != 0)
		return 0; /* changed under us: the chunk by chunk way will say */
	uint8_t *payload = c->record + record_head_size(1);
	memcpy(&ref, payload, sizeof(ref));
	if (!base_whole(c, ref.base_id, ref.base_size))
		return 0;
	ref.depth = 1;
	memcpy(payload, &ref, sizeof(ref));
	return 1;
}

int cairn_record_copier_copy(struct cairn_record_copier *c, const struct cairn_id *id,
			     cairn_chunk_want_fn want, cairn_chunk_copied_fn copied, void *userdata)
{
	const struct table_entry *e = table_find(store_table(c->src), id);

	c->error[0] = '\0';
	if (!e)
		return -ENOENT;
	if (e->members < 1 || e->members > RECORD_MAX_MEMBERS ||
	    (e->codec == CODEC_DELTA && e->members != 1))
		return 0;
	int fd = store_pack_fd(c->src, e->pack_num);
	if (fd < 0) {
		cairn_format(c->error, sizeof(c->error), "%s: packs: %s", c->src->path,
			     strerror(-fd));
		return fd;
	}
	size_t head = record_head_size(e->members);
	/* A remote store's pack: the whole record fetched at once. */
	char why[400];
	int r = store_remote_ensure(c->src, e->pack_num, e->offset, head + e->stored_size, why,
				    sizeof(why));
	if (r < 0) {
		cairn_format(c->error, sizeof(c->error), "%s", why);
		return r;
	}
	ssize_t n = cairn_pread_full(fd, c->head, head, e->offset);
	if (n != (ssize_t)head || ((const struct pack_record *)c->head)->members != e->members)
		return 0; /* read chunk by chunk, which names the damage */
	if (!record_wanted(c, e, want, userdata))
		return 0;
	r = pipe_drain(c->writer); /* the session's entries are then this thread's */
	if (r == 0)
		r = record_check_all(c, fd, e);
	uint8_t *record = c->reader.record;
	if (r == 0 && e->codec == CODEC_DELTA) {
		r = delta_prepare(c, fd, e);
		if (r <= 0)
			return r;
		record = c->record;
	}
	if (r >= 0)
		r = record_append(c, e, record);
	if (r < 0)
		return r;
	const struct pack_member *m = head_members(c);
	for (unsigned i = 0; i < e->members; i++) {
		struct cairn_id member;
		memcpy(member.bytes, m[i].chunk_id, CAIRN_ID_SIZE);
		copied(userdata, &member, m[i].size);
	}
	return (int)e->members;
}
