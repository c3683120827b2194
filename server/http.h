/* The daemon's helpers shared with the endpoints (server.c, api.c). */
#ifndef TS_STUDIO_HTTP_H
#define TS_STUDIO_HTTP_H

#include <microhttpd.h>

#include "studio.h"

/* One request: its body, collected within the upload limit. */
typedef struct studio_request {
    char *body;
    size_t len, cap;
    int too_big;
    int answered;       /* a response is queued (refused, or too large) */
    int token_in_query; /* the token came in the URL: the page sets the cookie */
} studio_request;

/* Queue a response with the security headers every answer carries; r is consumed. */
enum MHD_Result studio_send(struct MHD_Connection *c, int status, struct MHD_Response *r,
                            const char *type);
enum MHD_Result studio_send_buffer(struct MHD_Connection *c, int status, const void *data,
                                   size_t len, const char *type);
/* j is consumed. */
enum MHD_Result studio_send_json(struct MHD_Connection *c, int status, json_t *j);
/* {"error": "..."} */
enum MHD_Result studio_send_error(struct MHD_Connection *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Dispatches an authorised request (api.c). */
enum MHD_Result studio_route(struct MHD_Connection *c, const char *url, const char *method,
                             studio_request *rq, const char *token);

#endif
