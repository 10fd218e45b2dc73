/*
 * A small blocking C client for the hook tests (tests/hook_c.rs): plain libc calls, written as
 * any C library would, with no knowledge of fibers. support/build.rs builds it four ways: a
 * static library and a shared object, each plain and with _FORTIFY_SOURCE=2 (where glibc's
 * headers turn `read`, `recv` and `recvfrom` into `__read_chk`, `__recv_chk`, `__recvfrom_chk`).
 *
 * Every function returns a count (or 0) on success and -errno on failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The two linked builds share one binary, so each names its functions with its own prefix. */
#ifndef FC_PREFIX
#define FC_PREFIX fc_
#endif
#define FC_CAT2(a, b) a##b
#define FC_CAT(a, b) FC_CAT2(a, b)
#define FC(name) FC_CAT(FC_PREFIX, name)

/* Which pair of data calls an echo makes. */
enum { FC_SEND_RECV = 0, FC_WRITE_READ = 1, FC_SENDTO_RECVFROM = 2 };

/* The received bytes land in a local buffer of known size first: only then can the fortified
 * build check the length, so only then does it call the __*_chk functions. */
#define FC_CHUNK 256

/* The read size is capped by a value the compiler cannot see (as a size taken from a protocol
 * header would be): with a constant cap it proves the size fits and calls plain read/recv even
 * when fortified, and the fortified build would test nothing more than the plain one. */
static volatile size_t chunk_cap = FC_CHUNK;

static int fail_closing(int fd) {
    int e = errno;
    close(fd);
    return -e;
}

static int open_connected(const char *host, int port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return fail_closing(fd);
    return fd;
}

static ssize_t put(int how, int fd, const char *p, size_t n) {
    switch (how) {
    case FC_WRITE_READ:
        return write(fd, p, n);
    case FC_SENDTO_RECVFROM:
        return sendto(fd, p, n, MSG_NOSIGNAL, NULL, 0);
    default:
        return send(fd, p, n, MSG_NOSIGNAL);
    }
}

static ssize_t get(int how, int fd, char *out, size_t room) {
    char buf[FC_CHUNK];
    size_t cap = chunk_cap;
    size_t n = room < cap ? room : cap;
    ssize_t r;
    switch (how) {
    case FC_WRITE_READ:
        r = read(fd, buf, n);
        break;
    case FC_SENDTO_RECVFROM:
        r = recvfrom(fd, buf, n, 0, NULL, NULL);
        break;
    default:
        r = recv(fd, buf, n, 0);
        break;
    }
    if (r > 0)
        memcpy(out, buf, (size_t)r);
    return r;
}

/*
 * Connects to host:port (dotted IPv4), sends `msg`, and reads back as many bytes as it sent (or
 * until end of stream, or `outlen`) into `out`. With `timeout_ms` >= 0 each read waits first in
 * poll() on the one socket and gives -ETIMEDOUT when nothing comes in time; with -1 it blocks in
 * the read itself. Returns the number of bytes read back.
 */
static int echo(int how, const char *host, int port, const char *msg, char *out, int outlen,
                int timeout_ms) {
    if (!host || !msg || !out || outlen < 0)
        return -EINVAL;
    size_t len = strlen(msg);
    int fd = open_connected(host, port);
    if (fd < 0)
        return fd;
    for (size_t sent = 0; sent < len;) {
        ssize_t w = put(how, fd, msg + sent, len - sent);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return fail_closing(fd);
        }
        sent += (size_t)w;
    }
    size_t got = 0;
    while (got < len && got < (size_t)outlen) {
        if (timeout_ms >= 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
            int ready = poll(&pfd, 1, timeout_ms);
            if (ready < 0) {
                if (errno == EINTR)
                    continue;
                return fail_closing(fd);
            }
            if (ready == 0) {
                close(fd);
                return -ETIMEDOUT;
            }
        }
        ssize_t r = get(how, fd, out + got, (size_t)outlen - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return fail_closing(fd);
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (close(fd) != 0)
        return -errno;
    return (int)got;
}

/* The echo with send() and recv(). */
int FC(echo)(const char *host, int port, const char *msg, char *out, int outlen, int timeout_ms) {
    return echo(FC_SEND_RECV, host, port, msg, out, outlen, timeout_ms);
}

/* The echo with write() and read(). */
int FC(echo_rw)(const char *host, int port, const char *msg, char *out, int outlen,
                int timeout_ms) {
    return echo(FC_WRITE_READ, host, port, msg, out, outlen, timeout_ms);
}

/* The echo with sendto() and recvfrom() (no address: a connected TCP socket). */
int FC(echo_from)(const char *host, int port, const char *msg, char *out, int outlen,
                  int timeout_ms) {
    return echo(FC_SENDTO_RECVFROM, host, port, msg, out, outlen, timeout_ms);
}

/* Sleeps `ms` milliseconds with nanosleep(), resuming after signals. */
int FC(sleep_ms)(int ms) {
    if (ms < 0)
        return -EINVAL;
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}
