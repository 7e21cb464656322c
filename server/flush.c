/* flush.c — etrnd's queue runner (placeholder until the real runner lands).
 *
 *   struct flush *fl; flush_init(&fl, base, spool, cfg, &err);
 *   flush_request(fl, "node.test", 0, &n, &err);
 *   flush_free(fl);
 *
 * This minimal version links and refuses to flush: it delivers nothing. */
#include <stdlib.h>
#include <string.h>
#include "flush.h"
#include "err.h"

struct flush {
    struct event_base *base;
    struct spool *sp;
    const struct etrnd_config *cfg;
};

int flush_init(struct flush **out, struct event_base *base, struct spool *sp,
               const struct etrnd_config *cfg, struct etrn_err *err)
{
    struct flush *fl = calloc(1, sizeof(*fl));
    if (!fl)
        return err_set(err, "flush: out of memory");
    fl->base = base;
    fl->sp = sp;
    fl->cfg = cfg;
    *out = fl;
    return 0;
}

void flush_set_config(struct flush *fl, const struct etrnd_config *cfg) { fl->cfg = cfg; }

int flush_request_from(struct flush *fl, const char *domain, int subdomains,
                       const struct sockaddr *requester, size_t *queued,
                       struct etrn_err *err)
{
    (void)fl; (void)domain; (void)subdomains; (void)requester;
    if (queued)
        *queued = 0;
    return err_set(err, "flush: not implemented yet");
}

int flush_request(struct flush *fl, const char *domain, int subdomains, size_t *queued,
                  struct etrn_err *err)
{
    return flush_request_from(fl, domain, subdomains, NULL, queued, err);
}

void flush_message_committed(struct flush *fl, const char *domain) { (void)fl; (void)domain; }
int flush_busy(struct flush *fl, const char *domain) { (void)fl; (void)domain; return 0; }
size_t flush_active(struct flush *fl) { (void)fl; return 0; }
void flush_drain(struct flush *fl, void (*cb)(void *arg), void *arg) { (void)fl; if (cb) cb(arg); }
void flush_free(struct flush *fl) { free(fl); }
