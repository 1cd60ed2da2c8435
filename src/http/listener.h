/* http/listener: the listening sockets. Each loop gets its own socket bound to the same address
 * with SO_REUSEPORT, so the kernel spreads connections over the loops without a shared accept
 * lock, and a large backlog so a burst of connects is queued rather than dropped. */
#ifndef BROKER_HTTP_LISTENER_H
#define BROKER_HTTP_LISTENER_H

#define LISTEN_BACKLOG 4096

/* Returns a non-blocking listening socket, or a negative errno (the reason is logged). */
int listener_open(const char *host, int port);

#endif
