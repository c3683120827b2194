/* Graders that read only the face analysis (no pixels): faces, resolution, headroom, pose, eyes
 * open, gaze and expression. Threshold sources are cited where each is set; docs/check.md
 * gathers them. */
#include <math.h>
#include <stdio.h>

#include "quality/quality.h"

/* Face width (cheek to cheek, bizygomatic breadth) over the inter-pupillary distance: about
 * 13.9 cm over 6.3 cm in adult anthropometry (Farkas, "Anthropometry of the head and face",
 * 1994: zy-zy 13.0-14.5 cm, pupil distance 5.8-6.8 cm). Turns an output face width into the
 * inter-eye distance it needs. */
#define FACE_W_PER_IED 2.2

static void grade_faces(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "faces", "One clear face");
    const ts_face *subj = &in->faces[in->a->face];
    double other = 0;
    for (int i = 0; i < in->n_faces; i++)
        if (i != in->a->face && in->faces[i].w > other) other = in->faces[i].w;
    double rel = subj->w > 0 ? other / subj->w : 0;
    q_raw(c, "count", in->n_faces);
    q_raw(c, "largest_other_rel", rel);
    q_raw(c, "presence", in->a->presence);
    /* Others present is a warning, not a failure, while the subject dominates (issue 5): a
     * face under 60% of the subject's width is a bystander the crop will leave out; one of
     * similar size makes it unclear whose headshot this is. Never "not usable": the subject
     * is still graded and cropped. */
    if (in->n_faces > 1 && rel < 0.6)
        q_grade(c, 65,
                "%d other face%s in the photo. The crop will leave %s out, but a photo of just "
                "you frames best.",
                in->n_faces - 1, in->n_faces == 2 ? " is" : "s are",
                in->n_faces == 2 ? "it" : "them");
    else if (in->n_faces > 1)
        q_grade(c, 45,
                "Someone else is as prominent as you (%d faces). Take a photo of just you; "
                "trueshot picked the largest, most central face.",
                in->n_faces);
    /* The mesh model's own confidence that a face is there (MediaPipe face presence). */
    else if (in->a->presence < 0.5f)
        q_grade(c, 50, "The face is hard to make out: face the camera in better light.");
    else
        q_grade(c, 100, NULL);
}

static void grade_resolution(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "resolution", "Resolution");
    double ied = in->a->inter_eye_px;
    /* A turned head shows a shorter inter-eye distance than the face has: grade its frontal
     * equivalent, capped at 60 degrees. */
    double frontal = ied / fmax(cos(in->a->yaw * M_PI / 180), 0.5);
    double needed = in->opt->output_px * in->opt->face_fraction / FACE_W_PER_IED;
    double max_out = frontal * FACE_W_PER_IED / in->opt->face_fraction;
    q_raw(c, "inter_eye_px", ied);
    q_raw(c, "needed_px", needed);
    q_raw(c, "max_output_px", max_out);
    /* Good: the chosen headshot needs no upscaling. Not usable below 60 px, the ISO/IEC
     * 19794-5 token-image minimum (ICAO 9303 asks 90 px for passports; OFIQ's InterEyeDistance
     * sigmoid is centred at 70 px): below it even a 400 px profile picture is upscaled more
     * than 1.5x. Graded on a log scale, as upscaling factors compound. */
    double s = q_up(log(frontal), log(60), log(needed));
    if (s >= Q_UNUSABLE)
        q_grade(c, s,
                "The face is %.0f px between the eyes; a sharp %d px headshot needs %.0f. This "
                "photo makes up to %.0f px. Move closer or zoom in so your head and shoulders "
                "fill more of the frame, and shoot at the camera's full resolution.",
                ied, in->opt->output_px, needed, max_out);
    else
        q_grade(c, s,
                "The face is far too small (%.0f px between the eyes; %.0f needed). Move much "
                "closer or zoom in so your head and shoulders fill the frame.",
                ied, needed);
}

static void grade_headroom(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "headroom", "Room for the framing");
    const float(*L)[3] = in->a->landmarks;
    double fh = fmax(in->face_h, 1), cx = (L[234][0] + L[454][0]) / 2, ey = in->eye_mid[1];
    /* The square the framing would cut: face width = face_fraction of its side, the eye line
     * 40% from the top (the photographers' rule of placing the eyes near the upper third;
     * OFIQ's CropOfTheFaceImage measures the same margins around the eye centres). How much of
     * that square the photo holds above the eyes and to each side, in units of its side. */
    double side = fmax(in->face_w, fh * 0.8) / in->opt->face_fraction;
    double above = ey / (0.4 * side), below = (in->H - ey) / (0.6 * side);
    double left = cx / (0.5 * side), right = (in->W - cx) / (0.5 * side);
    /* Below the chin, in face heights (mesh 10 to 152). */
    double chin = fmax(L[152][1], ey);
    double below_chin = (in->H - chin) / fh;
    q_raw(c, "fit", fmin(fmin(above, below), fmin(left, right)));
    q_raw(c, "above", above);
    q_raw(c, "below", below);
    q_raw(c, "left", left);
    q_raw(c, "right", right);
    q_raw(c, "below_chin", below_chin);
    /* Above: good when the photo holds the square with its eye line on the upper third (the
     * photographers' rule of thirds; frame.c's templates put the eyes 0.33-0.42 from the top, and
     * it raises them to 0.30 when the photo is short of room above), that is 0.83 of the room the
     * 0.40 eye line wants; not usable under 0.55 (the framing would then cut through the hair;
     * crown ~0.65 face heights above the eyes). The framing stage (src/render/frame.c) may zoom in
     * on the face up to 1.8x to keep the canvas on the photo, so a photo that holds 80% of the
     * square's width (the tight template's head size, 0.66 of the frame against the square's 0.52)
     * still frames well: the sides are good from 0.8. Below, a photographer asks for the chin, the
     * neck and the start of the shoulders, not for the chest: a frame that ends at the upper chest
     * still makes a square head-and-shoulders crop (frame.c zooms in and lowers the eye line to
     * complete it). So below is graded on the room under the chin: good from 0.10 face heights (the
     * webcam frames of the development set end 0.11-0.30 under the chin, at the collar with the
     * shoulder line in the picture, and frame well), not usable when the chin itself is at the edge
     * (a cut chin cannot be framed). */
    double sa = q_up(above, 0.55, 0.83);
    double sl = q_up(left, 0.45, 0.8), sr = q_up(right, 0.45, 0.8);
    double sb = q_up(below_chin, 0.0, 0.10);
    double s = fmin(fmin(sa, sb), fmin(sl, sr));
    static const char *tips[4] = {
        "Leave more room above your head: step back, or hold the camera a little higher and "
        "tilt it down.",
        "Show your neck and shoulders: step back or zoom out so the photo reaches at least to "
        "your collar.",
        "Centre yourself: there is too little room on the left of your face.",
        "Centre yourself: there is too little room on the right of your face.",
    };
    int lim = s == sa ? 0 : s == sb ? 1 : s == sl ? 2 : 3;
    q_grade(c, s, "%s", tips[lim]);
}

static void grade_pose(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "pose", "Head pose");
    double yaw = in->a->yaw, pitch = in->a->pitch, roll = in->a->roll;
    q_raw(c, "yaw_deg", yaw);
    q_raw(c, "pitch_deg", pitch);
    q_raw(c, "roll_deg", roll);
    /* ISO/IEC 19794-5 / ICAO 9303 allow +-5 degrees for a frontal passport image and OFIQ scores
     * each angle as 100 cos^2 (20 degrees -> 88, 45 -> 50). A headshot is not a passport photo: a
     * face turned up to ~20 degrees (shoulders angled, face to the lens) is the standard corporate
     * pose and good; a three-quarter view (30-45) suits creative looks but most uses want eye
     * contact, so it could be better; past 45 the far eye and cheek are foreshortened away (not
     * usable, and the mesh itself is no longer reliable). Pitch is less forgiving upward (chin up
     * reads arrogant, and shows the nostrils): good to 12, not usable from 25. A slightly lowered
     * chin is what portrait photographers ask for ("forehead forward and down", Peter Hurley, "The
     * Headshot", 2015), and the mesh reads a camera held a little above the eyes as a lowered chin
     * too: downward good to 15, not usable from 30 (the eyes look up from under the brows). Roll is
     * corrected by `make`, which levels the eyes (src/render/frame.c), so a modest tilt costs only
     * some of the picture around the face: good to 15 degrees, could be better from there with a
     * tip, not usable from 35 (a tilt that large, once levelled, turns the neck and shoulders with
     * it and no longer reads as a head held upright). */
    double sy = q_down(fabs(yaw), 20, 45),
           sp = pitch > 0 ? q_down(pitch, 12, 25) : q_down(-pitch, 15, 30),
           sr = q_down(fabs(roll), 15, 35);
    if (sy <= sp && sy <= sr)
        q_grade(c, sy,
                "Your face is turned %.0f degrees %s. Turn your face toward the camera; angling "
                "your shoulders is fine, but keep your face within about 20 degrees of the lens.",
                fabs(yaw), yaw > 0 ? "to your left" : "to your right");
    else if (sp <= sr)
        q_grade(c, sp,
                pitch > 0 ? "Your chin is raised (%.0f degrees): lower it a little, and hold the "
                            "camera at eye level."
                          : "Your head is tipped down (%.0f degrees): raise your chin a little "
                            "and hold the camera at eye level.",
                fabs(pitch));
    else
        q_grade(c, sr,
                "Your head is tilted %.0f degrees: straighten it (a slight tilt is fine, but this "
                "much looks off once the photo is levelled).",
                fabs(roll));
}

/* The eye to trust when the head is turned far: the one nearer the camera (yaw > 0 turns the
 * face to the person's left, bringing their right eye, index 0, toward the lens). */
static int near_eye(double yaw) {
    return yaw > 0 ? 0 : 1;
}

static void grade_eyes_open(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "eyes_open", "Eyes open");
    const float *e = in->a->eye_open;
    double open = fabs(in->a->yaw) > 30 ? e[near_eye(in->a->yaw)] : fmin(e[0], e[1]);
    q_raw(c, "right_eye", e[0]);
    q_raw(c, "left_eye", e[1]);
    /* Eye aspect ratio (lid gap over eye width): ~0.25-0.35 open, < 0.12 shut (docs/face-
     * expression.md; Soukupova and Cech 2016 use 0.2 as their blink threshold on a similar
     * ratio). OFIQ's EyesOpen only rejects closed eyes; a headshot also suffers from a
     * squint or a half blink, so good needs 0.17 and below 0.10 is a blink. */
    double s = q_up(open, 0.10, 0.17);
    if (s < Q_UNUSABLE)
        q_grade(c, s,
                "Your eyes are closed (a blink). Take a few shots in a row and keep one with "
                "your eyes open.");
    else
        q_grade(c, s,
                "Your eyes are half closed. Relax your face, look into the lens, and take "
                "several shots; a light smile should not close your eyes.");
}

static void grade_gaze(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "gaze", "Looking at the camera");
    const float(*g)[2] = in->a->gaze;
    double yaw = in->a->yaw;
    double gx, gy;
    if (fabs(yaw) > 30) {
        int k = near_eye(yaw);
        gx = g[k][0], gy = g[k][1];
    } else {
        gx = (g[0][0] + g[1][0]) / 2, gy = (g[0][1] + g[1][1]) / 2;
    }
    /* When the head is turned but the eyes hold the lens, the irises sit off-centre in the
     * eye by about 0.55 sin(yaw) half eye widths (eyeball radius ~12 mm over half an eye
     * width ~14 mm, measured on the development photos): remove it. Vertical gaze is read
     * from the lids too, which move with expression, so it counts at 70%. */
    double rx = gx - 0.55 * sin(yaw * M_PI / 180), ry = 0.7 * gy;
    double off = hypot(rx, ry);
    q_raw(c, "offset", off);
    q_raw(c, "x", rx);
    q_raw(c, "y", gy);
    double open = fmin(in->a->eye_open[0], in->a->eye_open[1]);
    /* ISO/IEC 19794-5 asks the eyes to look at the camera; no standard gives a tolerance.
     * People judge a gaze as "at me" over a cone several degrees either side of the lens
     * (Gamer and Hecht, "Are you looking at me? Measuring the cone of gaze", J Exp Psychol
     * Hum Percept Perform 2007), and the mesh's iris position at 30-50 px per eye is uncertain
     * by about 0.1-0.15 half eye widths (the development photos judged by eye to hold the
     * lens measure up to 0.42 with the head turned 19 degrees). Good within 0.45 half eye
     * widths (about 12 degrees), not usable past 0.9 (eyes clearly aside). Not graded when
     * the eyes are nearly shut: the irises are hidden. */
    if (open < 0.10) {
        q_grade(c, 100, NULL);
        return;
    }
    q_grade(c, q_down(off, 0.45, 0.9),
            "You are looking %s, not at the camera. Look into the lens itself (on a phone, the "
            "small dot above the screen), not at the screen.",
            fabs(rx) >= fabs(ry) ? (rx > 0 ? "to the side" : "to the side")
                                 : (gy > 0 ? "down" : "up"));
}

static void grade_expression(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "expression", "Expression");
    double m = in->a->mouth_open, smile = in->a->smile;
    q_raw(c, "mouth_open", m);
    q_raw(c, "smile", smile);
    /* A relaxed closed mouth and a smile (teeth showing is fine) are both good; an open mouth
     * without a smile is mid-word. OFIQ's MouthClosed centres its sigmoid at an inner-lip gap
     * of 0.2; we allow 0.12 without a smile, and up to 0.40 in a clear smile (corners raised
     * by 0.06 mouth widths or more), blending between. Not usable 0.2 further open. */
    double t = fmin(fmax(smile / 0.06, 0), 1);
    double good = 0.12 + (0.40 - 0.12) * t;
    double s = q_down(m, good, good + 0.2);
    if (t < 0.5)
        q_grade(c, s,
                "Your mouth is open as if mid-word. Close your lips gently or smile, and take "
                "several shots so one falls between words.");
    else
        q_grade(c, s,
                "Your mouth is wide open. A relaxed smile reads better than a laugh in a "
                "headshot.");
}

ts_status q_grade_geometry(q_input *in, ts_check_report *r) {
    grade_faces(in, r);
    grade_resolution(in, r);
    grade_headroom(in, r);
    grade_pose(in, r);
    grade_eyes_open(in, r);
    grade_gaze(in, r);
    grade_expression(in, r);
    return TS_OK;
}
