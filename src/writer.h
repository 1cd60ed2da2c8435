/* writer: the only thread that writes to the store. It drains a queue of jobs (event appends and
 * user creations), runs each drained group as one transaction with one fsync (group commit),
 * builds every new event's frame once, updates the snapshot, hands the batch to every loop (the
 * feed), and only then completes the jobs, each on the loop that submitted it. A job is therefore
 * answered after its data is durable and after subscribers on its loop were given the event. */
#ifndef BROKER_WRITER_H
#define BROKER_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailbox.h"

struct app;
struct store;
struct user_record;
struct user_change;

enum writer_job_kind { WRITER_APPEND_EVENT, WRITER_ADD_USER, WRITER_UPDATE_USER };

/* Embedded by the submitter, which owns every pointer in it until done.run is called on the
 * reply_to loop. */
struct writer_job {
    struct writer_job *next;
    enum writer_job_kind kind;
    struct mailbox *reply_to;
    struct task done;
    int result; /* set by the writer: 0, -EEXIST (username taken), -ENOENT (no such user), the
                 * user_apply refusals, -ENOSPC, -EIO, -ESHUTDOWN */

    /* WRITER_APPEND_EVENT */
    const char *event;
    size_t event_len;
    const char *data; /* compact JSON */
    size_t data_len;
    const char *user_id;
    const char *key;  /* Idempotency-Key, or NULL */
    size_t key_len;
    int64_t id;       /* set by the writer */
    bool replayed;    /* set by the writer: the key was seen, id is the earlier insert's */

    /* WRITER_ADD_USER: the record to add. WRITER_UPDATE_USER: user->id names the user; the
     * writer applies change to the stored record (user_apply) and leaves the result in *user,
     * with ver_changed set when older tokens stopped being valid. */
    struct user_record *user;
    const struct user_change *change;
    bool ver_changed;
};

struct writer;

/* Takes ownership of store (a STORE_WRITER handle). */
int writer_start(struct app *app, struct store *store, struct writer **out);
/* Thread-safe. After writer_stop began, the job completes at once with -ESHUTDOWN. */
void writer_submit(struct writer *w, struct writer_job *job);
/* Commits everything queued, completes it, then joins the thread. */
void writer_stop(struct writer *w);
void writer_free(struct writer *w);

#endif
