/*
 * flatsnap's native helper: the two things Node cannot do by itself.
 *
 *  - POSIX fcntl record locks (F_SETLK / F_SETLKW / F_GETLK on the whole file).
 *    The stock SM's lock.py uses these on /var/lock/sm/<ns>/<name>; flock(2)
 *    locks do not conflict with them on Linux, so nothing else interoperates.
 *  - flock(2), for the other job: the cross-host lock of a shared SR. On OCFS2
 *    with the o2cb stack flock locks go through the DLM and exclude across
 *    nodes, while fcntl locks stay node-local (docs/shared-srs.md).
 *  - Sending a line to syslog over a unix datagram socket, which Node's dgram
 *    module cannot do. The socket path is a parameter so tests can listen.
 *  - The reflink backend's syscalls: ioctl(FICLONE), statfs(2) (the
 *    filesystem magic, which Node's fs.statfs reports but without f_flags),
 *    ioctl(FS_IOC_FIEMAP) to count and map extents, and for the relayout of a
 *    fragmented image (src/backends/reflink/relayout.ts) ioctl(FICLONERANGE)
 *    and ioctl(FIDEDUPERANGE), and fallocate(FALLOC_FL_UNSHARE_RANGE), which
 *    glibc has but Node does not. Their failures throw an Error whose
 *    `code` is the errno name ('EOPNOTSUPP', 'EXDEV', 'ENOSPC', ...), with
 *    `errno` (positive) and `syscall`, like Node's own system errors.
 *
 * Plain N-API in C, no node-addon-api, so it builds with gcc alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
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

/* Defined with the reflink helpers below: an Error whose .code is the errno name. */
static napi_value throw_sys(napi_env env, const char *syscall, int err);

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
 * flock(fd, exclusive, wait) -> true when taken, false when busy and !wait.
 * LOCK_SH or LOCK_EX on the open file description (not the process, unlike fcntl):
 * two descriptors opened separately exclude each other even within one process.
 * Calling it again on a held descriptor converts the lock (not atomically).
 * The blocking form has no timeout; callers wanting a bounded wait poll with
 * wait=false.
 */
static napi_value js_flock(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  int fd, rc;
  bool exclusive, wait;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || arg_int(env, argv[0], &fd) || arg_bool(env, argv[1], &exclusive) ||
      arg_bool(env, argv[2], &wait)) {
    napi_throw_type_error(env, NULL, "flock(fd: number, exclusive: boolean, wait: boolean)");
    return NULL;
  }
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  do {
    rc = flock(fd, op);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (!wait && errno == EWOULDBLOCK) {
      CHECK(env, napi_get_boolean(env, false, &result));
      return result;
    }
    return throw_sys(env, "flock", errno);
  }
  CHECK(env, napi_get_boolean(env, true, &result));
  return result;
}

/* funlock(fd): flock(fd, LOCK_UN). Closing the last descriptor of the file description also releases it. */
static napi_value js_funlock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd, rc;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "funlock(fd: number)");
    return NULL;
  }
  do {
    rc = flock(fd, LOCK_UN);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_sys(env, "flock(LOCK_UN)", errno);
  return NULL;
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

/* ---- reflink backend: FICLONE, statfs, FIEMAP ---------------------------- */

/* The errno names the callers test for; anything else is "EUNKNOWN" with `errno`.
 * (strerrorname_np would do this but needs glibc 2.32; dom0's is older.) */
static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case ETXTBSY: return "ETXTBSY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EROFS: return "EROFS";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case EOVERFLOW: return "EOVERFLOW";
    case EOPNOTSUPP: return "EOPNOTSUPP"; /* == ENOTSUP on Linux */
    case ESTALE: return "ESTALE";
    case EDQUOT: return "EDQUOT";
    case ENOTCONN: return "ENOTCONN";
    case EUCLEAN: return "EUCLEAN";
    default: return NULL;
  }
}

/* Throws Error(message) with .code = errno name, .errno = err, .syscall = syscall. */
static napi_value throw_sys(napi_env env, const char *syscall, int err) {
  char msg[256];
  const char *name = errno_name(err);
  napi_value code, message, error, num, sc;
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, strerror(err), name ? name : "EUNKNOWN");
  if (napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok ||
      napi_create_int32(env, err, &num) != napi_ok ||
      napi_set_named_property(env, error, "errno", num) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc) != napi_ok ||
      napi_set_named_property(env, error, "syscall", sc) != napi_ok) {
    napi_throw_error(env, name, msg);
    return NULL;
  }
  napi_throw(env, error);
  return NULL;
}

static int set_number(napi_env env, napi_value obj, const char *key, double value) {
  napi_value v;
  if (napi_create_double(env, value, &v) != napi_ok) return -1;
  return napi_set_named_property(env, obj, key, v) == napi_ok ? 0 : -1;
}

/*
 * ficlone(srcFd, dstFd): ioctl(dstFd, FICLONE, srcFd) -- dst becomes a reflink
 * copy of the whole of src. srcFd must be open for reading, dstFd for writing
 * (not O_APPEND). Both must be on the same mount (EXDEV otherwise, even for two
 * bind mounts of one filesystem); EOPNOTSUPP when the filesystem cannot share
 * extents; EINVAL for unaligned sizes on some filesystems. Synchronous: the
 * kernel flushes src's dirty pages and walks its extent map before returning.
 */
static napi_value js_ficlone(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int src, dst, rc;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_int(env, argv[0], &src) || arg_int(env, argv[1], &dst)) {
    napi_throw_type_error(env, NULL, "ficlone(srcFd: number, dstFd: number)");
    return NULL;
  }
  do {
    rc = ioctl(dst, FICLONE, src);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_sys(env, "ioctl(FICLONE)", errno);
  return NULL;
}

/*
 * statfs(path) -> { type, bsize, frsize, blocks, bfree, bavail, files, ffree,
 * namelen, flags }. `type` is the magic number (OCFS2 0x7461636f, XFS
 * 0x58465342, btrfs 0x9123683e); `flags` are the mount flags (ST_RDONLY = 1).
 * Block counts are in frsize units (bsize when frsize is 0); numbers are doubles,
 * exact below 2^53.
 */
static napi_value js_statfs(napi_env env, napi_callback_info info) {
  size_t argc = 1, plen;
  napi_value argv[1], result;
  char path[4096];
  struct statfs st;
  int rc;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok) {
    napi_throw_type_error(env, NULL, "statfs(path: string)");
    return NULL;
  }
  if (plen >= sizeof path - 1) return throw_sys(env, "statfs", ENAMETOOLONG);
  do {
    rc = statfs(path, &st);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_sys(env, "statfs", errno);
  CHECK(env, napi_create_object(env, &result));
  if (set_number(env, result, "type", (double)(unsigned long)st.f_type) ||
      set_number(env, result, "bsize", (double)st.f_bsize) ||
      set_number(env, result, "frsize", (double)st.f_frsize) ||
      set_number(env, result, "blocks", (double)st.f_blocks) ||
      set_number(env, result, "bfree", (double)st.f_bfree) ||
      set_number(env, result, "bavail", (double)st.f_bavail) ||
      set_number(env, result, "files", (double)st.f_files) ||
      set_number(env, result, "ffree", (double)st.f_ffree) ||
      set_number(env, result, "namelen", (double)st.f_namelen) ||
      set_number(env, result, "flags", (double)st.f_flags)) {
    napi_throw_error(env, NULL, "statfs: could not build the result");
    return NULL;
  }
  return result;
}

/* fiemapCount(fd) -> number of extents (FIEMAP_FLAG_SYNC, count-only call). */
static napi_value js_fiemap_count(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int fd, rc;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "fiemapCount(fd: number)");
    return NULL;
  }
  struct fiemap fm;
  memset(&fm, 0, sizeof fm);
  fm.fm_start = 0;
  fm.fm_length = FIEMAP_MAX_OFFSET;
  fm.fm_flags = FIEMAP_FLAG_SYNC;
  fm.fm_extent_count = 0; /* count only */
  do {
    rc = ioctl(fd, FS_IOC_FIEMAP, &fm);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_sys(env, "ioctl(FS_IOC_FIEMAP)", errno);
  CHECK(env, napi_create_double(env, (double)fm.fm_mapped_extents, &result));
  return result;
}

#define FIEMAP_BATCH 512
/*
 * Walks the whole extent map of `fd` in batches (FIEMAP_FLAG_SYNC on the first, so
 * delayed allocations have their blocks), calling `visit` once per extent in file
 * order. Returns 0, or the errno of the ioctl, or what `visit` returned (nonzero
 * stops the walk). `*failed_call` names what failed, for the error message.
 */
typedef int (*fiemap_visit)(const struct fiemap_extent *fe, void *ctx);
static int fiemap_walk(int fd, fiemap_visit visit, void *ctx, const char **failed_call) {
  size_t size = sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent);
  struct fiemap *fm = malloc(size);
  if (!fm) {
    *failed_call = "malloc";
    return ENOMEM;
  }
  int err = 0;
  __u64 start = 0;
  __u32 flags = FIEMAP_FLAG_SYNC;
  for (;;) {
    int rc;
    memset(fm, 0, size);
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_flags = flags;
    fm->fm_extent_count = FIEMAP_BATCH;
    do {
      rc = ioctl(fd, FS_IOC_FIEMAP, fm);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      err = errno;
      *failed_call = "ioctl(FS_IOC_FIEMAP)";
      break;
    }
    flags = 0; /* flushed once is enough */
    if (fm->fm_mapped_extents == 0) break;
    bool last = false;
    for (__u32 i = 0; i < fm->fm_mapped_extents && !err; i++) {
      const struct fiemap_extent *fe = &fm->fm_extents[i];
      err = visit(fe, ctx);
      if (fe->fe_flags & FIEMAP_EXTENT_LAST) last = true;
    }
    if (err) {
      *failed_call = "malloc";
      break;
    }
    const struct fiemap_extent *tail = &fm->fm_extents[fm->fm_mapped_extents - 1];
    __u64 next = tail->fe_logical + tail->fe_length;
    if (last || next <= start) break;
    start = next;
  }
  free(fm);
  return err;
}

struct fiemap_totals {
  double extents, fragments, shared, bytes, shared_bytes;
  __u64 log_end, phys_end;
};

static int add_to_totals(const struct fiemap_extent *fe, void *ctx) {
  struct fiemap_totals *t = ctx;
  t->extents += 1;
  if (t->extents == 1 || fe->fe_logical != t->log_end || fe->fe_physical != t->phys_end) t->fragments += 1;
  t->log_end = fe->fe_logical + fe->fe_length;
  t->phys_end = fe->fe_physical + fe->fe_length;
  t->bytes += (double)fe->fe_length;
  if (fe->fe_flags & FIEMAP_EXTENT_SHARED) {
    t->shared += 1;
    t->shared_bytes += (double)fe->fe_length;
  }
  return 0;
}

/*
 * fiemapStats(fd) -> { extents, fragments, shared, bytes, sharedBytes }: walks
 * the whole extent map in batches. `extents` is what FIEMAP reports, `fragments`
 * merges neighbours that are contiguous both logically and physically (XFS
 * splits one physical extent wherever its shared/unshared state changes, so its
 * `extents` overstate fragmentation; `fragments` is the seek count). `shared`
 * counts extents flagged FIEMAP_EXTENT_SHARED (still shared with a reflink
 * copy); bytes are logical lengths of mapped extents.
 */
static napi_value js_fiemap_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "fiemapStats(fd: number)");
    return NULL;
  }
  struct fiemap_totals t = {0};
  const char *failed = NULL;
  int err = fiemap_walk(fd, add_to_totals, &t, &failed);
  if (err) return throw_sys(env, failed, err);
  CHECK(env, napi_create_object(env, &result));
  if (set_number(env, result, "extents", t.extents) || set_number(env, result, "fragments", t.fragments) ||
      set_number(env, result, "shared", t.shared) ||
      set_number(env, result, "bytes", t.bytes) || set_number(env, result, "sharedBytes", t.shared_bytes)) {
    napi_throw_error(env, NULL, "fiemapStats: could not build the result");
    return NULL;
  }
  return result;
}

/* ---- relayout: the extent map, clone and dedupe of byte ranges ----------- */

/* A non-negative integral double (byte offsets and lengths), exact below 2^53. */
static int arg_u64(napi_env env, napi_value v, __u64 *out) {
  double x;
  if (napi_get_value_double(env, v, &x) != napi_ok) return -1;
  if (!(x >= 0) || x > 9007199254740992.0 || x != (double)(__u64)x) return -1;
  *out = (__u64)x;
  return 0;
}

/* The extent map as [logical, physical, length, flags] quadruples, grown as needed. */
struct fiemap_list {
  double *out;
  size_t n, cap;
};

static int add_to_list(const struct fiemap_extent *fe, void *ctx) {
  struct fiemap_list *l = ctx;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 1024;
    double *grown = realloc(l->out, cap * 4 * sizeof(double));
    if (!grown) return ENOMEM;
    l->out = grown;
    l->cap = cap;
  }
  double *q = &l->out[l->n * 4];
  q[0] = (double)fe->fe_logical;
  q[1] = (double)fe->fe_physical;
  q[2] = (double)fe->fe_length;
  q[3] = (double)fe->fe_flags;
  l->n++;
  return 0;
}

/*
 * fiemapMap(fd) -> Float64Array [logical, physical, length, flags] * n: the whole
 * extent map (FIEMAP_FLAG_SYNC first, so delayed allocations have their blocks).
 * Physical addresses are what the filesystem reports (bytes on XFS, OCFS2 and
 * btrfs's logical address space); two files map the same block at the same
 * offset exactly when both numbers are equal.
 */
static napi_value js_fiemap_map(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], buffer, result;
  int fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "fiemapMap(fd: number)");
    return NULL;
  }
  struct fiemap_list l = {0};
  const char *failed = NULL;
  int err = fiemap_walk(fd, add_to_list, &l, &failed);
  if (err) {
    free(l.out);
    return throw_sys(env, failed, err);
  }
  void *data;
  if (napi_create_arraybuffer(env, l.n * 4 * sizeof(double), &data, &buffer) != napi_ok) {
    free(l.out);
    napi_throw_error(env, NULL, "fiemapMap: could not allocate the result");
    return NULL;
  }
  if (l.n > 0) memcpy(data, l.out, l.n * 4 * sizeof(double));
  free(l.out);
  CHECK(env, napi_create_typedarray(env, napi_float64_array, l.n * 4, buffer, 0, &result));
  return result;
}

/* Reads (srcFd, srcOffset, length, dstFd, dstOffset). */
static int range_args(napi_env env, napi_callback_info info, int *src, __u64 *src_off, __u64 *len, int *dst, __u64 *dst_off) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return -1;
  if (arg_int(env, argv[0], src) || arg_u64(env, argv[1], src_off) || arg_u64(env, argv[2], len) ||
      arg_int(env, argv[3], dst) || arg_u64(env, argv[4], dst_off))
    return -1;
  return 0;
}

/*
 * cloneRange(srcFd, srcOffset, length, dstFd, dstOffset): ioctl(FICLONERANGE) --
 * dst's range then shares src's blocks, whatever it held before (no comparison).
 * dstFd must be open for writing. Offsets and length block-aligned, except a
 * length reaching src's end of file.
 */
static napi_value js_clone_range(napi_env env, napi_callback_info info) {
  int src, dst, rc;
  __u64 src_off, len, dst_off;
  if (range_args(env, info, &src, &src_off, &len, &dst, &dst_off)) {
    napi_throw_type_error(env, NULL, "cloneRange(srcFd, srcOffset, length, dstFd, dstOffset)");
    return NULL;
  }
  struct file_clone_range r = {.src_fd = src, .src_offset = src_off, .src_length = len, .dest_offset = dst_off};
  do {
    rc = ioctl(dst, FICLONERANGE, &r);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_sys(env, "ioctl(FICLONERANGE)", errno);
  return NULL;
}

/*
 * dedupeRange(srcFd, srcOffset, length, dstFd, dstOffset) -> { same, bytes }:
 * ioctl(FIDEDUPERANGE) with one destination. The kernel compares both ranges
 * under its locks and shares src's blocks into dst only if they are equal
 * (same: true, bytes = how much it did, possibly less than asked); if they
 * differ nothing changes (same: false). Safe while dst is being written.
 */
static napi_value js_dedupe_range(napi_env env, napi_callback_info info) {
  int src, dst, rc;
  __u64 src_off, len, dst_off;
  napi_value result;
  if (range_args(env, info, &src, &src_off, &len, &dst, &dst_off)) {
    napi_throw_type_error(env, NULL, "dedupeRange(srcFd, srcOffset, length, dstFd, dstOffset)");
    return NULL;
  }
  struct {
    struct file_dedupe_range r;
    struct file_dedupe_range_info i;
  } arg;
  memset(&arg, 0, sizeof arg);
  arg.r.src_offset = src_off;
  arg.r.src_length = len;
  arg.r.dest_count = 1;
  arg.i.dest_fd = dst;
  arg.i.dest_offset = dst_off;
  do {
    rc = ioctl(src, FIDEDUPERANGE, &arg);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_sys(env, "ioctl(FIDEDUPERANGE)", errno);
  if (arg.i.status < 0) return throw_sys(env, "ioctl(FIDEDUPERANGE)", -arg.i.status);
  CHECK(env, napi_create_object(env, &result));
  napi_value same;
  CHECK(env, napi_get_boolean(env, arg.i.status == FILE_DEDUPE_RANGE_SAME, &same));
  CHECK(env, napi_set_named_property(env, result, "same", same));
  if (set_number(env, result, "bytes", (double)arg.i.bytes_deduped)) {
    napi_throw_error(env, NULL, "dedupeRange: could not build the result");
    return NULL;
  }
  return result;
}

/*
 * unshareRange(fd, offset, length): fallocate(FALLOC_FL_UNSHARE_RANGE |
 * FALLOC_FL_KEEP_SIZE). The kernel gives the range blocks of its own (copying
 * what is shared), and XFS then drops the file's reflink flag if no block of it
 * is shared any more: without that flag a write no longer looks its blocks up
 * in the refcount btree. fd must be open for writing. EOPNOTSUPP on
 * filesystems without it (btrfs, OCFS2).
 */
static napi_value js_unshare_range(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int fd, rc;
  __u64 off, len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || arg_int(env, argv[0], &fd) ||
      arg_u64(env, argv[1], &off) || arg_u64(env, argv[2], &len) || len == 0) {
    napi_throw_type_error(env, NULL, "unshareRange(fd, offset, length > 0)");
    return NULL;
  }
  do {
    rc = fallocate(fd, FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_sys(env, "fallocate(FALLOC_FL_UNSHARE_RANGE)", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"lock", NULL, js_lock, NULL, NULL, NULL, napi_default, NULL},
      {"unlock", NULL, js_unlock, NULL, NULL, NULL, napi_default, NULL},
      {"holder", NULL, js_holder, NULL, NULL, NULL, napi_default, NULL},
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_default, NULL},
      {"funlock", NULL, js_funlock, NULL, NULL, NULL, napi_default, NULL},
      {"syslog", NULL, js_syslog, NULL, NULL, NULL, napi_default, NULL},
      {"ficlone", NULL, js_ficlone, NULL, NULL, NULL, napi_default, NULL},
      {"statfs", NULL, js_statfs, NULL, NULL, NULL, napi_default, NULL},
      {"fiemapCount", NULL, js_fiemap_count, NULL, NULL, NULL, napi_default, NULL},
      {"fiemapStats", NULL, js_fiemap_stats, NULL, NULL, NULL, napi_default, NULL},
      {"fiemapMap", NULL, js_fiemap_map, NULL, NULL, NULL, napi_default, NULL},
      {"cloneRange", NULL, js_clone_range, NULL, NULL, NULL, napi_default, NULL},
      {"dedupeRange", NULL, js_dedupe_range, NULL, NULL, NULL, napi_default, NULL},
      {"unshareRange", NULL, js_unshare_range, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
