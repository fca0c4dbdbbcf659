/* util.h: small helpers every layer of cairn uses: cleanup attributes,
 * ownership hand-off, whole-buffer I/O and durable file replacement.
 *
 * It lives in store/ because store/ is the bottom layer; index/, mount/ and
 * cli/ may include it. Nothing here prints.
 */
#ifndef CAIRN_UTIL_H
#define CAIRN_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Hands ownership of a pointer or fd on: returns it and clears the variable. */
#define TAKE_PTR(p)                                                                                \
	__extension__({                                                                            \
		__typeof__(p) take_ptr_tmp_ = (p);                                                 \
		(p) = NULL;                                                                        \
		take_ptr_tmp_;                                                                     \
	})
#define TAKE_FD(fd)                                                                                \
	__extension__({                                                                            \
		int take_fd_tmp_ = (fd);                                                           \
		(fd) = -1;                                                                         \
		take_fd_tmp_;                                                                      \
	})

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

/* Writes all of buf at the fd's position (write) or at offset (pwrite),
 * retrying on EINTR and short writes. Returns 0 or -errno (-EIO for a write
 * that makes no progress). */
int cairn_write_all(int fd, const void *buf, size_t size);
int cairn_pwrite_all(int fd, const void *buf, size_t size, uint64_t offset);
/* Reads up to size bytes at offset, retrying on EINTR and short reads, and
 * stops only at end of file. Returns the count read (>= 0) or -errno. */
ssize_t cairn_pread_full(int fd, void *buf, size_t size, uint64_t offset);
/* Gives the whole pages inside buf back to the kernel (they read as zeros
 * until written again): for idle buffers whose contents do not matter. */
void cairn_drop_pages(void *buf, size_t size);

/* A directory stream over a duplicate of dirfd, from its first entry
 * (dirfd stays open and the caller's; closedir closes the duplicate, which
 * shares dirfd's offset, hence the rewind). NULL with errno set. */
DIR *cairn_opendir_dup(int dirfd);

/* fsyncs the directory dirfd/path ("." for dirfd itself). Returns 0 or -errno. */
int cairn_fsync_dir(int dirfd, const char *path);

/* mkdir -p: makes each missing directory of path, and path itself unless
 * parents_only, with mode (less the umask, as mkdir(2) does): 0700 for a
 * store's or a cache's, 0755 for what extract makes. Existing ones are
 * fine. Returns 0 or -errno. */
int cairn_mkdir_p(const char *path, mode_t mode, bool parents_only);

/* Writes a fresh random name "PREFIX<16 hex>SUFFIX" into buf. Returns 0 or
 * -ENAMETOOLONG. */
int cairn_tmp_name(char *buf, size_t buf_size, const char *prefix, const char *suffix);

/* Creates and opens a new temp file in dirfd named like cairn_tmp_name, mode
 * mode, O_RDWR|O_CLOEXEC|O_EXCL. Writes the name to name_buf. Returns the fd
 * or -errno. */
int cairn_tmp_open(int dirfd, const char *prefix, const char *suffix, mode_t mode, char *name_buf,
		   size_t name_size);

/* Durably replaces dirfd/name with the fully written temp file tmp_fd, named
 * tmp_name in the same directory: fsync, rename, fsync of the directory.
 * Returns 0 or -errno; on failure the temp file is left for the caller.
 * When ret_renamed is not NULL it says whether the rename happened: after a
 * failed directory fsync name already holds the new file (readers see it;
 * a crash may still undo it), which a caller that cleans up must know. */
int cairn_commit_file(int dirfd, int tmp_fd, const char *tmp_name, const char *name,
		      bool *ret_renamed);

/* Formats a message into buf (snprintf semantics, always NUL-terminated). */
void cairn_format(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);

/* Formats size as a short human string ("1.5 GiB") into buf. Returns buf. */
const char *cairn_format_bytes(uint64_t size, char *buf, size_t buf_size);

/* Parses a size: decimal digits, then optionally K, M, G or T (either
 * case; powers of 1024) followed by nothing, "B" or "iB": "4096", "64K",
 * "1MiB", "4GB". Returns 0 and the bytes, or -EINVAL (a sign, an unknown
 * suffix, or a value past UINT64_MAX). */
int cairn_parse_size(const char *text, uint64_t *ret);

/* A monotonic clock in nanoseconds. */
uint64_t cairn_now_ns(void);

#endif
