/* The report and contact sheet of `trueshot make`. */
#ifndef TS_CLI_MAKE_REPORT_H
#define TS_CLI_MAKE_REPORT_H

#include <stddef.h>

#include "trueshot.h"

#define MAKE_MAX_EDITS 16
#define MAKE_REPORT_FILES "report-files" /* the report's pictures, inside the output folder */
#define MAKE_MAX_NOTES 8
#define MAKE_MAX_ADVICE 4 /* tips for next time in the report */

/* The metadata of a written file, read back from it (make_read_back). */
typedef struct make_metadata {
    int read;             /* 1 when the file could be opened */
    int icc_srgb;         /* an ICC profile byte for byte libvips' sRGB profile */
    size_t icc_bytes;     /* the embedded profile's size, 0 when there is none */
    char source_type[64]; /* from the XMP: the IPTC DigitalSourceType code */
    char creator_tool[64];
    int n_edits;                 /* items in the XMP's list of edits */
    int exif_fields;             /* EXIF fields present */
    int gps, serial, maker_note; /* EXIF fields of each kind found (0 is the promise) */
} make_metadata;

/* Reads path's metadata as any program would find it. Returns 0, or -1 when it cannot be
 * opened (m->read is then 0). */
int make_read_back(const char *path, make_metadata *m);

/* One written headshot and what is known about it. */
typedef struct make_output {
    char look[64];       /* style name, e.g. "corporate" */
    char crop[32];       /* template, e.g. "square" */
    char path[1024];     /* the file written */
    char edit_map[1024]; /* heat map of changes to the face, "" if none */
    double m[6];         /* photo -> file (x' = m0 x + m1 y + m2, y' = m3 x + m4 y + m5) */
    int width, height;
    long bytes;
    int max_kb;              /* the file-size cap it was written under (0: none) */
    const char *source_type; /* IPTC DigitalSourceType written in the XMP */
    double id_mean, id_max;  /* landmark displacement / inter-eye distance, face edits only */
    double id_total_mean, id_frame_mean; /* edited / framed-only canvas vs the photo */
    double id_written_mean; /* the same measured on the file as written (new background) */
    int id_ok;              /* passed the identity check */
    char edits[MAKE_MAX_EDITS][96];
    int n_edits;
    char notes[MAKE_MAX_NOTES][200];
    int n_notes;
    char error[300];    /* non-empty when this look failed */
    ts_status status;   /* why it failed (TS_ERR_IDENTITY: the identity check) */
    make_metadata meta; /* read back from the written file */
} make_output;

typedef struct make_report {
    const char *photo; /* the photo used */
    /* Put before the report's and the contact sheet's file names: "" for one photo, "STEM-"
     * when several are rendered (--all), so each keeps its own. */
    const char *prefix;
    /* The photo, small, for the report's "before" of each look (make_write_preview); "" if
     * none. preview_scale is its width over the photo's (EXIF-oriented) width. */
    char preview[1100];
    int preview_w, preview_h;
    double preview_scale;
    const char *why;   /* why it was chosen (from check's ranking), may be NULL */
    char note[400];    /* about the photo as a whole (make_neighbour_note), "" if none */
    int turned;        /* 180: the photo was found upside down and used turned (ts_photo_turn) */
    int decode_shrink; /* the photo was rendered from its decode at 1/decode_shrink (1: whole) */
    /* The photo's grade as a headshot source (`trueshot check`) and its tips for next time,
     * weakest first; check_score < 0 when it was not graded. */
    int check_score;
    const char *check_verdict;
    struct {
        char id[32], label[64], tip[320];
    } advice[MAKE_MAX_ADVICE];
    int n_advice;
    double noise_floor; /* face analysis's own noise, same units as id_mean */
    make_output *outputs;
    int n_outputs;
    double seconds;
} make_report;

/* Writes r->preview (set by the caller: a .jpg path): the photo (photo_w x photo_h after its EXIF
 * orientation) at most MAKE_PREVIEW_SIDE pixels on its longer side, sRGB, no metadata; fills
 * r's preview fields. Returns 0, or -1 with r->preview emptied. */
#define MAKE_PREVIEW_SIDE 1200
int make_write_preview(make_report *r, int photo_w, int photo_h);

/* Fills r's check_score, check_verdict and advice from a check report of the photo (NULL: not
 * graded): the components that are not good and have a tip, weakest first. */
void make_set_advice(make_report *r, const ts_check_report *check);

/* Fills r->note when another face is close enough to the subject (faces[subject]) that parts of
 * that person may reach into the cut-out; "" otherwise. n is the number of faces. */
void make_neighbour_note(make_report *r, const ts_face *faces, int n, int subject);

/* Writes DIR/PREFIXreport.json and DIR/PREFIXreport.html (atomically). Returns 0 or -1. */
int make_write_report(const make_report *r, const char *dir);
/* Writes DIR/PREFIXcontact-sheet.jpg: every output, labelled, on one sheet. Returns 0 or -1. */
/* 0 written, 1 nothing to show (no output was written), -1 error. */
int make_write_contact_sheet(const make_report *r, const char *dir);

#endif
