/* The report and contact sheet of `trueshot make`. */
#ifndef TS_CLI_MAKE_REPORT_H
#define TS_CLI_MAKE_REPORT_H

#include <stddef.h>

#include "trueshot.h"

#define MAKE_MAX_EDITS 16
#define MAKE_MAX_NOTES 8

/* One written headshot and what is known about it. */
typedef struct make_output {
    char look[64];       /* style name, e.g. "corporate" */
    char crop[32];       /* template, e.g. "square" */
    char path[1024];     /* the file written */
    char edit_map[1024]; /* heat map of changes to the face, "" if none */
    int width, height;
    long bytes;
    const char *source_type; /* IPTC DigitalSourceType written in the XMP */
    double id_mean, id_max;  /* landmark displacement / inter-eye distance, face edits only */
    double id_total_mean, id_frame_mean; /* edited / framed-only canvas vs the photo */
    double id_written_mean; /* the same measured on the file as written (new background) */
    int id_ok;              /* passed the identity check */
    char edits[MAKE_MAX_EDITS][96];
    int n_edits;
    char notes[MAKE_MAX_NOTES][200];
    int n_notes;
    char error[300];  /* non-empty when this look failed */
    ts_status status; /* why it failed (TS_ERR_IDENTITY: the identity check) */
} make_output;

typedef struct make_report {
    const char *photo;  /* the photo used */
    const char *why;    /* why it was chosen (from check's ranking), may be NULL */
    double noise_floor; /* face analysis's own noise, same units as id_mean */
    make_output *outputs;
    int n_outputs;
    double seconds;
} make_report;

/* Writes DIR/report.json and DIR/report.html (atomically). Returns 0 or -1. */
int make_write_report(const make_report *r, const char *dir);
/* Writes DIR/contact-sheet.jpg: every output, labelled, on one sheet. Returns 0 or -1. */
/* 0 written, 1 nothing to show (no output was written), -1 error. */
int make_write_contact_sheet(const make_report *r, const char *dir);

#endif
