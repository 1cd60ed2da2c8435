/* secret_file: create-once (O_EXCL, fsync'd), then read on every start. */
#include "secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define SECRET_BYTES 32

static int read_secret(int fd, const char *path, char **out, size_t *len)
{
    char buf[4097];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        n += (size_t)r;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (n == 0) {
        log_error("secret: %s is empty; delete it to have a new one generated", path);
        return -EINVAL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        log_warn("secret: %s is readable by other users (mode %o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    *out = malloc(n + 1);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, buf, n);
    (*out)[n] = '\0';
    *len = n;
    sodium_memzero(buf, sizeof buf);
    return 0;
}

static int fsync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int secret_load_or_create(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        int rc = read_secret(fd, path, out, len);
        close(fd);
        return rc;
    }
    if (errno != ENOENT)
        return -errno;

    unsigned char raw[SECRET_BYTES];
    char hex[SECRET_BYTES * 2 + 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    size_t n = SECRET_BYTES * 2;
    hex[n] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sodium_memzero(hex, sizeof hex);
        if (errno == EEXIST) /* another process created it first: use theirs */
            return secret_load_or_create(path, out, len);
        return -errno;
    }
    int rc = 0;
    if (write(fd, hex, n + 1) != (ssize_t)(n + 1) || fsync(fd) != 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0)
        rc = fsync_parent(path);
    if (rc != 0) {
        unlink(path);
        sodium_memzero(hex, sizeof hex);
        return rc;
    }
    *out = malloc(n + 1);
    if (!*out) {
        sodium_memzero(hex, sizeof hex);
        return -ENOMEM;
    }
    memcpy(*out, hex, n);
    (*out)[n] = '\0';
    *len = n;
    sodium_memzero(hex, sizeof hex);
    log_info("secret: generated a new JWT secret in %s", path);
    return 0;
}
