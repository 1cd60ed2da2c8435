/* proc_stats: what /proc says about this process (for start-up sizing and /metrics). */
#ifndef BROKER_PROC_STATS_H
#define BROKER_PROC_STATS_H

/* Open file descriptors, or -1 when /proc cannot be read. */
long proc_open_fds(void);
/* Resident set size in bytes, or -1. */
long proc_resident_bytes(void);

#endif
