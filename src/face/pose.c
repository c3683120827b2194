/* Head pose: weighted orthogonal Procrustes of the canonical face mesh onto the landmarks under a
 * weak-perspective camera. See pose.h for conventions and docs/face-pose.md for the reasoning. */
#include "face/pose.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEG (180.0 / M_PI)
#define RAD (M_PI / 180.0)

/* Eigen-decomposition of a symmetric 4x4 matrix by cyclic Jacobi rotations; returns the unit
 * eigenvector of the largest eigenvalue in v. */
static void jacobi4_max(double A[4][4], double v[4]) {
    double V[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < 4; i++) {
            diag += A[i][i] * A[i][i];
            for (int j = i + 1; j < 4; j++) off += A[i][j] * A[i][j];
        }
        if (off <= 1e-30 * (diag + 1e-300)) break;
        for (int p = 0; p < 3; p++) {
            for (int q = p + 1; q < 4; q++) {
                if (A[p][q] == 0) continue;
                double theta = (A[q][q] - A[p][p]) / (2 * A[p][q]);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < 4; k++) { /* A = J^T A J */
                    double akp = A[k][p], akq = A[k][q];
                    A[k][p] = c * akp - s * akq;
                    A[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 4; k++) {
                    double apk = A[p][k], aqk = A[q][k];
                    A[p][k] = c * apk - s * aqk;
                    A[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 4; k++) {
                    double vkp = V[k][p], vkq = V[k][q];
                    V[k][p] = c * vkp - s * vkq;
                    V[k][q] = s * vkp + c * vkq;
                }
            }
        }
    }
    int best = 0;
    for (int i = 1; i < 4; i++)
        if (A[i][i] > A[best][best]) best = i;
    double n = 0;
    for (int k = 0; k < 4; k++) n += V[k][best] * V[k][best];
    n = sqrt(n);
    for (int k = 0; k < 4; k++) v[k] = V[k][best] / n;
}

int ts_pose_procrustes(const double (*a)[3], const double (*b)[3], const double *w, int n,
                       double *s, double R[3][3], double t[3]) {
    if (!a || !b || !w || n <= 0 || !s || !R || !t) return -1;
    double W = 0, ca[3] = {0}, cb[3] = {0};
    for (int i = 0; i < n; i++) {
        if (!(w[i] >= 0) || !isfinite(w[i])) return -1;
        W += w[i];
        for (int k = 0; k < 3; k++) {
            ca[k] += w[i] * a[i][k];
            cb[k] += w[i] * b[i][k];
        }
    }
    if (!(W > 1e-12) || !isfinite(W)) return -1;
    for (int k = 0; k < 3; k++) {
        ca[k] /= W;
        cb[k] /= W;
    }
    /* S[j][k] = sum w (a - ca)_j (b - cb)_k; va, vb: weighted spreads */
    double S[3][3] = {{0}}, va = 0, vb = 0;
    for (int i = 0; i < n; i++) {
        double da[3], db[3];
        for (int k = 0; k < 3; k++) {
            da[k] = a[i][k] - ca[k];
            db[k] = b[i][k] - cb[k];
            va += w[i] * da[k] * da[k];
            vb += w[i] * db[k] * db[k];
        }
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) S[j][k] += w[i] * da[j] * db[k];
    }
    if (!(va > 1e-12 * W) || !(vb > 1e-12 * W) || !isfinite(va) || !isfinite(vb)) return -1;
    /* Horn (1987): the rotation is the unit quaternion maximising q^T N q. Scale the matrix so the
     * Jacobi threshold is independent of the point sets' units. */
    double norm = sqrt(va * vb);
    double xx = S[0][0] / norm, xy = S[0][1] / norm, xz = S[0][2] / norm;
    double yx = S[1][0] / norm, yy = S[1][1] / norm, yz = S[1][2] / norm;
    double zx = S[2][0] / norm, zy = S[2][1] / norm, zz = S[2][2] / norm;
    double N[4][4] = {
        {xx + yy + zz, yz - zy, zx - xz, xy - yx},
        {yz - zy, xx - yy - zz, xy + yx, zx + xz},
        {zx - xz, xy + yx, -xx + yy - zz, yz + zy},
        {xy - yx, zx + xz, yz + zy, -xx - yy + zz},
    };
    double q[4];
    jacobi4_max(N, q);
    double q0 = q[0], qx = q[1], qy = q[2], qz = q[3];
    R[0][0] = q0 * q0 + qx * qx - qy * qy - qz * qz;
    R[0][1] = 2 * (qx * qy - q0 * qz);
    R[0][2] = 2 * (qx * qz + q0 * qy);
    R[1][0] = 2 * (qy * qx + q0 * qz);
    R[1][1] = q0 * q0 - qx * qx + qy * qy - qz * qz;
    R[1][2] = 2 * (qy * qz - q0 * qx);
    R[2][0] = 2 * (qz * qx - q0 * qy);
    R[2][1] = 2 * (qz * qy + q0 * qx);
    R[2][2] = q0 * q0 - qx * qx - qy * qy + qz * qz;
    /* s = sum w (b - cb) . R (a - ca) / sum w |a - ca|^2 */
    double num = 0;
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < 3; k++) num += R[k][j] * S[j][k];
    *s = num / va;
    if (!(*s > 0) || !isfinite(*s)) return -1;
    for (int k = 0; k < 3; k++)
        t[k] = cb[k] - *s * (R[k][0] * ca[0] + R[k][1] * ca[1] + R[k][2] * ca[2]);
    return 0;
}

static void matmul(const double A[3][3], const double B[3][3], double C[3][3]) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            C[i][j] = A[i][0] * B[0][j] + A[i][1] * B[1][j] + A[i][2] * B[2][j];
}

void ts_pose_matrix(double yaw, double pitch, double roll, double R[3][3]) {
    double a = yaw * RAD, b = -pitch * RAD, c = -roll * RAD;
    double Ry[3][3] = {{cos(a), 0, sin(a)}, {0, 1, 0}, {-sin(a), 0, cos(a)}};
    double Rx[3][3] = {{1, 0, 0}, {0, cos(b), -sin(b)}, {0, sin(b), cos(b)}};
    double Rz[3][3] = {{cos(c), -sin(c), 0}, {sin(c), cos(c), 0}, {0, 0, 1}};
    double T[3][3];
    matmul(Rx, Ry, T);
    matmul(Rz, T, R);
}

void ts_pose_angles(const double R[3][3], double *yaw, double *pitch, double *roll) {
    /* R = Rz(c) Rx(b) Ry(a): third row (-cos b sin a, sin b, cos b cos a), second column
     * (-sin c cos b, cos c cos b, sin b). */
    double sb = R[2][1] > 1 ? 1 : R[2][1] < -1 ? -1 : R[2][1];
    double b = asin(sb), a, c;
    if (fabs(sb) < 1 - 1e-12) {
        a = atan2(-R[2][0], R[2][2]);
        c = atan2(-R[0][1], R[1][1]);
    } else { /* gimbal lock at pitch +-90: attribute everything to yaw */
        c = 0;
        a = atan2(R[0][2], R[0][0]);
    }
    if (yaw) *yaw = a * DEG;
    if (pitch) *pitch = -b * DEG;
    if (roll) *roll = -c * DEG;
}

void ts_pose_project(const ts_pose *p, const double v[3], double out[3]) {
    double c[3];
    for (int k = 0; k < 3; k++)
        c[k] = p->t[k] + p->scale * (p->R[k][0] * v[0] + p->R[k][1] * v[1] + p->R[k][2] * v[2]);
    out[0] = c[0];
    out[1] = -c[1];
    out[2] = -c[2];
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ts_pose_fit(const ts_geom *g, const float (*lm)[3], int n, ts_pose *out, char *err,
                size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!g || !lm || !out) return fail(err, errlen, "pose: NULL argument");
    if (n < TS_GEOM_VERTICES)
        return fail(err, errlen, "pose: %d landmarks, need at least %d", n, TS_GEOM_VERTICES);
    if (!g->basis || g->n_basis <= 0 || g->n_basis > TS_GEOM_MAX_BASIS)
        return fail(err, errlen, "pose: geometry has no procrustes basis");
    memset(out, 0, sizeof *out);
    int m = g->n_basis;
    double(*a)[3] = malloc((size_t)m * sizeof *a), (*b)[3] = malloc((size_t)m * sizeof *b);
    double *w = calloc((size_t)m, sizeof *w);
    int rc = -1;
    if (!a || !b || !w) {
        rc = fail(err, errlen, "pose: out of memory");
        goto done;
    }
    for (int i = 0; i < m; i++) {
        uint32_t id = g->basis[i].id;
        if (id >= TS_GEOM_VERTICES) {
            fail(err, errlen, "pose: basis id %u out of range", id);
            goto done;
        }
        for (int k = 0; k < 3; k++) {
            if (!isfinite(lm[id][k])) {
                fail(err, errlen, "pose: landmark %u is not finite", id);
                goto done;
            }
            a[i][k] = g->vertices[id][k];
        }
        /* image (x right, y down, z away) -> camera frame (X right, Y up, Z towards camera) */
        b[i][0] = lm[id][0];
        b[i][1] = -(double)lm[id][1];
        b[i][2] = -(double)lm[id][2];
        w[i] = g->basis[i].weight;
    }
    if (ts_pose_procrustes((const double(*)[3])a, (const double(*)[3])b, w, m, &out->scale, out->R,
                           out->t)) {
        fail(err, errlen, "pose: degenerate landmarks (collapsed or zero-weight basis)");
        goto done;
    }
    double e = 0, W = 0;
    for (int i = 0; i < m; i++) {
        for (int k = 0; k < 3; k++) {
            double p = out->t[k] + out->scale * (out->R[k][0] * a[i][0] + out->R[k][1] * a[i][1] +
                                                 out->R[k][2] * a[i][2]);
            e += w[i] * (p - b[i][k]) * (p - b[i][k]);
        }
        W += w[i];
    }
    out->rms = sqrt(e / W);
    double iod = 0;
    for (int k = 0; k < 3; k++) {
        double d = (double)g->vertices[263][k] - g->vertices[33][k];
        iod += d * d;
    }
    iod = sqrt(iod) * out->scale;
    out->rms_rel = iod > 0 ? out->rms / iod : 0;
    ts_pose_angles((const double(*)[3])out->R, &out->yaw, &out->pitch, &out->roll);
    rc = 0;
done:
    free(a);
    free(b);
    free(w);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

int ts_pose_quarters(const ts_face_analysis *a, double *roll) {
    const float(*L)[3] = a->landmarks;
    double r = atan2(L[263][1] - L[33][1], L[263][0] - L[33][0]), quarter = M_PI / 2;
    if (roll) *roll = r;
    double q = round(r / quarter);
    return q != 0 && fabs(r - q * quarter) <= TS_POSE_UPRIGHT_TOL_DEG * M_PI / 180 ? (int)q : 0;
}
