/* http/append: the growable byte buffer both protocols build answers and requests in (conn.c). */
#ifndef BROKER_HTTP_APPEND_H
#define BROKER_HTTP_APPEND_H

#include <stddef.h>

/* Appends data[0..n) to *buf (len used, cap allocated), growing it by doubling. 0, or -ENOMEM with
 * the buffer unchanged. */
int conn_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n);

#endif
