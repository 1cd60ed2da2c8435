/* access/qr_svg: a QR code (libqrencode, error correction level M) drawn as a standalone SVG, so
 * that a client can show the otpauth:// URI of a new TOTP secret without a QR library of its own.
 * Pure; thread-safe (Debian's libqrencode guards its one shared table, the Reed-Solomon cache,
 * with a mutex). */
#ifndef BROKER_ACCESS_QR_SVG_H
#define BROKER_ACCESS_QR_SVG_H

/* The SVG document of text's QR code: black modules as one <path> on a white background, a
 * 4-module quiet zone, one user unit per module (viewBox) and 4 px per module as intrinsic size.
 * Starts with "<svg" and ends with "</svg>\n". Returns a malloc'd string (caller frees), or NULL
 * when text is NULL, too long for a QR code (more than about 2300 bytes at level M) or memory runs
 * out. The SVG holds the text's secret as pixels: treat it like the secret. */
char *qr_svg(const char *text);

#endif
