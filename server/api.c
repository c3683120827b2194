/* The studio's endpoints (server/API.md). Every function here runs after server.c has checked
 * the Host, the token and the Origin. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "core/internal.h"
#include "http.h"
#include "styles/style.h"

static double clock_ms(clockid_t which) {
    struct timespec t;
    clock_gettime(which, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* ---- the page ---- */

static enum MHD_Result page_file(struct MHD_Connection *c, const char *url, studio_request *rq,
                                 const char *token) {
    for (int i = 0; i < studio_web_count; i++) {
        const studio_web_file *f = &studio_web_files[i];
        if (strcmp(url, f->path) && !(f->path[1] == 0 && !strcmp(url, "/index.html"))) continue;
        struct MHD_Response *r =
            MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
        if (r && rq->token_in_query) {
            char cookie[128];
            snprintf(cookie, sizeof cookie, "ts_token=%s; HttpOnly; SameSite=Strict; Path=/",
                     token);
            MHD_add_response_header(r, "Set-Cookie", cookie);
        }
        return studio_send(c, 200, r, f->mime);
    }
    return studio_send_error(c, 404, "There is nothing at %s.", url);
}

/* ---- photos ---- */

static enum MHD_Result photo_upload(struct MHD_Connection *c, studio_request *rq) {
    if (!rq->len) return studio_send_error(c, 400, "Send the photo's bytes as the request body.");
    if (studio_photo_count() >= studio_photo_limit())
        return studio_send_error(c, 409,
                                 "The studio holds at most %d photos: remove one before adding "
                                 "another.",
                                 studio_photo_limit());
    const char *loader = vips_foreign_find_load_buffer(rq->body, rq->len);
    static const char *const ok_loaders[] = {
        "VipsForeignLoadJpegBuffer", "VipsForeignLoadPngBuffer", "VipsForeignLoadHeifBuffer",
        "VipsForeignLoadWebpBuffer", NULL};
    int known = 0;
    for (int i = 0; loader && ok_loaders[i]; i++) known |= !strcmp(loader, ok_loaders[i]);
    vips_error_clear();
    if (!known)
        return studio_send_error(c, 415,
                                 "This file is not a photo the studio reads: use JPEG, PNG, HEIC "
                                 "or WebP.");
    char name[256];
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Filename");
    studio_filename_from(h ? h : "photo", name, sizeof name);
    char id[STUDIO_ID_LEN], path[1200];
    studio_new_id(id);
    snprintf(path, sizeof path, "%s/%s", studio_session_dir(), id);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    size_t done = 0;
    while (fd >= 0 && done < rq->len) {
        ssize_t w = write(fd, rq->body + done, rq->len - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    if (fd < 0 || done < rq->len || close(fd) != 0) {
        if (fd >= 0) unlink(path);
        return studio_send_error(c, 507, "The photo could not be saved in the session folder.");
    }
    studio_photo *p = NULL;
    char err[512];
    int status = studio_photo_add(name, path, &p, err, sizeof err);
    if (status) {
        unlink(path);
        return studio_send_error(c, status, "%s", err);
    }
    json_t *j = studio_photo_json(p, 0);
    studio_photo_put(p);
    return studio_send_json(c, 201, j);
}

static enum MHD_Result photo_thumb(struct MHD_Connection *c, studio_photo *p) {
    VipsImage *t = NULL;
    void *buf = NULL;
    size_t len = 0;
    int ok = vips_thumbnail(p->preview, &t, 480, NULL) == 0 &&
             vips_jpegsave_buffer(t, &buf, &len, "Q", 82, "strip", TRUE, NULL) == 0;
    if (t) g_object_unref(t);
    if (!ok) {
        vips_error_clear();
        return studio_send_error(c, 500, "The thumbnail could not be made.");
    }
    return studio_send(c, 200, MHD_create_response_from_buffer_with_free_callback(len, buf, g_free),
                       "image/jpeg");
}

/* ---- styles ---- */

static enum MHD_Result styles_list(struct MHD_Connection *c) {
    ts_ctx *ctx = studio_ctx_get();
    const ts_style_info *info;
    int n = ts_styles_builtins(&info);
    json_t *list = json_array();
    for (int i = 0; ctx && i < n; i++) {
        ts_style *s = NULL;
        if (ts_style_load_builtin(ctx, info[i].id, &s)) continue;
        json_t *crops = json_array();
        for (int k = 0; k < ts_style_output_count(s); k++) {
            const ts_style_output *o = ts_style_output_at(s, k);
            json_array_append_new(crops, json_string(o->crop));
        }
        char kind[16], colour[16];
        ts_param_format(ts_param_find(ts_stage_background.table, "kind"),
                        ts_style_params(s, "background"), kind, sizeof kind);
        ts_param_format(ts_param_find(ts_stage_background.table, "color"),
                        ts_style_params(s, "background"), colour, sizeof colour);
        char retouch[16];
        ts_param_format(ts_param_find(ts_stage_retouch.table, "strength"),
                        ts_style_params(s, "retouch"), retouch, sizeof retouch);
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:f}", "name", info[i].id, "title",
                            info[i].name, "description", info[i].description, "crops", crops,
                            "background", kind, "color", colour, "retouch", strtod(retouch, NULL)));
        ts_style_free(s);
    }
    studio_ctx_put(ctx);
    return studio_send_json(c, 200, json_pack("{s:o}", "styles", list));
}

/* ---- looks ---- */

static const char *query_value(void *user, const char *key) {
    return MHD_lookup_connection_value(user, MHD_GET_ARGUMENT_KIND, key);
}

static const char *json_value(void *user, const char *key) {
    /* Numbers become text, as in the query string, so both go through one parser. */
    static __thread char num[2][64];
    static __thread int which;
    json_t *v = json_object_get(user, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_number(v)) {
        which ^= 1;
        snprintf(num[which], sizeof num[which], "%.17g", json_number_value(v));
        return num[which];
    }
    if (json_is_true(v)) return "1";
    return NULL;
}

static studio_photo *photo_of(struct MHD_Connection *c, const char *id, enum MHD_Result *ret) {
    studio_photo *p = id ? studio_photo_get(id) : NULL;
    if (!p) *ret = studio_send_error(c, 404, "There is no photo with that id in this session.");
    return p;
}

static enum MHD_Result preview(struct MHD_Connection *c) {
    double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    studio_look_params lp;
    char err[512];
    if (studio_look_parse(query_value, c, &lp, err, sizeof err))
        return studio_send_error(c, 400, "%s", err);
    enum MHD_Result ret;
    studio_photo *p = photo_of(c, query_value(c, "photo"), &ret);
    if (!p) return ret;
    void *jpeg = NULL;
    size_t len = 0;
    int status = studio_preview(p, &lp, &jpeg, &len, err, sizeof err);
    studio_photo_put(p);
    if (status != 200) return studio_send_error(c, status, "%s", err);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, jpeg, g_free);
    /* Wall clock, and the process's CPU time meanwhile: steadier on a loaded machine (it also
     * counts other requests served at the same time). */
    char ms[32], cpu[32];
    snprintf(ms, sizeof ms, "%.1f", clock_ms(CLOCK_MONOTONIC) - t0);
    snprintf(cpu, sizeof cpu, "%.1f", clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0);
    if (r) MHD_add_response_header(r, "X-Render-Ms", ms);
    if (r) MHD_add_response_header(r, "X-Render-Cpu-Ms", cpu);
    return studio_send(c, 200, r, "image/jpeg");
}

static enum MHD_Result render(struct MHD_Connection *c, studio_request *rq) {
    json_error_t je;
    json_t *body = rq->len ? json_loadb(rq->body, rq->len, 0, &je) : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        return studio_send_error(c, 400,
                                 "Send the look as a JSON object: {\"photo\": ID, "
                                 "\"style\": NAME, ...}.");
    }
    studio_look_params lp;
    char err[512];
    enum MHD_Result ret;
    studio_photo *p = NULL;
    if (studio_look_parse(json_value, body, &lp, err, sizeof err))
        ret = studio_send_error(c, 400, "%s", err);
    else
        p = photo_of(c, json_value(body, "photo"), &ret);
    json_decref(body);
    if (!p) return ret;
    ts_ctx *ctx = studio_ctx_get();
    json_t *out = NULL;
    int status = ctx ? studio_render(ctx, p, &lp, &out, err, sizeof err) : 500;
    if (!ctx) snprintf(err, sizeof err, "The studio could not start its analysis.");
    studio_ctx_put(ctx);
    ts_heap_trim(); /* a full-resolution render's buffers: give them back */
    studio_photo_put(p);
    if (status != 201) return studio_send_error(c, status, "%s", err);
    return studio_send_json(c, 201, out);
}

/* ---- files ---- */

static enum MHD_Result send_file(struct MHD_Connection *c, const char *path, const char *type,
                                 const char *download_name) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        return studio_send_error(c, 404, "That file is gone (forgotten?).");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (r && download_name) {
        char cd[300];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", download_name);
        MHD_add_response_header(r, "Content-Disposition", cd);
    }
    if (!r) close(fd);
    return studio_send(c, 200, r, type);
}

static enum MHD_Result file_get(struct MHD_Connection *c, const char *rest) {
    char id[STUDIO_ID_LEN + 1];
    size_t n = strcspn(rest, "/");
    if (n >= sizeof id) return studio_send_error(c, 404, "There is no such file.");
    memcpy(id, rest, n);
    id[n] = 0;
    studio_file f;
    if (studio_file_find(id, &f)) return studio_send_error(c, 404, "There is no such file.");
    if (!rest[n]) return send_file(c, f.path, f.mime, f.name);
    if (!strcmp(rest + n, "/editmap") && f.editmap[0])
        return send_file(c, f.editmap, "image/png", NULL);
    return studio_send_error(c, 404, "There is no such file.");
}

static enum MHD_Result zip_all(struct MHD_Connection *c) {
    studio_file *fs;
    int n = studio_file_list(&fs);
    if (!n) {
        free(fs);
        return studio_send_error(c, 404, "Nothing has been rendered yet: render a look first.");
    }
    char path[1200], id[STUDIO_ID_LEN];
    studio_new_id(id);
    snprintf(path, sizeof path, "%s/%s.zip", studio_session_dir(), id);
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_EXCL, &zerr);
    int ok = z != NULL;
    for (int i = 0; ok && i < n; i++) {
        /* Names stay unique when the same look was rendered twice. */
        char name[200];
        snprintf(name, sizeof name, "%s", fs[i].name);
        for (int k = 0; k < i; k++)
            if (!strcmp(fs[k].name, fs[i].name))
                snprintf(name, sizeof name, "%d-%s", i + 1, fs[i].name);
        zip_source_t *src = zip_source_file(z, fs[i].path, 0, -1);
        zip_int64_t at = src ? zip_file_add(z, name, src, ZIP_FL_ENC_UTF_8) : -1;
        if (at < 0) {
            zip_source_free(src);
            ok = 0;
        } else {
            zip_set_file_compression(z, (zip_uint64_t)at, ZIP_CM_STORE, 0);
        }
    }
    if (z && (!ok || zip_close(z) != 0)) {
        zip_discard(z);
        ok = 0;
    }
    free(fs);
    if (!ok) {
        unlink(path);
        return studio_send_error(c, 500, "The ZIP file could not be made.");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path); /* the open descriptor keeps it readable while it is sent */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        return studio_send_error(c, 500, "The ZIP file could not be read back.");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (r)
        MHD_add_response_header(r, "Content-Disposition",
                                "attachment; filename=\"trueshot-headshots.zip\"");
    else
        close(fd);
    return studio_send(c, 200, r, "application/zip");
}

/* ---- live coaching, forget ---- */

static enum MHD_Result live(struct MHD_Connection *c, studio_request *rq) {
    if (!rq->len) return studio_send_error(c, 400, "Send one JPEG frame as the request body.");
    ts_ctx *ctx = studio_ctx_get();
    json_t *out = NULL;
    char err[512] = "The studio could not start its analysis.";
    int status = ctx ? studio_live(ctx, rq->body, rq->len, &out, err, sizeof err) : 500;
    studio_ctx_put(ctx);
    if (status != 200) return studio_send_error(c, status, "%s", err);
    return studio_send_json(c, 200, out);
}

static enum MHD_Result forget(struct MHD_Connection *c) {
    int n = studio_forget();
    studio_preview_cache_clear();
    ts_heap_trim();
    fprintf(stderr, "trueshot studio: forgot everything (%d file%s deleted)\n", n,
            n == 1 ? "" : "s");
    return studio_send_json(c, 200, json_pack("{s:i}", "forgotten", n));
}

/* ---- routing ---- */

enum MHD_Result studio_route(struct MHD_Connection *c, const char *url, const char *method,
                             studio_request *rq, const char *token) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST"),
        del = !strcmp(method, "DELETE");
    if (strncmp(url, "/api/", 5)) {
        if (!get) return studio_send_error(c, 405, "The page only answers GET.");
        return page_file(c, url, rq, token);
    }
    const char *r = url + 5;
    enum MHD_Result ret;
    if (!strcmp(r, "health") && get) return studio_send_json(c, 200, json_pack("{s:b}", "ok", 1));
    if (!strcmp(r, "photos")) {
        if (post) return photo_upload(c, rq);
        if (get) return studio_send_json(c, 200, studio_photos_json());
    } else if (!strncmp(r, "photos/", 7)) {
        char id[STUDIO_ID_LEN + 1];
        const char *s = r + 7;
        size_t n = strcspn(s, "/");
        if (n >= sizeof id) return studio_send_error(c, 404, "There is no such photo.");
        memcpy(id, s, n);
        id[n] = 0;
        if (!s[n] && del) {
            if (studio_photo_remove(id))
                return studio_send_error(c, 404, "There is no photo with that id.");
            studio_preview_cache_clear();
            return studio_send_json(c, 200, json_pack("{s:s}", "removed", id));
        }
        if (!s[n] && get) {
            studio_photo *p = photo_of(c, id, &ret);
            if (!p) return ret;
            json_t *j = studio_photo_json(p, 0);
            studio_photo_put(p);
            return studio_send_json(c, 200, j);
        }
        if (!strcmp(s + n, "/thumb") && get) {
            studio_photo *p = photo_of(c, id, &ret);
            if (!p) return ret;
            ret = photo_thumb(c, p);
            studio_photo_put(p);
            return ret;
        }
    } else if (!strcmp(r, "styles") && get) {
        return styles_list(c);
    } else if (!strcmp(r, "preview") && get) {
        return preview(c);
    } else if (!strcmp(r, "render") && post) {
        return render(c, rq);
    } else if (!strncmp(r, "files/", 6) && get) {
        return file_get(c, r + 6);
    } else if (!strcmp(r, "zip") && get) {
        return zip_all(c);
    } else if (!strcmp(r, "live") && post) {
        return live(c, rq);
    } else if (!strcmp(r, "forget") && post) {
        return forget(c);
    } else {
        return studio_send_error(c, 404, "There is no endpoint %s.", url);
    }
    return studio_send_error(c, 405, "%s is not answered for %s.", method, url);
}
