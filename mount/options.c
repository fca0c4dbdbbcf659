/* options.c: the mount's options (their defaults and the comma-separated
 * -o strings of mount(8) and fstab) and the log helper every part writes
 * its lines through. Sizes are parsed by cairn_parse_size, so -o cache_size
 * takes the same suffixes as the cli's size options.
 */
#include "mount_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void mount_log(const struct mount_log *log, enum cairn_log_level level, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	if (!log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log->fn(log->userdata, level, line);
}

void mount_default_cache_dir(char *buf, size_t size)
{
	const char *base = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (base && *base == '/')
		snprintf(buf, size, "%s/cairn", base);
	else if (home && *home)
		snprintf(buf, size, "%s/.cache/cairn", home);
	else
		snprintf(buf, size, "/var/cache/cairn");
}

/* CAIRN_FUSE_TRANSPORT=io_uring|dev_fuse: the default of -o io_uring /
 * noio_uring, so that every mount a test (or a service) makes, whichever
 * way it is made, uses one transport; anything else means neither. */
static enum cairn_mount_uring transport_from_env(void)
{
	const char *env = getenv("CAIRN_FUSE_TRANSPORT");

	if (env && strcmp(env, "io_uring") == 0)
		return CAIRN_MOUNT_URING_ON;
	if (env && strcmp(env, "dev_fuse") == 0)
		return CAIRN_MOUNT_URING_OFF;
	return CAIRN_MOUNT_URING_AUTO;
}

void cairn_mount_options_default(struct cairn_mount_options *o)
{
	*o = (struct cairn_mount_options){
		.cache_size = 4ull << 30,
		.chunk_cache_size = 16u << 20, /* docs/BENCHMARKS.md, issue 9: peak RSS */
		.passthrough_min = 1u << 20,
		.background_min = 16u << 20,
		.passthrough = true,
		.uid = -1,
		.gid = -1,
		.umask = -1,
		.dmask = -1,
		.fmask = -1,
		.io_uring = transport_from_env(),
		.refresh = -1,
	};
}

static int apply_readdirplus(struct cairn_mount_options *o, const char *value)
{
	static const char *const names[] = {[CAIRN_RDPLUS_ALWAYS] = "always",
					    [CAIRN_RDPLUS_AUTO] = "auto",
					    [CAIRN_RDPLUS_NEVER] = "never"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(value, names[i]) == 0) {
			o->readdirplus = i;
			return 0;
		}
	return -EINVAL;
}

static int parse_id(const char *text, int64_t *ret)
{
	uint64_t value;

	if (cairn_parse_size(text, &value) < 0 || value > UINT32_MAX - 1 ||
	    !isdigit((int)text[strlen(text) - 1]))
		return -EINVAL;
	*ret = (int64_t)value;
	return 0;
}

/* -o refresh=SECONDS: plain decimal, at most a day. */
static int parse_seconds(const char *text, int64_t *ret)
{
	char *end;

	if (!isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno || *end || value > 86400)
		return -EINVAL;
	*ret = (int64_t)value;
	return 0;
}

/* Options mount(8) and fstab pass that mean nothing for a read-only FUSE
 * filesystem, and the userspace ones mount(8) documents for other programs
 * (x-systemd.automount, x-gvfs-show, comment=systemd.automount). */
static bool is_ignored_option(const char *opt)
{
	static const char *const ignored[] = {
		"ro",       "rw",         "defaults", "auto",   "noauto", "user",  "nouser",
		"users",    "exec",       "noexec",   "async",  "sync",   "atime", "noatime",
		"relatime", "nodiratime", "_netdev",  "nofail", "nosuid", "nodev"};

	for (size_t i = 0; i < ARRAY_SIZE(ignored); i++)
		if (strcmp(opt, ignored[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

static int parse_mask(const char *text, int32_t *ret)
{
	char *end;
	long mask = strtol(text, &end, 8);

	if (*text == '\0' || *end != '\0' || mask < 0 || mask > 07777)
		return -EINVAL;
	*ret = (int32_t)mask;
	return 0;
}

/* One FROM:TO[:COUNT] of uidmap= or gidmap=. */
static int parse_id_range(char *text, struct cairn_mount_id_range *ret)
{
	int64_t from, to, count = 1;
	char *to_text = strchr(text, ':');

	if (!to_text)
		return -EINVAL;
	*to_text++ = '\0';
	char *count_text = strchr(to_text, ':');
	if (count_text)
		*count_text++ = '\0';
	if (parse_id(text, &from) < 0 || parse_id(to_text, &to) < 0 ||
	    (count_text && parse_id(count_text, &count) < 0) || count == 0 ||
	    from + count - 1 > UINT32_MAX - 1 || to + count - 1 > UINT32_MAX - 1)
		return -EINVAL;
	*ret = (struct cairn_mount_id_range){(uint32_t)from, (uint32_t)to, (uint32_t)count};
	return 0;
}

/* uidmap=R/R/...: '/' separates ranges, since ',' separates options; a
 * repeated option adds its ranges to the earlier ones. */
static int parse_id_map(const char *value, struct cairn_mount_id_range *ranges, unsigned *count)
{
	_cleanup_free_ char *copy = strdup(value);

	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *range = strtok_r(copy, "/", &save); range;
	     range = strtok_r(NULL, "/", &save)) {
		if (*count == CAIRN_MOUNT_ID_RANGES_MAX ||
		    parse_id_range(range, &ranges[*count]) < 0)
			return -EINVAL;
		(*count)++;
	}
	return *value ? 0 : -EINVAL;
}

static int apply_owner_option(struct cairn_mount_options *o, const char *key, const char *value)
{
	if (strcmp(key, "uidmap") == 0)
		return parse_id_map(value, o->uidmap, &o->uidmap_count);
	if (strcmp(key, "gidmap") == 0)
		return parse_id_map(value, o->gidmap, &o->gidmap_count);
	if (strcmp(key, "dmask") == 0)
		return parse_mask(value, &o->dmask);
	if (strcmp(key, "fmask") == 0)
		return parse_mask(value, &o->fmask);
	return parse_mask(value, &o->umask);
}

static int apply_value_option(struct cairn_mount_options *o, const char *key, const char *value)
{
	uint64_t size;
	int64_t id;

	if (strcmp(key, "cache") == 0 && *value) {
		size_t len = strlen(value);
		if (len >= sizeof(o->cache_dir))
			return -EINVAL;
		memcpy(o->cache_dir, value, len + 1);
		return 0;
	}
	if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
		if (parse_id(value, &id) < 0)
			return -EINVAL;
		*(key[0] == 'u' ? &o->uid : &o->gid) = id;
		return 0;
	}
	if (strcmp(key, "uidmap") == 0 || strcmp(key, "gidmap") == 0 || strcmp(key, "umask") == 0 ||
	    strcmp(key, "dmask") == 0 || strcmp(key, "fmask") == 0)
		return apply_owner_option(o, key, value);
	if (strcmp(key, "readdirplus") == 0)
		return apply_readdirplus(o, value);
	if (strcmp(key, "refresh") == 0)
		return parse_seconds(value, &o->refresh);
	if (strcmp(key, "threads") == 0) {
		if (cairn_parse_size(value, &size) < 0 || size == 0 || size > 256)
			return -EINVAL;
		o->threads = (unsigned)size;
		return 0;
	}
	uint64_t *target = strcmp(key, "cache_size") == 0        ? &o->cache_size
			   : strcmp(key, "chunk_cache") == 0     ? &o->chunk_cache_size
			   : strcmp(key, "remote_cache") == 0    ? &o->remote_cache_max
			   : strcmp(key, "passthrough_min") == 0 ? &o->passthrough_min
			   : strcmp(key, "background_min") == 0  ? &o->background_min
								 : NULL;
	if (!target || cairn_parse_size(value, &size) < 0)
		return -EINVAL;
	*target = size;
	return 0;
}

/* -o io_uring / noio_uring: the last one wins, like mount(8)'s pairs. */
static int apply_transport_option(struct cairn_mount_options *o, const char *opt)
{
	if (strcmp(opt, "io_uring") == 0)
		o->io_uring = CAIRN_MOUNT_URING_ON;
	else if (strcmp(opt, "noio_uring") == 0)
		o->io_uring = CAIRN_MOUNT_URING_OFF;
	else
		return -EINVAL;
	return 0;
}

static int apply_option(struct cairn_mount_options *o, char *opt)
{
	char *eq = strchr(opt, '=');

	/* Before the split: fstab's comment=... and x-name=value are whole. */
	if (is_ignored_option(opt))
		return 0;
	if (eq) {
		*eq = '\0';
		return apply_value_option(o, opt, eq + 1);
	}
	bool *flag = strcmp(opt, "allow_other") == 0           ? &o->allow_other
		     : strcmp(opt, "default_permissions") == 0 ? &o->default_permissions
		     : strcmp(opt, "suid") == 0                ? &o->suid
		     : strcmp(opt, "dev") == 0                 ? &o->dev
		     : strcmp(opt, "caps") == 0                ? &o->caps
		     : strcmp(opt, "debug") == 0               ? &o->debug
		     : strcmp(opt, "mapowners") == 0           ? &o->mapowners
		     : strcmp(opt, "nomerge") == 0             ? &o->nomerge
							       : NULL;
	if (flag) {
		*flag = true;
		return 0;
	}
	if (strcmp(opt, "nopassthrough") == 0) {
		o->passthrough = false;
		return 0;
	}
	if (strcmp(opt, "versions") == 0) {
		o->versions = true;
		return 0;
	}
	return apply_transport_option(o, opt);
}

int cairn_mount_options_parse(struct cairn_mount_options *o, const char *opts, char *msg,
			      size_t msg_size)
{
	_cleanup_free_ char *copy = strdup(opts);

	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *opt = strtok_r(copy, ",", &save); opt;
	     opt = strtok_r(NULL, ",", &save)) {
		char shown[200];
		snprintf(shown, sizeof(shown), "%s", opt);
		if (apply_option(o, opt) < 0) {
			cairn_format(msg, msg_size, "unknown or invalid mount option '%s'", shown);
			return -EINVAL;
		}
	}
	return 0;
}
