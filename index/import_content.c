/* import_content.c: the chunk lists of an import's files, which the store
 * writer hands back after its threads have cut and stored the bytes (the
 * reading thread only copies them, store/writer_pipe.c). An ordinary file
 * (one extent, no holes) is deferred: its inode is placed with its size and
 * gets its chunk list when the writer hands it back, in the order the files
 * ended, so the tree's chunk lists come out in the same order, and the
 * snapshot the same bytes, as when each file waited for its chunks. A sparse
 * file waits (cairn_writer_file_end delivers everything before it first).
 */
#include "import_internal.h"

#include <string.h>

void import_file_id_of_runs(struct cairn_import *imp, const struct buf *list, struct cairn_id *ret)
{
	const struct snap_run *runs =
		(const struct snap_run *)(list->data + sizeof(struct snap_chunk_list));
	size_t count = (list->size - sizeof(struct snap_chunk_list)) / sizeof(struct snap_run);
	struct cairn_file_hasher hasher;

	cairn_file_id_init(&hasher, imp->store);
	for (size_t i = 0; i < count; i++) {
		struct cairn_id id;
		memcpy(id.bytes, runs[i].chunk_id, CAIRN_ID_SIZE);
		cairn_file_id_add_run(&hasher, &id, runs[i].end);
	}
	cairn_file_hasher_final(&hasher, ret);
}

/* Stores the run list once per distinct content (equal bytes, not just an
 * equal file id, as invariant 3 asks). */
int import_content_intern(struct cairn_import *imp, const struct buf *list, uint64_t *ret)
{
	struct tree *tree = &imp->tree;
	uint64_t hash, offset;

	memcpy(&hash, list->data, sizeof(hash));
	if (intern_find(&tree->chunk_index, &tree->chunks, hash, list->data, list->size, &offset)) {
		*ret = offset;
		return 0;
	}
	offset = tree->chunks.size;
	int r = buf_append(&tree->chunks, list->data, list->size);
	if (r == 0)
		r = intern_add(&tree->chunk_index, hash, offset, list->size);
	if (r == 0)
		*ret = offset;
	return r;
}

/* The writer's callback: one deferred file's chunks, in order. */
static int content_done(void *userdata, uint64_t cookie, uint64_t size,
			const struct cairn_chunk_ref *chunks, size_t count)
{
	static const uint8_t zero[CAIRN_ID_SIZE];
	struct cairn_import *imp = userdata;
	struct snap_chunk_list head = {.size = size, .run_count = (uint32_t)count};
	struct buf *list = &imp->done_runs;
	uint64_t end = 0, offset;
	struct cairn_id id;

	if (imp->pending_head == imp->pending_len ||
	    cookie != imp->pending_base + imp->pending_head)
		return -EPROTO; /* the writer hands files back in order */
	uint32_t ino = imp->pending[imp->pending_head++];
	if (imp->pending_head == imp->pending_len) {
		imp->pending_base += imp->pending_len;
		imp->pending_head = imp->pending_len = 0;
	}
	list->size = 0;
	int r = buf_append(list, &head, sizeof(head));
	for (size_t i = 0; r == 0 && i < count; i++) {
		struct snap_run run;
		if (memcmp(chunks[i].id.bytes, zero, CAIRN_ID_SIZE) == 0) {
			imp->content_failed = true;
			return import_fail(imp, -EBADMSG, "a chunk id is all zeros");
		}
		end += chunks[i].size;
		run.end = end;
		memcpy(run.chunk_id, chunks[i].id.bytes, CAIRN_ID_SIZE);
		r = buf_append(list, &run, sizeof(run));
	}
	if (r < 0)
		return r;
	import_file_id_of_runs(imp, list, &id);
	memcpy(list->data, id.bytes, CAIRN_ID_SIZE); /* head.file_id */
	r = import_content_intern(imp, list, &offset);
	if (r == 0 && ino != UINT32_MAX)
		imp->tree.inodes[ino].data = offset;
	return r;
}

void import_content_start(struct cairn_import *imp)
{
	cairn_writer_set_file_fn(imp->writer, content_done, imp);
}

int import_content_defer(struct cairn_import *imp)
{
	if (imp->pending_len == imp->pending_cap) {
		size_t cap = imp->pending_cap ? imp->pending_cap * 2 : 1024;
		uint32_t *pending = realloc(imp->pending, cap * sizeof(*pending));
		if (!pending)
			return -ENOMEM;
		imp->pending = pending;
		imp->pending_cap = cap;
	}
	int r = cairn_writer_file_end_async(imp->writer, imp->pending_base + imp->pending_len);
	if (r < 0)
		return r;
	imp->pending[imp->pending_len++] = UINT32_MAX;
	imp->content_unbound = true;
	return 0;
}

void import_content_bind(struct cairn_import *imp, uint32_t ino)
{
	if (!imp->content_unbound)
		return;
	imp->content_unbound = false;
	imp->pending[imp->pending_len - 1] = ino;
}

int import_content_flush(struct cairn_import *imp)
{
	int r = cairn_writer_files_flush(imp->writer);

	if (r < 0 && !imp->content_failed)
		import_fail(imp, r, "storing the files' content: %s",
			    cairn_writer_error(imp->writer));
	return r;
}
