/* json_raw: byte-level helpers over JSON text that a parser has already validated. They let the
 * server keep a client's data exactly as sent (numbers keep their digits, big integers survive,
 * strings keep their escapes), only without insignificant whitespace. Pure functions. */
#ifndef BROKER_JSON_RAW_H
#define BROKER_JSON_RAW_H

#include <stddef.h>

/* Finds the value of member key in the top-level object of doc (valid JSON). The last occurrence
 * wins, as in jansson. 0 with the value at doc[*start, *end), or -1 when there is none. */
int json_raw_member(const char *doc, size_t len, const char *key, size_t keylen, size_t *start,
                    size_t *end);

/* Copies valid JSON text src to out (at least len bytes) without whitespace outside strings;
 * returns the new length. */
size_t json_raw_compact(const char *src, size_t len, char *out);

#endif
