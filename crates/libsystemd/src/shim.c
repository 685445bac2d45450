/*
 * The exported entry points of dynamod's libsystemd.so.0 shim.
 *
 * Every public sd_* function is defined here, in C, for two reasons Rust cannot handle on
 * stable: several take C variadic arguments (sd_notifyf, sd_journal_print, sd_journal_send, ...),
 * and every symbol needs the version node real binaries were linked against (LIBSYSTEMD_209,
 * ...). rustc puts the functions it exports into an anonymous version node of its own, so the
 * versioned names must come from an object it does not know about: this one. The functions
 * here only adapt arguments (format strings, by-value ids); the work is done by the
 * dynamod_shim_* functions in lib.rs.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>

/* The same layout as sd_id128_t in <systemd/sd-id128.h>. */
typedef union {
    uint8_t bytes[16];
    uint64_t qwords[2];
} shim_id128_t;

/* Implemented in Rust (lib.rs). */
int dynamod_shim_pid_notify_with_fds(pid_t pid, int unset_environment, const char *state,
                                     const int *fds, unsigned n_fds);
int dynamod_shim_notify_barrier(int unset_environment, uint64_t timeout_usec);
int dynamod_shim_listen_fds(int unset_environment);
int dynamod_shim_listen_fds_with_names(int unset_environment, char ***names);
int dynamod_shim_booted(void);
int dynamod_shim_watchdog_enabled(int unset_environment, uint64_t *usec);
int dynamod_shim_journal_print(int priority, const char *message);
int dynamod_shim_journal_fields(const struct iovec *fields, size_t n);
int dynamod_shim_journal_stream_fd(void);
int dynamod_shim_id128_get_machine(uint8_t ret[16]);
int dynamod_shim_id128_get_boot(uint8_t ret[16]);
int dynamod_shim_id128_get_invocation(uint8_t ret[16]);
int dynamod_shim_id128_randomize(uint8_t ret[16]);
int dynamod_shim_id128_from_string(const char *s, uint8_t ret[16]);
void dynamod_shim_id128_format(const uint8_t id[16], char *out, int uuid);

/* ---- sd-daemon: notifications ---------------------------------------------------------- */

int sd_pid_notify_with_fds(pid_t pid, int unset_environment, const char *state, const int *fds,
                           unsigned n_fds) {
    return dynamod_shim_pid_notify_with_fds(pid, unset_environment, state, fds, n_fds);
}

int sd_pid_notify(pid_t pid, int unset_environment, const char *state) {
    return dynamod_shim_pid_notify_with_fds(pid, unset_environment, state, NULL, 0);
}

int sd_notify(int unset_environment, const char *state) {
    return dynamod_shim_pid_notify_with_fds(0, unset_environment, state, NULL, 0);
}

static int notify_vformat(pid_t pid, int unset_environment, const char *format, va_list ap) {
    char *state = NULL;
    if (!format)
        return -EINVAL;
    if (vasprintf(&state, format, ap) < 0 || !state)
        return -ENOMEM;
    int r = dynamod_shim_pid_notify_with_fds(pid, unset_environment, state, NULL, 0);
    free(state);
    return r;
}

int sd_notifyf(int unset_environment, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int r = notify_vformat(0, unset_environment, format, ap);
    va_end(ap);
    return r;
}

int sd_pid_notifyf(pid_t pid, int unset_environment, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int r = notify_vformat(pid, unset_environment, format, ap);
    va_end(ap);
    return r;
}

int sd_notify_barrier(int unset_environment, uint64_t timeout) {
    return dynamod_shim_notify_barrier(unset_environment, timeout);
}

/* ---- sd-daemon: socket activation and environment ------------------------------------- */

int sd_listen_fds(int unset_environment) {
    return dynamod_shim_listen_fds(unset_environment);
}

int sd_listen_fds_with_names(int unset_environment, char ***names) {
    return dynamod_shim_listen_fds_with_names(unset_environment, names);
}

int sd_booted(void) {
    return dynamod_shim_booted();
}

int sd_watchdog_enabled(int unset_environment, uint64_t *usec) {
    return dynamod_shim_watchdog_enabled(unset_environment, usec);
}

/* ---- sd-daemon: descriptor checks (sd_is_*) --------------------------------------------- */

int sd_is_fifo(int fd, const char *path) {
    struct stat st, st_path;
    if (fd < 0)
        return -EBADF;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISFIFO(st.st_mode))
        return 0;
    if (path) {
        if (stat(path, &st_path) < 0)
            return (errno == ENOENT || errno == ENOTDIR) ? 0 : -errno;
        return st.st_dev == st_path.st_dev && st.st_ino == st_path.st_ino;
    }
    return 1;
}

int sd_is_special(int fd, const char *path) {
    struct stat st, st_path;
    if (fd < 0)
        return -EBADF;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
        return 0;
    if (path) {
        if (stat(path, &st_path) < 0)
            return (errno == ENOENT || errno == ENOTDIR) ? 0 : -errno;
        if (S_ISREG(st.st_mode) && S_ISREG(st_path.st_mode))
            return st.st_dev == st_path.st_dev && st.st_ino == st_path.st_ino;
        if (S_ISCHR(st.st_mode) && S_ISCHR(st_path.st_mode))
            return st.st_rdev == st_path.st_rdev;
        return 0;
    }
    return 1;
}

/* 1 when fd is a socket of this type (0: any) and, for listening >= 0, in that listening
 * state; 0 when not; a negative errno on failure. */
static int socket_matches(int fd, int type, int listening) {
    struct stat st;
    int value;
    socklen_t len;
    if (fd < 0 || type < 0)
        return -EINVAL;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISSOCK(st.st_mode))
        return 0;
    if (type != 0) {
        len = sizeof(value);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) < 0)
            return -errno;
        if (value != type)
            return 0;
    }
    if (listening >= 0) {
        len = sizeof(value);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) < 0)
            return -errno;
        if (!value != !listening)
            return 0;
    }
    return 1;
}

int sd_is_socket(int fd, int family, int type, int listening) {
    int r = socket_matches(fd, type, listening);
    if (r <= 0)
        return r;
    if (family > 0) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        memset(&sa, 0, sizeof(sa));
        if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
            return -errno;
        return sa.ss_family == family;
    }
    return 1;
}

int sd_is_socket_inet(int fd, int family, int type, int listening, uint16_t port) {
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    if (family != 0 && family != AF_INET && family != AF_INET6)
        return -EINVAL;
    int r = socket_matches(fd, type, listening);
    if (r <= 0)
        return r;
    memset(&sa, 0, sizeof(sa));
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -errno;
    if (sa.ss_family != AF_INET && sa.ss_family != AF_INET6)
        return 0;
    if (family != 0 && sa.ss_family != family)
        return 0;
    if (port > 0) {
        uint16_t actual = sa.ss_family == AF_INET
                              ? ntohs(((struct sockaddr_in *)&sa)->sin_port)
                              : ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        return actual == port;
    }
    return 1;
}

int sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length) {
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    int r = socket_matches(fd, type, listening);
    if (r <= 0)
        return r;
    memset(&sa, 0, sizeof(sa));
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -errno;
    if (sa.sun_family != AF_UNIX)
        return 0;
    if (!path)
        return 1;
    size_t got = len > offsetof(struct sockaddr_un, sun_path)
                     ? len - offsetof(struct sockaddr_un, sun_path)
                     : 0;
    if (length == 0)
        length = strlen(path);
    if (length == 0)
        return got == 0;
    if (path[0] != 0) {
        /* A file system path: compare up to the terminating NUL. */
        return strncmp(sa.sun_path, path, sizeof(sa.sun_path)) == 0;
    }
    /* An abstract name: compare the bytes. */
    return got == length && memcmp(sa.sun_path, path, length) == 0;
}

/* ---- sd-journal: messages go to stderr, which the service manager logs ------------------ */

int sd_journal_printv(int priority, const char *format, va_list ap) {
    char *message = NULL;
    if (!format)
        return -EINVAL;
    if (vasprintf(&message, format, ap) < 0 || !message)
        return -ENOMEM;
    int r = dynamod_shim_journal_print(priority, message);
    free(message);
    return r;
}

int sd_journal_print(int priority, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int r = sd_journal_printv(priority, format, ap);
    va_end(ap);
    return r;
}

int sd_journal_printv_with_location(int priority, const char *file, const char *line,
                                    const char *func, const char *format, va_list ap) {
    (void)file;
    (void)line;
    (void)func;
    return sd_journal_printv(priority, format, ap);
}

int sd_journal_print_with_location(int priority, const char *file, const char *line,
                                   const char *func, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int r = sd_journal_printv_with_location(priority, file, line, func, format, ap);
    va_end(ap);
    return r;
}

/*
 * Skips the arguments one printf conversion consumes, starting at the '%'; returns the
 * position after the conversion. Needed because sd_journal_send() takes several format
 * strings in one argument list, and a va_list may not be reused after vasprintf() consumed it.
 */
static const char *skip_conversion(const char *p, va_list *ap) {
    enum { L_NONE, L_HH, L_H, L_L, L_LL, L_J, L_Z, L_T, L_BIG_L } length = L_NONE;
    p++; /* the '%' */
    if (*p == '%')
        return p + 1;
    /* positional "n$" arguments are not supported by sd_journal_send either */
    while (*p && strchr("-+ #0'I", *p))
        p++;
    if (*p == '*') {
        (void)va_arg(*ap, int);
        p++;
    } else {
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == '.') {
        p++;
        if (*p == '*') {
            (void)va_arg(*ap, int);
            p++;
        } else {
            while (*p >= '0' && *p <= '9')
                p++;
        }
    }
    switch (*p) {
    case 'h':
        length = p[1] == 'h' ? L_HH : L_H;
        p += length == L_HH ? 2 : 1;
        break;
    case 'l':
        length = p[1] == 'l' ? L_LL : L_L;
        p += length == L_LL ? 2 : 1;
        break;
    case 'q':
        length = L_LL;
        p++;
        break;
    case 'j':
        length = L_J;
        p++;
        break;
    case 'z':
    case 'Z':
        length = L_Z;
        p++;
        break;
    case 't':
        length = L_T;
        p++;
        break;
    case 'L':
        length = L_BIG_L;
        p++;
        break;
    default:
        break;
    }
    switch (*p) {
    case 'd':
    case 'i':
    case 'u':
    case 'o':
    case 'x':
    case 'X':
    case 'c':
        if (length == L_L)
            (void)va_arg(*ap, long);
        else if (length == L_LL)
            (void)va_arg(*ap, long long);
        else if (length == L_J)
            (void)va_arg(*ap, intmax_t);
        else if (length == L_Z)
            (void)va_arg(*ap, size_t);
        else if (length == L_T)
            (void)va_arg(*ap, ptrdiff_t);
        else
            (void)va_arg(*ap, int);
        break;
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (length == L_BIG_L)
            (void)va_arg(*ap, long double);
        else
            (void)va_arg(*ap, double);
        break;
    case 's':
    case 'p':
    case 'n':
    case 'S':
        (void)va_arg(*ap, void *);
        break;
    case 'C':
        (void)va_arg(*ap, int);
        break;
    case 'm':
    case '\0':
        break;
    default:
        break;
    }
    return *p ? p + 1 : p;
}

static void skip_format(const char *format, va_list *ap) {
    const char *p = format;
    while ((p = strchr(p, '%')))
        p = skip_conversion(p, ap);
}

/* Formats every "FIELD=..." format string of the NULL-terminated list starting at format. */
static int journal_vsend(const char *format, va_list ap) {
    struct iovec *fields = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    va_list aq;
    va_copy(aq, ap);
    while (format) {
        char *buf = NULL;
        va_list one;
        va_copy(one, aq);
        if (vasprintf(&buf, format, one) < 0 || !buf) {
            va_end(one);
            r = -ENOMEM;
            goto finish;
        }
        va_end(one);
        skip_format(format, &aq);
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct iovec *nf = realloc(fields, ncap * sizeof(*nf));
            if (!nf) {
                free(buf);
                r = -ENOMEM;
                goto finish;
            }
            fields = nf;
            cap = ncap;
        }
        fields[n].iov_base = buf;
        fields[n].iov_len = strlen(buf);
        n++;
        format = va_arg(aq, const char *);
    }
    r = dynamod_shim_journal_fields(fields, n);
finish:
    va_end(aq);
    for (size_t i = 0; i < n; i++)
        free(fields[i].iov_base);
    free(fields);
    return r;
}

int sd_journal_send(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int r = journal_vsend(format, ap);
    va_end(ap);
    return r;
}

int sd_journal_send_with_location(const char *file, const char *line, const char *func,
                                  const char *format, ...) {
    (void)file;
    (void)line;
    (void)func;
    va_list ap;
    va_start(ap, format);
    int r = journal_vsend(format, ap);
    va_end(ap);
    return r;
}

int sd_journal_sendv(const struct iovec *iov, int n) {
    if (n < 0 || (n > 0 && !iov))
        return -EINVAL;
    return dynamod_shim_journal_fields(iov, (size_t)n);
}

int sd_journal_sendv_with_location(const char *file, const char *line, const char *func,
                                   const struct iovec *iov, int n) {
    (void)file;
    (void)line;
    (void)func;
    return sd_journal_sendv(iov, n);
}

int sd_journal_stream_fd(const char *identifier, int priority, int level_prefix) {
    (void)identifier;
    (void)priority;
    (void)level_prefix;
    return dynamod_shim_journal_stream_fd();
}

/* ---- sd-id128 --------------------------------------------------------------------------- */

int sd_id128_get_machine(shim_id128_t *ret) {
    return ret ? dynamod_shim_id128_get_machine(ret->bytes) : -EINVAL;
}

int sd_id128_get_boot(shim_id128_t *ret) {
    return ret ? dynamod_shim_id128_get_boot(ret->bytes) : -EINVAL;
}

int sd_id128_get_invocation(shim_id128_t *ret) {
    return ret ? dynamod_shim_id128_get_invocation(ret->bytes) : -EINVAL;
}

int sd_id128_randomize(shim_id128_t *ret) {
    return ret ? dynamod_shim_id128_randomize(ret->bytes) : -EINVAL;
}

int sd_id128_from_string(const char *s, shim_id128_t *ret) {
    shim_id128_t id;
    if (!s)
        return -EINVAL;
    int r = dynamod_shim_id128_from_string(s, id.bytes);
    if (r >= 0 && ret)
        *ret = id;
    return r;
}

char *sd_id128_to_string(shim_id128_t id, char s[33]) {
    dynamod_shim_id128_format(id.bytes, s, 0);
    return s;
}

char *sd_id128_to_uuid_string(shim_id128_t id, char s[37]) {
    dynamod_shim_id128_format(id.bytes, s, 1);
    return s;
}

int sd_id128_string_equal(const char *s, shim_id128_t id) {
    shim_id128_t parsed;
    if (!s)
        return -EINVAL;
    int r = dynamod_shim_id128_from_string(s, parsed.bytes);
    if (r < 0)
        return r;
    return memcmp(parsed.bytes, id.bytes, 16) == 0;
}
