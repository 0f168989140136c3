/*
 * flatsnap's native helper: the two things Node cannot do by itself.
 *
 *  - POSIX fcntl record locks (F_SETLK / F_SETLKW / F_GETLK on the whole file).
 *    The stock SM's lock.py uses these on /var/lock/sm/<ns>/<name>; flock(2)
 *    locks do not conflict with them on Linux, so nothing else interoperates.
 *  - Sending a line to syslog over a unix datagram socket, which Node's dgram
 *    module cannot do. The socket path is a parameter so tests can listen.
 *
 * Plain N-API in C, no node-addon-api, so it builds with gcc alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CHECK(env, call)                                                       \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), NULL, "napi call failed: " #call);               \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int arg_int(napi_env env, napi_value v, int *out) {
  int32_t x;
  if (napi_get_value_int32(env, v, &x) != napi_ok) return -1;
  *out = x;
  return 0;
}

static int arg_bool(napi_env env, napi_value v, bool *out) {
  return napi_get_value_bool(env, v, out) == napi_ok ? 0 : -1;
}

/* lock(fd, exclusive, wait) -> true when taken, false when busy and !wait. */
static napi_value js_lock(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  int fd;
  bool exclusive, wait;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || arg_int(env, argv[0], &fd) || arg_bool(env, argv[1], &exclusive) ||
      arg_bool(env, argv[2], &wait)) {
    napi_throw_type_error(env, NULL, "lock(fd: number, exclusive: boolean, wait: boolean)");
    return NULL;
  }
  struct flock fl = {.l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  int rc;
  do {
    rc = fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (!wait && (errno == EAGAIN || errno == EACCES)) {
      CHECK(env, napi_get_boolean(env, false, &result));
      return result;
    }
    return throw_errno(env, "fcntl lock", errno);
  }
  CHECK(env, napi_get_boolean(env, true, &result));
  return result;
}

static napi_value js_unlock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "unlock(fd: number)");
    return NULL;
  }
  struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_SETLK, &fl) < 0) return throw_errno(env, "fcntl unlock", errno);
  return NULL;
}

/* holder(fd, exclusive) -> pid of a process whose lock conflicts, or 0. */
static napi_value js_holder(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  int fd;
  bool exclusive;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_int(env, argv[0], &fd) || arg_bool(env, argv[1], &exclusive)) {
    napi_throw_type_error(env, NULL, "holder(fd: number, exclusive: boolean)");
    return NULL;
  }
  struct flock fl = {.l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_GETLK, &fl) < 0) return throw_errno(env, "fcntl getlk", errno);
  CHECK(env, napi_create_int32(env, fl.l_type == F_UNLCK ? 0 : fl.l_pid, &result));
  return result;
}

/*
 * syslog(path, priority, message): one RFC 3164 datagram, "<PRI>Mmm dd hh:mm:ss SM: msg",
 * facility local2 like the Python stack's SMlog. Returns false if the socket is
 * absent or refuses the datagram, so the caller can fall back.
 */
static napi_value js_syslog(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  char path[108], msg[4096], line[4200], stamp[32];
  size_t plen, mlen;
  int prio;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok ||
      arg_int(env, argv[1], &prio) ||
      napi_get_value_string_utf8(env, argv[2], msg, sizeof msg, &mlen) != napi_ok) {
    napi_throw_type_error(env, NULL, "syslog(path: string, priority: number, message: string)");
    return NULL;
  }
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
  const int local2 = 18 << 3;
  int n = snprintf(line, sizeof line, "<%d>%s SM: %s", local2 | (prio & 7), stamp, msg);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;

  bool ok = false;
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s >= 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, plen < sizeof sa.sun_path ? plen : sizeof sa.sun_path - 1);
    ok = sendto(s, line, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa) == n;
    close(s);
  }
  CHECK(env, napi_get_boolean(env, ok, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"lock", NULL, js_lock, NULL, NULL, NULL, napi_default, NULL},
      {"unlock", NULL, js_unlock, NULL, NULL, NULL, napi_default, NULL},
      {"holder", NULL, js_holder, NULL, NULL, NULL, napi_default, NULL},
      {"syslog", NULL, js_syslog, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
