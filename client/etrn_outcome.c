/* etrn_outcome.c — maps ETRN reply codes to outcomes, words and exit codes.
 *
 *   etrn_outcome_of(253) == ETRN_STARTED;  etrn_outcome_of(459) == ETRN_REFUSED
 *   etrn_outcome_exit_code(ETRN_REFUSED) == 4
 *
 * Pure functions; the table is the single place the client's reading of RFC 1985 §5.2 lives. */
#include "etrn_outcome.h"

enum etrn_outcome etrn_outcome_of(int code)
{
    switch (code) {
    case 251:
        return ETRN_NOTHING_WAITING;
    case 459:
        return ETRN_REFUSED;
    default:
        break;
    }
    switch (code / 100) {
    case 2:
        return ETRN_STARTED;
    case 4:
        return ETRN_TEMPORARY;
    case 5:
        return ETRN_UNSUPPORTED;
    default:
        /* 1xx/3xx make no sense after ETRN: the session is not usable. */
        return ETRN_CONNECTION;
    }
}

const char *etrn_outcome_words(enum etrn_outcome o)
{
    switch (o) {
    case ETRN_STARTED:
        return "delivery started";
    case ETRN_NOTHING_WAITING:
        return "no messages waiting";
    case ETRN_TEMPORARY:
        return "temporary failure, try again later";
    case ETRN_REFUSED:
        return "refused by the relay's policy";
    case ETRN_UNSUPPORTED:
        return "ETRN unsupported or syntax error";
    case ETRN_CONNECTION:
        return "connection problem";
    case ETRN_OUTCOME_COUNT:
        break;
    }
    return "unknown outcome";
}

int etrn_outcome_exit_code(enum etrn_outcome o)
{
    static const int codes[ETRN_OUTCOME_COUNT] = {
        [ETRN_STARTED] = 0,   [ETRN_NOTHING_WAITING] = 1, [ETRN_TEMPORARY] = 3,
        [ETRN_REFUSED] = 4,   [ETRN_UNSUPPORTED] = 5,     [ETRN_CONNECTION] = 6,
    };
    if ((int)o < 0 || o >= ETRN_OUTCOME_COUNT)
        return 6;
    return codes[o];
}

/* Severity order for "worst": a connection problem hides everything else. */
static int etrn_outcome_severity(enum etrn_outcome o)
{
    static const int rank[ETRN_OUTCOME_COUNT] = {
        [ETRN_STARTED] = 0,   [ETRN_NOTHING_WAITING] = 1, [ETRN_TEMPORARY] = 2,
        [ETRN_REFUSED] = 3,   [ETRN_UNSUPPORTED] = 4,     [ETRN_CONNECTION] = 5,
    };
    if ((int)o < 0 || o >= ETRN_OUTCOME_COUNT)
        return 5;
    return rank[o];
}

enum etrn_outcome etrn_outcome_worst(enum etrn_outcome a, enum etrn_outcome b)
{
    return etrn_outcome_severity(a) >= etrn_outcome_severity(b) ? a : b;
}

int etrn_outcome_retryable(enum etrn_outcome o)
{
    return o == ETRN_TEMPORARY || o == ETRN_CONNECTION;
}
