/* object.c: the SNAPSHOT[:PATH] arguments of ls, cat and extract: split at
 * the first ':' (snapshot names cannot contain one), open the store and the
 * snapshot, and resolve the path inside it. Errors are printed here, so the
 * commands only decide what to do with the inode.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* A path may name NAME.versions (earlier versions of an entry the archive
 * held more than once), though listings do not show them. */
static int object_resolve(struct cli_object *obj, bool follow)
{
	cairn_index_show_versions(obj->idx, true);
	int r = cairn_index_resolve(obj->idx, obj->path, follow, &obj->ino);
	cairn_index_show_versions(obj->idx, false);
	return r;
}

int cli_object_open(const struct cli *cli, const char *arg, bool follow, struct cli_object *ret)
{
	struct cli_object obj = {0};
	const char *colon = strchr(arg, ':');

	obj.snapshot = colon ? strndup(arg, (size_t)(colon - arg)) : strdup(arg);
	obj.path = colon ? colon + 1 : "";
	if (!obj.snapshot) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	obj.store = cli_open_store(cli);
	obj.idx = obj.store ? cairn_index_new() : NULL;
	if (!obj.idx) {
		if (obj.store)
			cli_error("out of memory");
		cli_object_release(&obj);
		return EXIT_ERROR;
	}
	int r = cairn_index_open(obj.idx, obj.store, obj.snapshot);
	if (r < 0)
		cli_error("%s", cairn_index_error(obj.idx));
	else if ((r = object_resolve(&obj, follow)) < 0)
		cli_object_error(&obj, r);
	if (r < 0) {
		cli_object_release(&obj);
		return EXIT_ERROR;
	}
	*ret = obj;
	return EXIT_OK;
}

void cli_object_release(struct cli_object *obj)
{
	cairn_index_free(obj->idx);
	cairn_store_free(obj->store);
	free(obj->snapshot);
	*obj = (struct cli_object){0};
}

int cli_object_error(const struct cli_object *obj, int r)
{
	if (r == -EBADMSG)
		cli_error("%s", cairn_index_error(obj->idx));
	else
		cli_error("%s:%s: %s", obj->snapshot, obj->path, strerror(-r));
	return EXIT_ERROR;
}
