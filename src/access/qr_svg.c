/* access/qr_svg: each horizontal run of black modules becomes one rectangle of unit squares in a
 * single path, which keeps the document near 8 KB for a typical otpauth URI (~150 bytes: version 8).
 * The buffer is sized from a first pass over the runs, so the second pass cannot run short. */
#include "access/qr_svg.h"

#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QR_QUIET 4 /* modules of white around the symbol, as ISO/IEC 18004 asks */
#define QR_PX_PER_MODULE 4

/* Longest text of one run, "M%d %dh%dv1h-%dz", with 4-digit numbers (a symbol is at most 177
 * modules wide) and then some. */
#define QR_RUN_MAX 32

/* Calls put(x, y, n) for each horizontal run of n black modules starting at (x, y) in quiet-zone
 * coordinates; returns the number of runs. put may be NULL to only count. */
static size_t each_run(const QRcode *qr, void (*put)(int x, int y, int n, void *arg), void *arg)
{
    size_t runs = 0;
    for (int y = 0; y < qr->width; y++) {
        const unsigned char *row = qr->data + (size_t)y * (size_t)qr->width;
        for (int x = 0; x < qr->width;) {
            if (!(row[x] & 1)) { /* bit 0 is the module's colour; the others are libqrencode's */
                x++;
                continue;
            }
            int start = x;
            while (x < qr->width && (row[x] & 1))
                x++;
            if (put)
                put(start + QR_QUIET, y + QR_QUIET, x - start, arg);
            runs++;
        }
    }
    return runs;
}

struct svg_buf {
    char *p;
    size_t len;
    size_t cap;
};

static void put_run(int x, int y, int n, void *arg)
{
    struct svg_buf *b = arg;
    int w = snprintf(b->p + b->len, b->cap - b->len, "M%d %dh%dv1h-%dz", x, y, n, n);
    if (w > 0)
        b->len += (size_t)w;
}

char *qr_svg(const char *text)
{
    if (!text)
        return NULL;
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return NULL;
    int size = qr->width + 2 * QR_QUIET;
    int px = size * QR_PX_PER_MODULE;
    size_t runs = each_run(qr, NULL, NULL);
    static const char head_fmt[] =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 %d %d\" "
        "width=\"%d\" height=\"%d\" shape-rendering=\"crispEdges\">"
        "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"";
    static const char tail[] = "\"/></svg>\n";
    struct svg_buf b = { 0 };
    b.cap = sizeof head_fmt + 6 * 8 + runs * QR_RUN_MAX + sizeof tail;
    b.p = malloc(b.cap);
    if (!b.p) {
        QRcode_free(qr);
        return NULL;
    }
    int w = snprintf(b.p, b.cap, head_fmt, size, size, px, px, size, size);
    b.len = w > 0 ? (size_t)w : 0;
    each_run(qr, put_run, &b);
    QRcode_free(qr);
    if (b.len + sizeof tail > b.cap) { /* cannot happen with the sizes above; never truncate */
        free(b.p);
        return NULL;
    }
    memcpy(b.p + b.len, tail, sizeof tail);
    return b.p;
}
