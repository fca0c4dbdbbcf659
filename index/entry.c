/* entry.c: one archive entry into the tree. Metadata and xattrs are copied
 * into a tree inode, file content streams into the store writer (one
 * writer file per data segment: holes of sparse files never pass through the
 * chunker), and the entry is placed as tar -x would place it: last one wins,
 * implied parents are created, ".." paths and symlinked parents refused.
 * Anything that cannot be represented is a warning naming the entry, or an
 * error when it would make the snapshot wrong.
 */
#include "import_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- metadata ---- */

static uint32_t id_or_nobody(struct cairn_import *imp, int64_t id, const char *what)
{
	if (id >= 0 && id <= UINT32_MAX - 1)
		return (uint32_t)id;
	import_warn(imp, "%s %lld is out of range; using 65534", what, (long long)id);
	return 65534;
}

static int entry_owner(struct cairn_import *imp, struct archive_entry *entry, uint32_t *ret)
{
	const char *user = archive_entry_uname(entry);
	const char *group = archive_entry_gname(entry);
	char pair[2 * 256 + 2];

	*ret = 0;
	if (!user && !group)
		return 0;
	size_t user_len = user ? strnlen(user, 256) : 0,
	       group_len = group ? strnlen(group, 256) : 0;
	if (user_len > 255 || group_len > 255) {
		import_warn(imp, "owner names longer than 255 bytes are not kept");
		return 0;
	}
	memcpy(pair, user ? user : "", user_len);
	pair[user_len] = '\0';
	memcpy(pair + user_len + 1, group ? group : "", group_len);
	int r = tree_intern_string(&imp->tree, pair, user_len + 1 + group_len, ret);
	return r == -E2BIG ? import_fail(imp, r, "too many names (the string pool is full)") : r;
}

static void entry_metadata(struct cairn_import *imp, struct archive_entry *entry,
			   struct tree_inode *inode)
{
	long nsec = archive_entry_mtime_nsec(entry);

	inode->mode = archive_entry_mode(entry) & (S_IFMT | 07777);
	/* No type at all: ar has none to give (GNU ar writes mode 644), an odc
	 * or newc cpio may have none. libarchive's extraction, and so bsdtar
	 * -x, writes such an entry as a regular file. */
	if ((inode->mode & S_IFMT) == 0)
		inode->mode |= S_IFREG;
	inode->uid = id_or_nobody(imp, archive_entry_uid(entry), "uid");
	inode->gid = id_or_nobody(imp, archive_entry_gid(entry), "gid");
	if (archive_entry_mtime_is_set(entry)) {
		inode->mtime_sec = archive_entry_mtime(entry);
		inode->mtime_nsec = nsec >= 0 && nsec < 1000000000 ? (uint32_t)nsec : 0;
	} else {
		inode->mtime_sec = imp->tree.implied_mtime;
	}
	if (archive_entry_acl_count(entry, ARCHIVE_ENTRY_ACL_TYPE_ACCESS |
						   ARCHIVE_ENTRY_ACL_TYPE_DEFAULT |
						   ARCHIVE_ENTRY_ACL_TYPE_NFS4) > 0)
		import_warn(imp, "ACLs are not kept");
	if (archive_entry_fflags_text(entry))
		import_warn(imp, "file flags (%s) are not kept", archive_entry_fflags_text(entry));
}

/* ---- xattrs ---- */

struct xattr_in {
	const char *name;
	size_t name_len;
	const void *value;
	size_t size;
	size_t order; /* as read: of equal names, the last one read wins */
};

static int compare_xattr(const void *a, const void *b)
{
	const struct xattr_in *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorted by name; of equal names the last one read is kept. */
static size_t xattrs_dedup(struct xattr_in *in, size_t n)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(in[i].name, in[i + 1].name) == 0)
			continue;
		in[out++] = in[i];
	}
	return out;
}

static int xattrs_build(struct cairn_import *imp, struct xattr_in *in, size_t n, struct buf *out)
{
	size_t names = 0, values = 0;

	for (size_t i = 0; i < n; i++) {
		names += in[i].name_len + 1;
		values += in[i].size;
	}
	size_t total =
		sizeof(struct snap_xattr_list) + n * sizeof(struct snap_xattr) + names + values;
	if (total > CAIRN_XATTR_LIST_MAX)
		return import_fail(imp, -E2BIG, "its xattrs take more than %u bytes",
				   CAIRN_XATTR_LIST_MAX);
	struct snap_xattr_list head = {.count = (uint32_t)n, .size = (uint32_t)total};
	int r = buf_append(out, &head, sizeof(head));
	uint32_t at = (uint32_t)(sizeof(head) + n * sizeof(struct snap_xattr));
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct snap_xattr x = {.name = at,
				       .name_len = (uint16_t)in[i].name_len,
				       .value = at + (uint32_t)in[i].name_len + 1,
				       .value_len = (uint32_t)in[i].size};
		at += (uint32_t)(in[i].name_len + 1 + in[i].size);
		r = buf_append(out, &x, sizeof(x));
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = buf_append(out, in[i].name, in[i].name_len + 1);
		if (r == 0)
			r = buf_append(out, in[i].value, in[i].size);
	}
	return r;
}

static int xattrs_intern(struct cairn_import *imp, const struct buf *list, uint32_t *ret)
{
	struct tree *tree = &imp->tree;
	uint64_t hash = intern_hash(list->data, list->size);
	uint64_t offset;

	if (intern_find(&tree->xattr_index, &tree->xattrs, hash, list->data, list->size, &offset)) {
		*ret = (uint32_t)offset;
		return 0;
	}
	int r = buf_align(&tree->xattrs, 8);
	offset = tree->xattrs.size;
	if (r == 0 && offset + list->size > UINT32_MAX)
		return import_fail(imp, -E2BIG, "too many xattrs (the xattr pool is full)");
	if (r == 0)
		r = buf_append(&tree->xattrs, list->data, list->size);
	if (r == 0)
		r = intern_add(&tree->xattr_index, hash, offset, list->size);
	if (r == 0)
		*ret = (uint32_t)offset;
	return r;
}

/* Reads the entry's xattrs into in (n slots). Returns the count or -errno. */
static int64_t xattrs_read(struct cairn_import *imp, struct archive_entry *entry,
			   struct xattr_in *in, size_t n)
{
	size_t count = 0;

	while (count < n && archive_entry_xattr_next(entry, &in[count].name, &in[count].value,
						     &in[count].size) == ARCHIVE_OK) {
		struct xattr_in *x = &in[count];
		x->name_len = strlen(x->name);
		x->order = count++;
		if (x->name_len == 0 || x->name_len > 255)
			return import_fail(imp, -E2BIG, "an xattr name is empty or too long");
		if (x->size > CAIRN_XATTR_VALUE_MAX)
			return import_fail(imp, -E2BIG, "xattr %s is larger than %u bytes", x->name,
					   CAIRN_XATTR_VALUE_MAX);
	}
	return (int64_t)count;
}

static int entry_xattrs(struct cairn_import *imp, struct archive_entry *entry, uint32_t *ret)
{
	int n = archive_entry_xattr_reset(entry);
	struct buf list = {0};
	uint32_t offset = 0;

	if (n <= 0) {
		*ret = 0;
		return 0;
	}
	_cleanup_free_ struct xattr_in *in = calloc((size_t)n, sizeof(*in));
	if (!in)
		return -ENOMEM;
	int64_t count = xattrs_read(imp, entry, in, (size_t)n);
	if (count < 0)
		return (int)count;
	qsort(in, (size_t)count, sizeof(*in), compare_xattr);
	count = (int64_t)xattrs_dedup(in, (size_t)count);
	int r = xattrs_build(imp, in, (size_t)count, &list);
	if (r == 0)
		r = xattrs_intern(imp, &list, &offset);
	buf_release(&list);
	if (r == 0)
		*ret = offset;
	return r;
}

/* ---- content ---- */

struct content {
	int64_t declared; /* the entry's size, -1 if unknown */
	bool sparse_entry;
	uint64_t pos; /* bytes of the file accounted for */
	bool in_segment, holes;
	uint64_t segment_start;
	unsigned segments;
};

static int add_run(struct cairn_import *imp, const uint8_t id[CAIRN_ID_SIZE], uint64_t end)
{
	struct snap_run run = {.end = end};

	memcpy(run.chunk_id, id, CAIRN_ID_SIZE);
	return buf_append(&imp->runs, &run, sizeof(run));
}

static int writer_fail(struct cairn_import *imp, int r)
{
	if (imp->content_failed)
		return r; /* an earlier file's chunk list failed: imp->error says why */
	return import_fail(imp, r, "storing its content: %s", cairn_writer_error(imp->writer));
}

static int segment_end(struct cairn_import *imp, struct content *c)
{
	const struct cairn_chunk_ref *chunks;
	size_t count;
	uint64_t size, end = c->segment_start;

	c->in_segment = false;
	int r = cairn_writer_file_end(imp->writer, &size, &chunks, &count);
	if (r < 0)
		return writer_fail(imp, r);
	for (size_t i = 0; r == 0 && i < count; i++) {
		static const uint8_t zero[CAIRN_ID_SIZE];
		if (memcmp(chunks[i].id.bytes, zero, CAIRN_ID_SIZE) == 0)
			return import_fail(imp, -EBADMSG, "a chunk id is all zeros");
		end += chunks[i].size;
		r = add_run(imp, chunks[i].id.bytes, end);
	}
	return r;
}

static int content_block(struct cairn_import *imp, struct content *c, const void *data, size_t size,
			 int64_t offset)
{
	static const uint8_t hole[CAIRN_ID_SIZE];

	if (offset < 0 || (uint64_t)offset < c->pos)
		return import_fail(imp, -EBADMSG, "its data blocks overlap");
	if (c->declared >= 0 && (uint64_t)offset + size > (uint64_t)c->declared)
		return import_fail(imp, -EBADMSG, "it has more data than its declared size (%lld)",
				   (long long)c->declared);
	if (size == 0)
		return 0;
	int r = 0;
	if ((uint64_t)offset > c->pos) {
		if (c->in_segment)
			r = segment_end(imp, c);
		if (r == 0)
			r = add_run(imp, hole, (uint64_t)offset);
		c->holes = true;
		c->pos = (uint64_t)offset;
	}
	if (r == 0 && !c->in_segment) {
		r = cairn_writer_file_begin(imp->writer);
		if (r < 0)
			return writer_fail(imp, r);
		c->in_segment = true;
		c->segment_start = c->pos;
		c->segments++;
	}
	if (r == 0) {
		r = cairn_writer_file_write(imp->writer, data, size);
		if (r < 0)
			return writer_fail(imp, r);
	}
	c->pos += size;
	return r;
}

static int content_read(struct cairn_import *imp, struct archive *a, struct content *c)
{
	for (;;) {
		const void *data;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(a, &data, &size, &offset);
		if (r == ARCHIVE_EOF)
			return import_rar_check(imp, a); /* stored RAR 4 data */
		if (r < ARCHIVE_WARN)
			return import_fail(imp, imp->read_errno ? -imp->read_errno : -EBADMSG, "%s",
					   import_reason(imp, a));
		/* libarchive's warnings about data all say its bytes are wrong:
		 * a CRC or checksum that does not match (zip, 7z, lha, xar), a
		 * size that does not (zip); bsdtar -x fails on them too. */
		if (r == ARCHIVE_WARN)
			return import_fail(imp, -EBADMSG, "%s", import_reason(imp, a));
		imp->unpacked += size;
		r = import_check_ratio(imp, a);
		if (r == 0)
			r = content_block(imp, c, data, size, offset);
		if (r == 0 && !c->sparse_entry)
			r = import_nested_block(imp, data, size, offset);
		if (r < 0)
			return r;
	}
}

/* An ordinary file (one extent, no holes) does not wait for its chunks:
 * the inode gets them later (import_content.c). */
static int content_defer(struct cairn_import *imp, struct content *c, struct tree_inode *inode,
			 bool *ret_deferred)
{
	bool short_sparse = c->declared >= 0 && c->pos < (uint64_t)c->declared;

	*ret_deferred = false;
	if (c->holes || short_sparse || c->segments > 1)
		return 0;
	int r = c->segments == 0 ? cairn_writer_file_begin(imp->writer) : 0;
	if (r == 0)
		r = import_content_defer(imp);
	if (r < 0)
		return writer_fail(imp, r);
	c->in_segment = false;
	inode->size = c->pos;
	*ret_deferred = true;
	return 0;
}

static int content_finish(struct cairn_import *imp, struct content *c, struct tree_inode *inode,
			  bool *ret_deferred)
{
	static const uint8_t hole[CAIRN_ID_SIZE];
	struct snap_chunk_list *head = (struct snap_chunk_list *)imp->runs.data;
	int r = content_defer(imp, c, inode, ret_deferred);

	if (r < 0 || *ret_deferred)
		return r;
	if (c->in_segment)
		r = segment_end(imp, c);
	if (r == 0 && c->declared >= 0 && c->pos < (uint64_t)c->declared) {
		if (!c->sparse_entry)
			return import_fail(imp, -EBADMSG, "its data ends after %llu of %lld bytes",
					   (unsigned long long)c->pos, (long long)c->declared);
		r = add_run(imp, hole, (uint64_t)c->declared);
		c->holes = true;
		c->pos = (uint64_t)c->declared;
	}
	if (r == 0 && c->segments == 0 && !c->holes) {
		r = cairn_writer_file_begin(imp->writer); /* the empty file's id */
		if (r == 0)
			r = segment_end(imp, c);
	}
	if (r < 0)
		return r;
	head = (struct snap_chunk_list *)imp->runs.data;
	head->size = c->pos;
	head->run_count = (uint32_t)((imp->runs.size - sizeof(*head)) / sizeof(struct snap_run));
	head->flags = c->holes ? CHUNK_LIST_SPARSE : 0;
	struct cairn_id id;
	import_file_id_of_runs(imp, &imp->runs, &id);
	memcpy(head->file_id, id.bytes, CAIRN_ID_SIZE);
	inode->size = c->pos;
	return 0;
}

static int entry_content(struct cairn_import *imp, struct archive *a, struct archive_entry *entry,
			 struct tree_inode *inode)
{
	struct snap_chunk_list head = {0};
	struct content c = {
		.declared = archive_entry_size_is_set(entry) ? archive_entry_size(entry) : -1,
		.sparse_entry = archive_entry_sparse_count(entry) > 0,
	};
	/* A header with a negative size (a pax GNU.sparse.size of -10, say):
	 * bsdtar -x writes an empty file and none of the data, so does cairn,
	 * saying so; the data are drained after the entry, as a skipped
	 * entry's are. */
	bool negative = archive_entry_size_is_set(entry) && archive_entry_size(entry) < 0;
	if (negative) {
		import_warn(imp,
			    "its size is negative (%lld): kept as an empty file, as bsdtar -x "
			    "writes it",
			    (long long)archive_entry_size(entry));
		c.declared = 0;
	}

	imp->runs.size = 0;
	int r = buf_append(&imp->runs, &head, sizeof(head));
	if (r == 0 && !negative)
		r = content_read(imp, a, &c);
	/* Zip's traditional encryption checks a passphrase against one byte:
	 * 1 in 256 wrong ones pass, and the entry's data then fail to decode. */
	if (r == -EBADMSG && archive_entry_is_data_encrypted(entry))
		imp->encrypted_data_failed = true;
	bool deferred = false;
	if (r == 0)
		r = content_finish(imp, &c, inode, &deferred);
	if (r == 0 && !deferred)
		r = import_content_intern(imp, &imp->runs, &inode->data);
	if (r == 0 && c.pos > (uint64_t)INT64_MAX)
		return import_fail(imp, -E2BIG, "it is too large");
	return r;
}

/* ---- placing entries ---- */

static int skip(struct cairn_import *imp, const char *why)
{
	import_warn(imp, "skipped: %s", why);
	imp->skipped++;
	return 0;
}

static int split_path(struct cairn_import *imp, const char *path, struct path_parts *parts,
		      bool *ret_skip)
{
	int r = path_split(path, parts);

	*ret_skip = false;
	switch (r) {
	case PATH_OK:
		return 0;
	case PATH_DOTDOT:
		*ret_skip = true;
		return skip(imp, "its path contains '..' (as bsdtar -x, cairn keeps nothing "
				 "outside the root)");
	case PATH_TOO_DEEP:
		return import_fail(imp, -E2BIG, "its path is deeper than %u components",
				   PATH_DEPTH_MAX);
	case PATH_NAME_TOO_LONG:
		return import_fail(imp, -E2BIG, "a component of its path is longer than 255 bytes");
	default:
		return r;
	}
}

static int put_inode(struct cairn_import *imp, uint32_t parent, const struct tree_inode *proto)
{
	const struct path_parts *p = &imp->parts;
	int64_t ino = tree_add_inode(&imp->tree, proto);

	if (ino >= 0)
		import_content_bind(imp, (uint32_t)ino);
	if (ino >= 0)
		ino = tree_put(&imp->tree, parent, p->name[p->count - 1], p->len[p->count - 1],
			       (uint32_t)ino);
	return ino < 0 ? (int)ino : 0;
}

/* "./": its metadata becomes the root's; extract applies it to DEST, as
 * bsdtar -x applies its mode. */
static int entry_root(struct cairn_import *imp, struct archive_entry *entry,
		      struct tree_inode *proto)
{
	if (!S_ISDIR(proto->mode))
		return skip(imp, "a non-directory cannot be the root");
	int r = entry_owner(imp, entry, &proto->owner);
	if (r == 0)
		r = entry_xattrs(imp, entry, &proto->xattrs);
	if (r < 0)
		return r;
	struct tree_inode *root = &imp->tree.inodes[imp->tree.nodes[0].inode];
	uint32_t children = root->children;
	*root = *proto;
	root->children = children;
	imp->tree.root_listed = true;
	return 0;
}

static int entry_hardlink(struct cairn_import *imp, struct archive *a, struct archive_entry *entry,
			  uint32_t parent, const char *target)
{
	const struct path_parts *p = &imp->parts;
	bool skipped = false;

	int r = split_path(imp, target, &imp->link_parts, &skipped);
	if (r < 0 || skipped)
		return r;
	int64_t node = tree_find(&imp->tree, &imp->link_parts);
	if (node < 0)
		return skip(imp, "its hard link target is not in the archive before it");
	uint32_t inode = imp->tree.nodes[node].inode;
	if (S_ISDIR(imp->tree.inodes[inode].mode))
		return skip(imp, "it is a hard link to a directory");
	const char *name = p->name[p->count - 1];
	if (tree_check_replace(&imp->tree, parent, name, p->len[p->count - 1], S_IFREG) != PLACE_OK)
		return skip(imp, "a non-empty directory is in its place");
	int64_t put = tree_put(&imp->tree, parent, name, p->len[p->count - 1], inode);
	if (put < 0)
		return (int)put;
	if (!archive_entry_size_is_set(entry) || archive_entry_size(entry) <= 0)
		return 0;
	/* A link with data (cpio's last link): the data and metadata are the
	 * shared inode's, as tar -x writes them through the link. */
	struct tree_inode proto = {0};
	entry_metadata(imp, entry, &proto);
	proto.mode = S_IFREG | (proto.mode & 07777);
	r = entry_owner(imp, entry, &proto.owner);
	if (r == 0)
		r = entry_xattrs(imp, entry, &proto.xattrs);
	if (r == 0)
		r = entry_content(imp, a, entry, &proto);
	if (r == 0) {
		imp->tree.inodes[inode] = proto;
		import_content_bind(imp, inode);
	}
	return r;
}

static int entry_symlink(struct cairn_import *imp, struct archive_entry *entry,
			 struct tree_inode *inode, bool *ret_skip)
{
	const char *target = archive_entry_symlink(entry);
	uint32_t offset;

	if (!target)
		target = archive_entry_symlink_utf8(entry);
	size_t len = target ? strlen(target) : 0;
	*ret_skip = len == 0 || len > CAIRN_SYMLINK_MAX;
	if (*ret_skip)
		return skip(imp, "its symlink target is empty or longer than 4095 bytes");
	int r = tree_intern_string(&imp->tree, target, len, &offset);
	if (r < 0)
		return r == -E2BIG ? import_fail(imp, r, "too many names") : r;
	inode->data = offset;
	inode->size = len;
	return 0;
}

static int entry_body(struct cairn_import *imp, struct archive *a, struct archive_entry *entry,
		      struct tree_inode *inode, bool *ret_skip)
{
	*ret_skip = false;
	switch (inode->mode & S_IFMT) {
	case S_IFREG:
		return entry_content(imp, a, entry, inode);
	case S_IFLNK:
		return entry_symlink(imp, entry, inode, ret_skip);
	case S_IFCHR:
	case S_IFBLK:
		inode->data = (uint64_t)archive_entry_rdevmajor(entry) << 32 |
			      (uint32_t)archive_entry_rdevminor(entry);
		return 0;
	case S_IFDIR:
	case S_IFIFO:
	case S_IFSOCK:
		return 0;
	default:
		*ret_skip = true;
		return skip(imp, "it has an unknown file type");
	}
}

static int entry_path(struct cairn_import *imp, struct archive_entry *entry)
{
	const char *path = archive_entry_pathname(entry);

	if (!path)
		path = archive_entry_pathname_utf8(entry);
	imp->entry_path = path;
	if (!path || !*path)
		return import_fail(imp, -EBADMSG, "an entry has no name");
	return 0;
}

int import_entry(struct cairn_import *imp, struct archive *a, struct archive_entry *entry)
{
	struct tree_inode proto = {0};
	uint32_t parent = 0;
	bool skipped = false;

	import_nested_entry(imp);
	int r = entry_path(imp, entry);
	if (r == 0)
		r = split_path(imp, imp->entry_path, &imp->parts, &skipped);
	if (r < 0 || skipped)
		return r;
	const char *hardlink = archive_entry_hardlink(entry);
	if (imp->parts.count > 0) {
		r = tree_place_parent(&imp->tree, &imp->parts, &parent);
		if (r == PLACE_THROUGH_SYMLINK)
			return skip(imp, "a parent directory in its path is a symlink");
		if (r == PLACE_NOT_DIR)
			return skip(imp, "a parent in its path is not a directory");
		if (r < 0)
			return r;
		if (hardlink)
			return entry_hardlink(imp, a, entry, parent, hardlink);
	}
	entry_metadata(imp, entry, &proto);
	if (imp->parts.count == 0)
		return entry_root(imp, entry, &proto);
	const struct path_parts *p = &imp->parts;
	if (tree_check_replace(&imp->tree, parent, p->name[p->count - 1], p->len[p->count - 1],
			       proto.mode) != PLACE_OK)
		return skip(imp, "a non-empty directory is in its place");
	r = entry_owner(imp, entry, &proto.owner);
	if (r == 0)
		r = entry_xattrs(imp, entry, &proto.xattrs);
	if (r == 0)
		r = entry_body(imp, a, entry, &proto, &skipped);
	if (r < 0 || skipped)
		return r;
	r = put_inode(imp, parent, &proto);
	if (r == 0 && imp->spool_fd >= 0)
		r = import_nested_expand(imp, parent);
	return r;
}
