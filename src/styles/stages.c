/* The render stages a style file may have sections for, in render order (render/render.h).
 * Adding a stage to the library is one line here. */
#include <string.h>

#include "styles/style.h"

static const ts_stage *const stages[] = {
    &ts_stage_frame,      /* crop and size */
    &ts_stage_tone,       /* white balance, exposure, grade */
    &ts_stage_light,      /* fill light */
    &ts_stage_retouch,    /* gentle retouch */
    &ts_stage_background, /* studio backdrop */
    &ts_stage_export,     /* file format, size cap */
    NULL,
};

const ts_stage *ts_styles_stage(const char *name) {
    for (int i = 0; name && stages[i]; i++)
        if (!strcmp(stages[i]->name, name)) return stages[i];
    return NULL;
}

const ts_stage *ts_styles_stage_at(int i) {
    return i >= 0 && i < (int)(sizeof stages / sizeof stages[0]) ? stages[i] : NULL;
}
