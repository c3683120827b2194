/* The JSON of one photo's check report (check_json.h). */
#include "quality/check_json.h"

#include <stdio.h>

void ts_check_json_fill(json_t *o, const ts_check_report *r) {
    json_object_set_new(o, "status", json_string(ts_status_name(ts_check_status(r))));
    json_object_set_new(o, "score", json_integer(ts_check_score(r)));
    json_object_set_new(o, "verdict", json_string(ts_verdict_name(ts_check_verdict(r))));
    float box[4], ied;
    if (ts_check_face(r, box, &ied))
        json_object_set_new(o, "face",
                            json_pack("{s:[ffff], s:f}", "box", (double)box[0], (double)box[1],
                                      (double)box[2], (double)box[3], "inter_eye_px", (double)ied));
    json_t *comps = json_array();
    for (int k = 0; k < ts_check_count(r); k++) {
        const ts_check_component *c = ts_check_component_at(r, k);
        json_t *raw = json_object();
        for (int j = 0; j < c->n_raw; j++)
            json_object_set_new(raw, c->raw_name[j], json_real(c->raw[j]));
        json_t *co = json_pack("{s:s, s:s, s:o, s:i, s:s}", "id", c->id, "label", c->label, "raw",
                               raw, "score", c->score, "verdict", ts_verdict_name(c->verdict));
        if (c->tip[0]) json_object_set_new(co, "tip", json_string(c->tip));
        json_array_append_new(comps, co);
    }
    json_object_set_new(o, "components", comps);
    const ts_backdrop *bd;
    int nb = ts_check_backdrops(r, &bd);
    json_t *bds = json_array();
    for (int k = 0; k < nb; k++) {
        char hex[8];
        snprintf(hex, sizeof hex, "#%06x", (unsigned)bd[k].rgb);
        json_array_append_new(bds, json_pack("{s:s, s:s, s:f, s:f}", "name", bd[k].name, "rgb", hex,
                                             "contrast_clothing", (double)bd[k].contrast_clothing,
                                             "contrast_hair", (double)bd[k].contrast_hair));
    }
    json_object_set_new(o, "backdrops", bds);
}
