/* catalogue.h — finding and loading the scenario catalogue (every *.scn under a folder).
 *
 *   struct scenario *v; size_t n;
 *   if (catalogue_load("fixtures/scenarios", &v, &n, &err) < 0) die(err.msg);
 *   ... catalogue_free(v, n);
 *
 * Files are loaded in path order (so a scenario's position, its `seq`, is stable), at most
 * CATALOGUE_MAX of them, and every scenario ID must be unique ("a.scn:1: scenario ID 'x'
 * is also used by b.scn"). */
#ifndef ETRN_CATALOGUE_H
#define ETRN_CATALOGUE_H

#include <stddef.h>
#include "err.h"
#include "scenario.h"

#define CATALOGUE_MAX 3000

int catalogue_load(const char *dir, struct scenario **out, size_t *n, struct etrn_err *err);
/* Loads the given files (in that order) instead of a folder. */
int catalogue_load_files(char *const *paths, size_t npaths, struct scenario **out, size_t *n,
                         struct etrn_err *err);
void catalogue_free(struct scenario *v, size_t n);

#endif
