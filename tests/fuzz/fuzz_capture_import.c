/* fuzz_capture_import.c — libFuzzer target for capture import and scenario making
 * (conformance/capture_import.c, conformance/capture_scenario.c).
 *
 *   scripts/run-fuzz capture_import 60
 *
 * Any bytes taken as a capture file must either be refused with a message naming the input,
 * or import; an imported capture's dialogues must format into a scenario that the scenario
 * parser accepts (or be refused with a message), and every note must name the input. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "capture_import.h"
#include "capture_scenario.h"
#include "scenario.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct capture cap;
    struct etrn_err err = {{0}};
    if (capture_import_memory(&cap, "fuzz.pcap", data, size, NULL, &err) < 0) {
        if (strncmp(err.msg, "fuzz.pcap: ", 11) != 0)
            abort();
        return 0;
    }
    for (size_t i = 0; i < cap.nnotes; i++)
        if (strncmp(cap.notes[i], "fuzz.pcap: ", 11) != 0)
            abort();
    for (int all = 0; all < 2; all++) {
        struct capture_dialogues d;
        struct capture_scenario_options so = {.all_sessions = all};
        if (capture_dialogues_build(&d, &cap, &so, &err) < 0)
            continue;
        struct strbuf text;
        strbuf_init(&text, SCENARIO_FILE_MAX);
        if (capture_scenario_format(&d, &cap, &so, &text, &err) == 0) {
            struct scenario sc;
            if (scenario_parse_string(&sc, "fuzz.scn", text.data, &err) < 0)
                abort();   /* the importer wrote a scenario the parser refuses */
            scenario_free(&sc);
        }
        strbuf_free(&text);
        capture_dialogues_free(&d);
    }
    capture_free(&cap);
    return 0;
}
