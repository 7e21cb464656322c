/* fileio.c — partial writes, EINTR, and durable atomic file replacement, handled once.
 *
 *   fileio_write_all(fd, buf, n);                       // all bytes or -1
 *   fileio_write_file_atomic(path, data, n, &err);      // tmp, fsync, rename, fsync(dir)
 *
 * After fileio_write_file_atomic returns 0 the new contents are durable under path; a
 * crash at any point leaves the old file or the new one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

int fileio_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

ssize_t fileio_read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int fileio_dirname(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return str_copy(out, n, ".");
    if (slash == path)
        return str_copy(out, n, "/");
    size_t len = (size_t)(slash - path);
    if (len >= n)
        return -1;
    memcpy(out, path, len);
    out[len] = '\0';
    return 0;
}

int fileio_fsync_dir(const char *dir, struct etrn_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set_errno(err, "%s: cannot open directory", dir);
    int rc;
    do
        rc = fsync(fd);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        err_set_errno(err, "%s: fsync", dir);
        close(fd);
        return -1;
    }
    if (close(fd) < 0)
        return err_set_errno(err, "%s: close", dir);
    return 0;
}

int fileio_read_file(const char *path, struct strbuf *out, size_t limit, struct etrn_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set_errno(err, "%s", path);
    char buf[8192];
    size_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err_set_errno(err, "%s: read", path);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        total += (size_t)r;
        if (total > limit) {
            close(fd);
            return err_set(err, "%s: larger than %zu bytes", path, limit);
        }
        if (strbuf_append(out, buf, (size_t)r) < 0) {
            close(fd);
            return err_set(err, "%s: does not fit in memory (%zu bytes read)", path, total);
        }
    }
    close(fd);
    return 0;
}

int fileio_write_file_atomic(const char *path, const void *buf, size_t n, struct etrn_err *err)
{
    char tmp[4096];
    if (str_format(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
        return err_set(err, "%s: path too long", path);
    /* O_EXCL: never write through a symlink or into a file someone else holds open. A
     * leftover with our pid can only be from a crashed earlier process: remove it once. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set_errno(err, "%s: cannot create", tmp);
    if (fileio_write_all(fd, buf, n) < 0) {
        err_set_errno(err, "%s: write", tmp);
        goto fail;
    }
    int rc;
    do
        rc = fsync(fd);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        err_set_errno(err, "%s: fsync", tmp);
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        err_set_errno(err, "%s: close", tmp);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        err_set_errno(err, "%s: rename to %s", tmp, path);
        goto fail;
    }
    /* The rename is durable only once the directory entry is. */
    char dir[4096];
    if (fileio_dirname(path, dir, sizeof dir) < 0)
        return err_set(err, "%s: path too long", path);
    return fileio_fsync_dir(dir, err);
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

int fileio_mkdirs(const char *path, int mode, struct etrn_err *err)
{
    char buf[4096];
    if (path[0] == '\0')
        return err_set(err, "mkdir: empty path");
    if (str_copy(buf, sizeof buf, path) < 0)
        return err_set(err, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
            return err_set_errno(err, "%s: mkdir", buf);
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
        return err_set_errno(err, "%s: mkdir", buf);
    struct stat st;
    if (stat(buf, &st) < 0)
        return err_set_errno(err, "%s", buf);
    if (!S_ISDIR(st.st_mode))
        return err_set(err, "%s: not a directory", buf);
    return 0;
}

int fileio_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    int fdf = fcntl(fd, F_GETFD);
    if (fdf < 0 || fcntl(fd, F_SETFD, fdf | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}
