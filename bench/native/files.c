// Loopback TCP, one sender, one receiver process: the ways a server can send a cached file,
// without HTTP or Node in the way. Sender CPU (process utime + stime, io_uring workers
// included) per GB, and GB/s.
//   cc -O2 -o files files.c -luring && ./files sendfile|splice|read FILE REPEAT [CHUNK_KIB [PAIRS]]
// sendfile: sendfile(2) on a non-blocking socket, poll(2) when it is full (what nginx does).
// splice:   what the addon does: linked io_uring rounds of PAIRS x (SPLICE file -> pipe of
//           CHUNK, SPLICE pipe -> socket), POLL_ADD first when the last round found the
//           socket full.
// read:     pread(2) into a CHUNK buffer, then send(2) it: one copy on the sending side (the
//           cost a read-into-registered-buffers design starts from, before any SEND_ZC).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void wait_writable(int s) {
  struct pollfd p = {.fd = s, .events = POLLOUT};
  poll(&p, 1, -1);
}

static void send_sendfile(int s, int f, size_t len) {
  off_t off = 0;
  while ((size_t)off < len) {
    ssize_t n = sendfile(s, f, &off, len - (size_t)off);
    if (n < 0 && errno == EAGAIN) wait_writable(s);
    else if (n < 0) perror("sendfile"), exit(1);
  }
}

static void send_read(int s, int f, size_t len, size_t chunk) {
  static char* buf;
  if (buf == NULL) buf = malloc(chunk);
  for (size_t off = 0; off < len;) {
    ssize_t n = pread(f, buf, chunk, (off_t)off);
    if (n <= 0) perror("pread"), exit(1);
    for (ssize_t w = 0; w < n;) {
      ssize_t k = send(s, buf + w, (size_t)(n - w), 0);
      if (k < 0 && errno == EAGAIN) wait_writable(s);
      else if (k < 0) perror("send"), exit(1);
      else w += k;
    }
    off += (size_t)n;
  }
}

enum { FILL = 1, DRAIN = 2, POLL = 3 };

static void send_splice(struct io_uring* ring, int s, int f, size_t len, int pr, int pw, size_t pipe, unsigned pairs) {
  size_t filled = 0, sent = 0;
  int full = 0;
  while (sent < len) {
    unsigned n = 0;
    struct io_uring_sqe* q = NULL;
    if (full) {
      q = io_uring_get_sqe(ring);
      io_uring_prep_poll_add(q, s, POLLOUT);
      io_uring_sqe_set_data64(q, POLL);
      q->flags |= IOSQE_IO_LINK;
      n++;
    }
    if (filled > sent) {
      q = io_uring_get_sqe(ring);
      io_uring_prep_splice(q, pr, -1, s, -1, (unsigned)(filled - sent), SPLICE_F_NONBLOCK);
      io_uring_sqe_set_data64(q, DRAIN);
      q->flags |= IOSQE_IO_LINK;
      n++;
    }
    for (size_t planned = filled, k = 0; k < pairs && planned < len; k++) {
      size_t want = len - planned < pipe ? len - planned : pipe;
      q = io_uring_get_sqe(ring);
      io_uring_prep_splice(q, f, (int64_t)planned, pw, -1, (unsigned)want, SPLICE_F_NONBLOCK);
      io_uring_sqe_set_data64(q, FILL);
      q->flags |= IOSQE_IO_LINK;
      q = io_uring_get_sqe(ring);
      io_uring_prep_splice(q, pr, -1, s, -1, (unsigned)want, SPLICE_F_NONBLOCK | SPLICE_F_MORE);
      io_uring_sqe_set_data64(q, DRAIN);
      q->flags |= IOSQE_IO_LINK;
      n += 2;
      planned += want;
    }
    q->flags &= ~IOSQE_IO_LINK;
    io_uring_submit_and_wait(ring, n);
    full = 0;
    for (unsigned i = 0; i < n; i++) {
      struct io_uring_cqe* c;
      io_uring_wait_cqe(ring, &c);
      int res = c->res;
      unsigned kind = (unsigned)io_uring_cqe_get_data64(c);
      io_uring_cqe_seen(ring, c);
      if (res == -ECANCELED) continue;
      if (kind == FILL && res > 0) filled += (size_t)res;
      if (kind == DRAIN && res > 0) sent += (size_t)res;
      if (kind == DRAIN && (res == -EAGAIN || (res >= 0 && filled > sent))) full = 1;
      if (res < 0 && res != -EAGAIN && kind != POLL) fprintf(stderr, "splice: %s\n", strerror(-res)), exit(1);
    }
  }
}

int main(int argc, char** argv) {
  if (argc < 4) return fprintf(stderr, "usage: files sendfile|splice|read FILE REPEAT [CHUNK_KIB [PAIRS]]\n"), 2;
  const char* mode = argv[1];
  int f = open(argv[2], O_RDONLY);
  if (f < 0) return perror(argv[2]), 1;
  struct stat st;
  fstat(f, &st);
  size_t len = (size_t)st.st_size;
  int repeat = atoi(argv[3]);
  size_t chunk = (argc > 4 ? (size_t)atoi(argv[4]) : 1024) << 10;
  unsigned pairs = argc > 5 ? (unsigned)atoi(argv[5]) : 4;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  bind(lfd, (struct sockaddr*)&a, sizeof a);
  listen(lfd, 1);
  getsockname(lfd, (struct sockaddr*)&a, &al);
  pid_t pid = fork();
  if (pid == 0) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr*)&a, sizeof a);
    char* rb = malloc(1 << 20);
    while (read(c, rb, 1 << 20) > 0) {
    }
    _exit(0);
  }
  int s = accept(lfd, NULL, NULL);
  fcntl(s, F_SETFL, O_NONBLOCK);  // as Node's sockets are
  struct io_uring ring;
  io_uring_queue_init(64, &ring, 0);
  int p[2];
  pipe2(p, O_CLOEXEC | O_NONBLOCK);
  fcntl(p[1], F_SETPIPE_SZ, (int)chunk);
  size_t pipe = (size_t)fcntl(p[1], F_GETPIPE_SZ);
  double t0 = now(), c0 = cpu();
  for (int r = 0; r < repeat; r++) {
    if (!strcmp(mode, "sendfile")) send_sendfile(s, f, len);
    else if (!strcmp(mode, "read")) send_read(s, f, len, chunk);
    else send_splice(&ring, s, f, len, p[0], p[1], pipe, pairs);
  }
  shutdown(s, SHUT_WR);
  waitpid(pid, NULL, 0);
  double t = now() - t0, c = cpu() - c0;
  double gb = (double)len * repeat / 1e9;
  printf("%-8s chunk %4zu KiB pairs %u: %.2f GB/s, sender %.3f CPU s/GB\n", mode, pipe >> 10, pairs, gb / t, c / gb);
  return 0;
}
