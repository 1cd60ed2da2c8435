/* mailbox: how other threads hand work to a loop thread. Tasks are intrusive (the sender embeds a
 * struct task in its own object), so posting never allocates and cannot fail. The loop runs the
 * tasks in the order they were posted, on its own thread, woken through an eventfd. */
#ifndef BROKER_MAILBOX_H
#define BROKER_MAILBOX_H

struct event_base;

struct task {
    struct task *next;
    void (*run)(struct task *t);
};

struct mailbox;

/* after(arg), when given, runs once after each wake-up's tasks: the loop uses it to write what a
 * run of tasks queued (several batches delivered back to back leave in one write). */
struct mailbox *mailbox_new(struct event_base *base, void (*after)(void *arg), void *arg);
/* Tasks still queued are dropped without running; post nothing after this. */
void mailbox_free(struct mailbox *mb);
/* Thread-safe. The task must stay valid until it has run. */
void mailbox_post(struct mailbox *mb, struct task *t);

#endif
