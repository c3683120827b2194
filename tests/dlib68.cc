// Test-only tool: dlib's 68-point shape predictor (iBUG 300-W markup) on one face of a photo, as an
// independent second opinion on trueshot's face mesh (tests/test_dlib_xcheck.c).
//
//   dlib68 MODEL.dat PHOTO X Y W H [--detect]
//
// X Y W H is the face box in photo pixels from trueshot's own detector, so both models look at the
// same face. The predictor was trained with dlib's HOG frontal-face detector boxes, whose framing
// differs from BlazeFace's; with --detect the tool runs that detector and starts from its box that
// overlaps the given one most (intersection over union > 0.3), falling back to the given box.
// Prints the 68 points, one "x y" per line (0-based iBUG order), on stdout; the box used goes to
// stderr. Exit status: 0 done, 1 bad arguments, 2 unreadable model or photo.
#include <dlib/image_io.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

static double iou(const dlib::rectangle &a, const dlib::rectangle &b) {
    const dlib::rectangle i = a.intersect(b);
    if (i.is_empty()) return 0.0;
    const double ai = (double)i.area();
    return ai / ((double)a.area() + (double)b.area() - ai);
}

int main(int argc, char **argv) {
    if (argc != 7 && !(argc == 8 && std::strcmp(argv[7], "--detect") == 0)) {
        std::fprintf(stderr, "usage: dlib68 MODEL.dat PHOTO X Y W H [--detect]\n");
        return 1;
    }
    const bool detect = argc == 8;
    const double x = std::atof(argv[3]), y = std::atof(argv[4]);
    const double w = std::atof(argv[5]), h = std::atof(argv[6]);
    if (!(w > 0 && h > 0)) {
        std::fprintf(stderr, "dlib68: face box must have positive size\n");
        return 1;
    }
    dlib::shape_predictor sp;
    dlib::array2d<unsigned char> img;
    try {
        dlib::deserialize(argv[1]) >> sp;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "dlib68: cannot read model %s: %s\n", argv[1], e.what());
        return 2;
    }
    try {
        dlib::load_image(img, argv[2]);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "dlib68: cannot read photo %s: %s\n", argv[2], e.what());
        return 2;
    }
    dlib::rectangle box((long)(x + 0.5), (long)(y + 0.5), (long)(x + w + 0.5) - 1,
                        (long)(y + h + 0.5) - 1);
    const char *source = "given";
    if (detect) {
        dlib::frontal_face_detector det = dlib::get_frontal_face_detector();
        const std::vector<dlib::rectangle> found = det(img);
        double best = 0.3;
        for (const dlib::rectangle &r : found) {
            const double o = iou(r, box);
            if (o > best) {
                best = o;
                box = r;
                source = "dlib";
            }
        }
    }
    const dlib::full_object_detection shape = sp(img, box);
    std::fprintf(stderr, "dlib68: box %ld %ld %ld %ld (%s)\n", box.left(), box.top(), box.width(),
                 box.height(), source);
    for (unsigned long i = 0; i < shape.num_parts(); i++)
        std::printf("%ld %ld\n", shape.part(i).x(), shape.part(i).y());
    return 0;
}
