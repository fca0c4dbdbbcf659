/* path.h: opening what lies inside a directory (a store's parts) without
 * ever following a symbolic link, so that a link planted in a store that
 * others can write never sends a read, a create or a delete outside it
 * (docs/SECURITY.md). Every layer may include it. Nothing here prints.
 */
#ifndef CAIRN_PATH_H
#define CAIRN_PATH_H

#include <stdbool.h>
#include <sys/types.h>

/* Opens path, relative and made of '/'-separated names, beneath dirfd,
 * following no symbolic link on the way nor at the end: openat2 with
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS where the kernel has it, else one
 * O_NOFOLLOW openat per name. flags and mode as for openat(2); O_CLOEXEC
 * and O_NOFOLLOW are added. Returns the fd or -errno: -ELOOP when a name on
 * the way is a symbolic link, -EXDEV for an absolute path or "..". */
int cairn_openat_beneath(int dirfd, const char *path, int flags, mode_t mode);

/* Opens the directory path beneath dirfd (as cairn_openat_beneath,
 * O_RDONLY|O_DIRECTORY). Returns the fd or -errno: -ELOOP for a symbolic
 * link, -ENOTDIR for anything else that is not a directory. */
int cairn_open_dir_beneath(int dirfd, const char *path);

/* Opens the regular file path beneath dirfd (as cairn_openat_beneath, with
 * flags and mode) without blocking: a FIFO or device planted under its name
 * is refused, never waited on. The fd it returns is in blocking mode.
 * Returns the fd or -errno: -ELOOP for a symbolic link, -EISDIR for a
 * directory, -EBADFD for any other type. */
int cairn_open_file_beneath(int dirfd, const char *path, int flags, mode_t mode);

/* Checks, without following it, that path beneath dirfd is a directory
 * (want_dir) or a regular file, or does not exist. Returns 0 (also when it
 * does not exist) or the -errno the open helpers above would give. */
int cairn_check_beneath(int dirfd, const char *path, bool want_dir);

/* The text for an error of the helpers above, to follow "STORE/PART: ":
 * what the part is instead of what it should be, else strerror's. */
const char *cairn_path_strerror(int r);

#endif
