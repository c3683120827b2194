/* The JSON of one photo's check report, shared by `trueshot check --json` and the studio
 * (docs/check-json.md). Internal: the public header stays free of jansson. */
#ifndef TS_QUALITY_CHECK_JSON_H
#define TS_QUALITY_CHECK_JSON_H

#include <jansson.h>

#include "trueshot.h"

/* Adds status, score, verdict, face (when found), components (raw values, score, verdict, tip)
 * and backdrops to o, after whatever o already holds. */
void ts_check_json_fill(json_t *o, const ts_check_report *r);

#endif
