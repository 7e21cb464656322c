/* test_fileio.c — partial writes, whole-file reads, atomic replacement, mkdir -p, and the
 * log writer (which is file output too: one line, one write, bounded length). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "fileio.h"
#include "log.h"
#include "strbuf.h"

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    static struct fixture f;
    if (str_copy(f.dir, sizeof f.dir, "/tmp/test_fileio.XXXXXX") < 0 || mkdtemp(f.dir) == NULL)
        return -1;
    *state = &f;
    return 0;
}

/* Removes the fixture directory tree (bounded depth; the tests create three levels). */
static void remove_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[512];
            if (str_format(p, sizeof p, "%s/%s", dir, e->d_name) < 0)
                continue;
            if (unlink(p) < 0 && errno == EISDIR && depth < 8)
                remove_tree(p, depth + 1);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    remove_tree(f->dir, 0);
    return 0;
}

static void path_in(const struct fixture *f, const char *name, char *out, size_t n)
{
    assert_true(str_format(out, n, "%s/%s", f->dir, name) > 0);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_write_all_and_read_full_move_every_byte_through_a_pipe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* Under the 64 KiB pipe buffer, so no reader is needed while writing. */
    static char out[60000], in[60000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i * 7);
    assert_int_equal(fileio_write_all(p[1], out, sizeof out), 0);
    assert_int_equal(close(p[1]), 0);
    assert_int_equal(fileio_read_full(p[0], in, sizeof in), (ssize_t)sizeof in);
    assert_memory_equal(in, out, sizeof out);
    /* at EOF: fewer bytes than asked */
    assert_int_equal(fileio_read_full(p[0], in, 10), 0);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(fileio_write_all(-1, "x", 1), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(fileio_read_full(-1, in, 1), -1);
}

static void test_atomic_write_creates_then_replaces_and_leaves_no_temp(void **state)
{
    struct fixture *f = *state;
    char path[256];
    path_in(f, "x.env", path, sizeof path);
    struct etrn_err err = {{0}};
    assert_int_equal(fileio_write_file_atomic(path, "first", 5, &err), 0);
    assert_int_equal(fileio_write_file_atomic(path, "second!", 7, &err), 0);
    struct strbuf sb;
    strbuf_init(&sb, 1024);
    assert_int_equal(fileio_read_file(path, &sb, 1024, &err), 0);
    assert_string_equal(sb.data, "second!");
    strbuf_free(&sb);
    assert_int_equal(count_entries(f->dir), 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* empty contents are a valid file too */
    assert_int_equal(fileio_write_file_atomic(path, "", 0, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

static void test_atomic_write_removes_stale_temp_of_same_pid(void **state)
{
    struct fixture *f = *state;
    char path[256], tmp[300];
    path_in(f, "y.env", path, sizeof path);
    assert_true(str_format(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) > 0);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fileio_write_all(fd, "torn", 4), 0);
    assert_int_equal(close(fd), 0);
    struct etrn_err err = {{0}};
    assert_int_equal(fileio_write_file_atomic(path, "whole", 5, &err), 0);
    assert_int_equal(access(tmp, F_OK), -1);
    struct strbuf sb;
    strbuf_init(&sb, 64);
    assert_int_equal(fileio_read_file(path, &sb, 64, &err), 0);
    assert_string_equal(sb.data, "whole");
    strbuf_free(&sb);
}

static void test_atomic_write_into_missing_directory_fails_with_path(void **state)
{
    struct fixture *f = *state;
    char path[256];
    path_in(f, "no/such/dir/z.env", path, sizeof path);
    struct etrn_err err = {{0}};
    assert_int_equal(fileio_write_file_atomic(path, "x", 1, &err), -1);
    assert_non_null(strstr(err.msg, "z.env.tmp."));
    assert_non_null(strstr(err.msg, "No such file or directory"));
}

static void test_read_file_appends_and_enforces_limit(void **state)
{
    struct fixture *f = *state;
    char path[256];
    path_in(f, "r.txt", path, sizeof path);
    struct etrn_err err = {{0}};
    static char data[20000];
    memset(data, 'r', sizeof data);
    assert_int_equal(fileio_write_file_atomic(path, data, sizeof data, &err), 0);
    struct strbuf sb;
    strbuf_init(&sb, STRBUF_UNLIMITED);
    assert_int_equal(strbuf_append_str(&sb, "head:"), 0);
    assert_int_equal(fileio_read_file(path, &sb, sizeof data, &err), 0);
    assert_int_equal(sb.len, 5 + sizeof data);
    assert_memory_equal(sb.data, "head:rrr", 8);
    strbuf_reset(&sb);
    assert_int_equal(fileio_read_file(path, &sb, sizeof data - 1, &err), -1);
    assert_non_null(strstr(err.msg, "larger than 19999 bytes"));
    assert_non_null(strstr(err.msg, path));
    strbuf_free(&sb);
    char missing[256];
    path_in(f, "missing", missing, sizeof missing);
    strbuf_init(&sb, 64);
    assert_int_equal(fileio_read_file(missing, &sb, 64, &err), -1);
    assert_non_null(strstr(err.msg, "No such file"));
    strbuf_free(&sb);
}

static void test_mkdirs_creates_nested_and_accepts_existing(void **state)
{
    struct fixture *f = *state;
    char path[256];
    path_in(f, "a/b/c", path, sizeof path);
    struct etrn_err err = {{0}};
    assert_int_equal(fileio_mkdirs(path, 0700, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fileio_mkdirs(path, 0700, &err), 0);
    path_in(f, "a/b/c/", path, sizeof path);
    assert_int_equal(fileio_mkdirs(path, 0700, &err), 0);
    /* a file in the way is an error naming it */
    char file[256];
    path_in(f, "a/file", file, sizeof file);
    assert_int_equal(fileio_write_file_atomic(file, "x", 1, &err), 0);
    assert_int_equal(fileio_mkdirs(file, 0700, &err), -1);
    assert_non_null(strstr(err.msg, "not a directory"));
    path_in(f, "a/file/sub", path, sizeof path);
    assert_int_equal(fileio_mkdirs(path, 0700, &err), -1);
    assert_int_equal(fileio_mkdirs("", 0700, &err), -1);
}

static void test_dirname_of_paths(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(fileio_dirname("spool/q/x.env", out, sizeof out), 0);
    assert_string_equal(out, "spool/q");
    assert_int_equal(fileio_dirname("x.env", out, sizeof out), 0);
    assert_string_equal(out, ".");
    assert_int_equal(fileio_dirname("/x.env", out, sizeof out), 0);
    assert_string_equal(out, "/");
    assert_int_equal(fileio_dirname("/a/b", out, 2), -1);
}

static void test_fsync_dir_and_nonblock(void **state)
{
    struct fixture *f = *state;
    struct etrn_err err = {{0}};
    assert_int_equal(fileio_fsync_dir(f->dir, &err), 0);
    assert_int_equal(fileio_fsync_dir("/nonexistent-dir-for-test", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent-dir-for-test"));
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fileio_set_nonblock(p[0]), 0);
    assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
    char c;
    assert_int_equal(read(p[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
    close(p[0]);
    close(p[1]);
    assert_int_equal(fileio_set_nonblock(-1), -1);
}

static void test_log_writes_timestamped_single_lines_bounded_at_2048(void **state)
{
    struct fixture *f = *state;
    char path[256];
    path_in(f, "t.log", path, sizeof path);
    assert_int_equal(log_open("etrnd", LOG_LEVEL_INFO, path), 0);
    log_info("queue %s: from=<%s>", "ABC123", "a@b.test");
    log_debug("not shown at info");
    log_warn("peer said \r\nINJECTED");
    static char big[5000];
    memset(big, 'L', sizeof big - 1);
    log_error("%s", big);
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("now shown");
    log_close();

    struct strbuf sb;
    struct etrn_err err = {{0}};
    strbuf_init(&sb, 65536);
    assert_int_equal(fileio_read_file(path, &sb, 65536, &err), 0);
    /* four lines, each ending in exactly one newline */
    size_t lines = 0;
    const char *p = sb.data, *line[8];
    size_t len[8];
    while (*p && lines < 8) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        line[lines] = p;
        len[lines++] = (size_t)(nl - p) + 1;
        p = nl + 1;
    }
    assert_int_equal(lines, 4);
    /* "2026-11-22T10:00:00.123Z etrnd[pid]: info: text" */
    assert_true(len[0] > 25);
    assert_int_equal(line[0][4], '-');
    assert_int_equal(line[0][10], 'T');
    assert_int_equal(line[0][19], '.');
    assert_int_equal(line[0][23], 'Z');
    char expect[128];
    assert_true(str_format(expect, sizeof expect, " etrnd[%ld]: info: queue ABC123: from=<a@b.test>\n",
                           (long)getpid()) > 0);
    assert_int_equal(len[0], 24 + strlen(expect));
    assert_memory_equal(line[0] + 24, expect, strlen(expect));
    assert_non_null(strstr(sb.data, "warning: peer said ??INJECTED\n"));
    assert_int_equal(len[2], 2048);
    assert_int_equal(line[2][2047], '\n');
    assert_int_equal(line[2][2046], 'L');
    assert_non_null(strstr(line[3], "debug: now shown\n"));
    strbuf_free(&sb);

    enum log_level lv;
    assert_int_equal(log_level_parse("WARN", &lv), 0);
    assert_int_equal(lv, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("verbose", &lv), -1);
    char bad[256];
    path_in(f, "no/dir/t.log", bad, sizeof bad);
    assert_int_equal(log_open("etrnd", LOG_LEVEL_INFO, bad), -1);
    log_set_level(LOG_LEVEL_INFO);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_write_all_and_read_full_move_every_byte_through_a_pipe),
        T(test_atomic_write_creates_then_replaces_and_leaves_no_temp),
        T(test_atomic_write_removes_stale_temp_of_same_pid),
        T(test_atomic_write_into_missing_directory_fails_with_path),
        T(test_read_file_appends_and_enforces_limit),
        T(test_mkdirs_creates_nested_and_accepts_existing),
        T(test_dirname_of_paths),
        T(test_fsync_dir_and_nonblock),
        T(test_log_writes_timestamped_single_lines_bounded_at_2048),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
