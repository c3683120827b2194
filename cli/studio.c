/* trueshot studio: the local web studio (server/). This file is its command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "studio.h"

static const char studio_usage[] =
    "usage: trueshot studio [--port N] [--no-open] [--idle-timeout SECONDS]\n"
    "                       [--max-upload-mb N] [--max-photos N] [--max-megapixels N]\n"
    "\n"
    "Starts the studio: a web page on this computer where you drop or take photos, see each\n"
    "graded with tips, get live coaching from the webcam, pick a look and adjust the backdrop,\n"
    "crop, retouch and brightness with instant previews, compare before and after, see what\n"
    "was changed (edit map, identity check, what the file discloses), and download one\n"
    "headshot or all of them as a ZIP.\n"
    "\n"
    "It prints the address to open (with a secret token for this run) and opens your browser\n"
    "when a desktop is present. Press Ctrl+C to stop.\n"
    "\n"
    "Privacy: the studio listens on 127.0.0.1 only and answers only this computer's browser\n"
    "with the token; nothing is uploaded anywhere. Your photos and results live in a private\n"
    "(0700) folder under the temp directory, deleted when the studio stops (Ctrl+C, a signal,\n"
    "or the idle timeout) and at once by \"Forget everything\" on the page.\n"
    "\n"
    "options:\n"
    "  --port N              port on 127.0.0.1 (default: a free one)\n"
    "  --no-open             don't open a browser (also: TRUESHOT_NO_BROWSER=1)\n"
    "  --idle-timeout S      stop after S seconds without a request (default 1800; 0: never)\n"
    "  --max-upload-mb N     largest photo accepted, in MB (default 40)\n"
    "  --max-photos N        photos held at once (default 20)\n"
    "  --max-megapixels N    largest photo in megapixels (default 100)\n"
    "  -h, --help            this help\n"
    "\n"
    "example:\n"
    "  trueshot studio\n"
    "  trueshot studio --port 8765 --no-open   # then open the printed address yourself\n";

/* A whole number in [lo, hi] from argument i's value, or -1 after printing why (bad usage). */
static long number_arg(const char *opt, const char *v, long lo, long hi) {
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || n < lo || n > hi) {
        cli_fail(TS_ERR_ARGUMENT, "studio: %s needs a whole number from %ld to %ld", opt, lo, hi);
        return -1;
    }
    return n;
}

int cmd_studio(int argc, char **argv) {
    studio_options o = {.port = 0,
                        .open_browser = 1,
                        .idle_timeout_s = 1800,
                        .max_upload = 40L << 20,
                        .max_photos = 20,
                        .max_pixels = 100000000ull};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(studio_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--no-open")) {
            o.open_browser = 0;
            continue;
        }
        static const struct {
            const char *name;
            long lo, hi;
        } nums[] = {{"--port", 0, 65535},
                    {"--idle-timeout", 0, 7 * 86400},
                    {"--max-upload-mb", 1, 4096},
                    {"--max-photos", 1, 1000},
                    {"--max-megapixels", 1, 1000}};
        int k = 0, found = -1;
        for (; k < (int)(sizeof nums / sizeof nums[0]); k++)
            if (!strcmp(a, nums[k].name)) found = k;
        if (found < 0) {
            return cli_fail(TS_ERR_ARGUMENT, "studio: unknown option '%s' (try trueshot studio -h)",
                            a);
        }
        if ((n = number_arg(a, v, nums[found].lo, nums[found].hi)) < 0)
            return ts_status_exit_code(TS_ERR_ARGUMENT);
        i++;
        switch (found) {
        case 0:
            o.port = (int)n;
            break;
        case 1:
            o.idle_timeout_s = (int)n;
            break;
        case 2:
            o.max_upload = n << 20;
            break;
        case 3:
            o.max_photos = (int)n;
            break;
        default:
            o.max_pixels = (uint64_t)n * 1000000ull;
        }
    }
    return studio_run(&o);
}
