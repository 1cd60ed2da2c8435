/* access/directory: the current token version of every user whose older tokens are no longer all
 * valid, and whether it is revoked (SPEC §5 revocation). Process-wide and thread-safe: the loops
 * read it for every authenticated request, the code that commits a change of a user (or, in a
 * cluster, sees one arrive) writes it before the change is answered, so a token is refused as
 * soon as the change is visible anywhere. Users are never forgotten; a user absent from the
 * directory has version 0 and is not revoked. */
#ifndef BROKER_ACCESS_DIRECTORY_H
#define BROKER_ACCESS_DIRECTORY_H

#include <stdbool.h>
#include <stdint.h>

struct directory;

struct directory *directory_new(void);
void directory_free(struct directory *d);

/* Records user id's version and revoked flag; a version older than the one recorded is ignored
 * (changes may be seen out of order in a cluster). 0, or -ENOMEM. */
int directory_set(struct directory *d, const char *id, int64_t ver, bool revoked);
/* 0 when a token of user id issued at version ver is still valid; -EACCES with *reason (for a
 * 401) when the user is revoked or its version moved past ver. */
int directory_check(struct directory *d, const char *id, int64_t ver, const char **reason);
/* The recorded version of id (0 when none). */
int64_t directory_version(struct directory *d, const char *id);

#endif
