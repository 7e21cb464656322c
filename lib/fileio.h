/* fileio.h — the one place partial writes, EINTR and durable file replacement are handled.
 *
 *   if (fileio_write_all(fd, buf, n) < 0) ... errno says why
 *   fileio_write_file_atomic("spool/x.env", data, n, &err);   // tmp, fsync, rename, fsync(dir)
 *
 * Guarantee: when fileio_write_file_atomic returns 0 the new contents are on stable
 * storage under the final name, and a crash at any instant leaves either the old file
 * or the new one, never a mixture. */
#ifndef ETRN_FILEIO_H
#define ETRN_FILEIO_H

#include <stddef.h>
#include <sys/types.h>
#include "err.h"
#include "strbuf.h"

int fileio_write_all(int fd, const void *buf, size_t n);          /* 0 or -1 (errno) */
ssize_t fileio_read_full(int fd, void *buf, size_t n);            /* bytes read (< n at EOF) or -1 */
int fileio_fsync_dir(const char *dir, struct etrn_err *err);
/* The directory part of path, for fsync after rename. */
int fileio_dirname(const char *path, char *out, size_t n);
/* Reads a whole file (at most limit bytes, else error) into out (appended). */
int fileio_read_file(const char *path, struct strbuf *out, size_t limit, struct etrn_err *err);
int fileio_write_file_atomic(const char *path, const void *buf, size_t n, struct etrn_err *err);
/* mkdir -p with mode; existing directories are fine. */
int fileio_mkdirs(const char *path, int mode, struct etrn_err *err);
/* Sets O_NONBLOCK and FD_CLOEXEC. */
int fileio_set_nonblock(int fd);

#endif
