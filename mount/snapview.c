/* snapview.c: the views of a whole-store mount's snapshots (snaps.c
 * publishes them): the snapshots in name order and the map of their inode
 * slots, made whole and never changed after. Slots come from a hash of the
 * name, so a snapshot keeps its inode numbers across remounts whatever
 * others come and go; within a mount a slot is never given twice, so a
 * snapshot a refresh removed still decodes: its open files and the inodes
 * the kernel holds keep working.
 */
#include "mount_internal.h"

#include <string.h>

static struct snap *slot_find(struct snap *const *map, size_t cap, uint64_t slot)
{
	for (size_t s = slot & (cap - 1);; s = (s + 1) & (cap - 1)) {
		if (!map[s] || map[s]->slot == slot)
			return map[s];
	}
}

static void slot_insert(struct snap **map, size_t cap, struct snap *snap)
{
	size_t s = snap->slot & (cap - 1);

	while (map[s])
		s = (s + 1) & (cap - 1);
	map[s] = snap;
}

static uint64_t name_hash(const char *name)
{
	uint64_t hash = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		hash = (hash ^ *p) * 0x100000001b3ull;
	return hash;
}

/* A slot from a hash of the name, so a snapshot keeps its inode numbers when
 * others are added or removed (unless two names share a slot); the next free
 * one when another snapshot has it, or had it earlier in this mount. */
static uint64_t slot_pick(struct snap *const *map, size_t cap, const char *name)
{
	uint64_t slot = name_hash(name) % SLOT_MAX + 1;

	while (slot_find(map, cap, slot))
		slot = slot % SLOT_MAX + 1;
	return slot;
}

struct snap *snap_view_slot(const struct snap_view *view, uint64_t slot)
{
	return slot_find(view->slot_map, view->slot_map_cap, slot);
}

struct snap *snap_view_find(const struct snap_view *view, const char *name)
{
	size_t lo = 0, hi = view->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(view->snaps[mid]->name, name);
		if (c == 0)
			return view->snaps[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct snap_view *view_new(size_t count, size_t served)
{
	struct snap_view *view = calloc(1, sizeof(*view));
	size_t cap = 16;

	while (cap < served * 2)
		cap *= 2;
	if (!view)
		return NULL;
	view->snaps = calloc(count ? count : 1, sizeof(*view->snaps));
	view->slot_map = calloc(cap, sizeof(*view->slot_map));
	view->slot_map_cap = cap;
	if (!view->snaps || !view->slot_map) {
		free(view->snaps);
		free(view->slot_map);
		free(view);
		return NULL;
	}
	return view;
}

void snap_view_free(struct snap_view *view)
{
	if (!view)
		return;
	free(view->snaps);
	free(view->slot_map);
	free(view);
}

struct snap_view *snap_view_first(struct snap *snaps, size_t count, bool hashed)
{
	struct snap_view *view = view_new(count, count);

	if (!view)
		return NULL;
	view->count = count;
	for (size_t i = 0; i < count; i++) {
		struct snap *snap = &snaps[i];
		view->snaps[i] = snap;
		if (hashed)
			snap->slot = slot_pick(view->slot_map, view->slot_map_cap, snap->name);
		if (snap->slot)
			slot_insert(view->slot_map, view->slot_map_cap, snap);
	}
	return view;
}

void snap_release(struct snap *snap)
{
	cairn_index_free(atomic_load(&snap->idx));
	pthread_mutex_destroy(&snap->open_lock);
	free(snap->name);
	free(snap->snapshot);
}

struct snap *snap_new(const char *name)
{
	struct snap *snap = calloc(1, sizeof(*snap));

	if (!snap)
		return NULL;
	snap->name = strdup(name);
	snap->snapshot = strdup(name);
	snap->root = CAIRN_INDEX_ROOT;
	pthread_mutex_init(&snap->open_lock, NULL);
	if (!snap->name || !snap->snapshot) {
		free(snap->name);
		free(snap->snapshot);
		pthread_mutex_destroy(&snap->open_lock);
		free(snap);
		return NULL;
	}
	return snap;
}

static int changes_add(struct snap_changes *c, const char *name)
{
	if (c->count == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		char **grown = realloc(c->names, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		c->names = grown;
		c->cap = cap;
	}
	if (!(c->names[c->count] = strdup(name)))
		return -ENOMEM;
	c->count++;
	return 0;
}

void snap_changes_release(struct snap_changes *c)
{
	for (size_t i = 0; i < c->count; i++)
		free(c->names[i]);
	free(c->names);
	*c = (struct snap_changes){0};
}

struct snap_view *snap_view_next(const struct snap_view *old, size_t served, char **names,
				 size_t count, struct snap **made, struct snap_changes *changes)
{
	struct snap_view *view = view_new(count, served + count);
	size_t i = 0, j = 0;

	if (!view)
		return NULL;
	for (size_t s = 0; s < old->slot_map_cap; s++)
		if (old->slot_map[s])
			slot_insert(view->slot_map, view->slot_map_cap, old->slot_map[s]);
	while (i < old->count || j < count) {
		int c = i == old->count ? 1
			: j == count    ? -1
					: strcmp(old->snaps[i]->name, names[j]);
		if (c == 0) {
			view->snaps[view->count++] = old->snaps[i++];
			j++;
			continue;
		}
		struct snap *snap = NULL;
		if (c > 0 && (snap = snap_new(names[j]))) {
			snap->added_next = *made;
			*made = snap;
			snap->slot = slot_pick(view->slot_map, view->slot_map_cap, snap->name);
			slot_insert(view->slot_map, view->slot_map_cap, snap);
			view->snaps[view->count++] = snap;
		}
		if ((c > 0 && !snap) ||
		    changes_add(changes, c < 0 ? old->snaps[i]->name : names[j]) < 0) {
			snap_view_free(view);
			return NULL;
		}
		if (c < 0)
			i++;
		else
			j++;
	}
	return view;
}
