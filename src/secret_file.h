/* secret_file: the generated JWT secret kept beside the database, so that tokens survive restarts
 * when no --jwt_secret is given. */
#ifndef BROKER_SECRET_FILE_H
#define BROKER_SECRET_FILE_H

#include <stddef.h>

/* Reads the secret at path, creating it (256 random bits as 64 hex characters, mode 0600) when it
 * does not exist. *out is malloc'd (the caller wipes and frees it). 0 or a negative errno. */
int secret_load_or_create(const char *path, char **out, size_t *len);

#endif
