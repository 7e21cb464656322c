/* catalogue.c — loads every scenario file under a folder, sorted by path.
 *
 *   catalogue_load("fixtures/scenarios", &v, &n, &err);  catalogue_free(v, n);
 *
 * Guarantees: see catalogue.h. The walk does not follow symbolic links to folders and
 * stops at a depth of 8, so a loop in the tree cannot hang it. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalogue.h"
#include "strbuf.h"

#define WALK_DEPTH_MAX 8

struct paths {
    char **v;
    size_t n;
};

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int walk(const char *dir, int depth, struct paths *p, struct etrn_err *err)
{
    if (depth > WALK_DEPTH_MAX)
        return 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return err_set_errno(err, "cannot read the scenario folder %s", dir);
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        if (str_format(path, sizeof path, "%s/%s", dir, e->d_name) < 0)
            continue;
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = walk(path, depth + 1, p, err);
        } else if (S_ISREG(st.st_mode) && ends_with(e->d_name, ".scn")) {
            if (p->n >= CATALOGUE_MAX) {
                rc = err_set(err, "%s: more than %d scenario files", dir, CATALOGUE_MAX);
                break;
            }
            char **v = realloc(p->v, (p->n + 1) * sizeof *v);
            if (v == NULL || (v[p->n] = strdup(path)) == NULL) {
                if (v)
                    p->v = v;
                rc = err_set(err, "out of memory");
                break;
            }
            p->v = v;
            p->n++;
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int catalogue_load_files(char *const *paths, size_t npaths, struct scenario **out, size_t *n,
                         struct etrn_err *err)
{
    struct scenario *v = calloc(npaths ? npaths : 1, sizeof *v);
    if (v == NULL)
        return err_set(err, "out of memory");
    size_t k;
    int failed = 0;
    for (k = 0; k < npaths && !failed; k++) {
        if (scenario_parse_file(&v[k], paths[k], err) < 0) {
            failed = 1;
            break;   /* v[k] is empty */
        }
        for (size_t j = 0; j < k; j++)
            if (strcmp(v[j].id, v[k].id) == 0) {
                err_set(err, "%s: scenario ID '%s' is also used by %s", v[k].file, v[k].id,
                        v[j].file);
                failed = 1;
                break;
            }
    }
    if (failed) {
        catalogue_free(v, k);
        return -1;
    }
    *out = v;
    *n = npaths;
    return 0;
}

int catalogue_load(const char *dir, struct scenario **out, size_t *n, struct etrn_err *err)
{
    struct paths p = {0};
    int rc = walk(dir, 0, &p, err);
    if (rc == 0) {
        if (p.n > 1)
            qsort(p.v, p.n, sizeof p.v[0], cmp_str);
        rc = catalogue_load_files(p.v, p.n, out, n, err);
    }
    for (size_t i = 0; i < p.n; i++)
        free(p.v[i]);
    free(p.v);
    return rc;
}

void catalogue_free(struct scenario *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        scenario_free(&v[i]);
    free(v);
}
