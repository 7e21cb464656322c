/* fuzz_config.c — libFuzzer target for the `key = value` config reader (lib/config.c).
 *
 *   scripts/run-fuzz config 60
 *
 * Any text must either load (and then every entry has a key) or fail with a message that
 * names the input ("fuzz:LINE: ..."). */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct config cfg;
    struct etrn_err err = {{0}};
    if (config_load_string(&cfg, "fuzz", text, &err) == 0) {
        for (size_t i = 0; i < cfg.n; i++)
            if (cfg.entries[i].key == NULL || cfg.entries[i].key[0] == '\0')
                abort();
        size_t pos = 0;
        while (config_next(&cfg, "", &pos) != NULL)
            ;
        config_free(&cfg);
    } else if (strncmp(err.msg, "fuzz", 4) != 0) {
        abort(); /* errors name the input */
    }
    free(text);
    return 0;
}
