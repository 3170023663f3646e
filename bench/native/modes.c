// Loopback TCP, one sender thread with io_uring, one receiver process: how much sender CPU
// per GB each way of sending costs, without HTTP or Node in the way.
//   cc -O2 -o modes modes.c -luring && ./modes send|zc|zcfixed SLICE_KIB DEPTH GIB
// Requests of one connection are linked (IOSQE_IO_LINK + MSG_WAITALL), as the addon does.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 5) return fprintf(stderr, "usage: modes send|zc|zcfixed SLICE_KIB DEPTH GIB\n"), 2;
  const char* mode = argv[1];
  size_t slice = (size_t)atoi(argv[2]) << 10;
  unsigned depth = (unsigned)atoi(argv[3]);
  size_t total = (size_t)atoi(argv[4]) << 30;
  size_t bufLen = 4u << 20;
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
    size_t got = 0;
    ssize_t n;
    while ((n = read(c, rb, 1 << 20)) > 0) got += n;
    _exit(got == total ? 0 : 1);
  }
  int s = accept(lfd, NULL, NULL);
  char* buf = aligned_alloc(4096, bufLen);
  memset(buf, 7, bufLen);
  struct io_uring ring;
  struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = 4096};
  if (io_uring_queue_init_params(256, &ring, &p) < 0) return perror("ring"), 1;
  int fixed = strcmp(mode, "zcfixed") == 0, zc = strncmp(mode, "zc", 2) == 0;
  if (fixed) {
    struct iovec iov = {buf, bufLen};
    if (io_uring_register_buffers(&ring, &iov, 1) < 0) return perror("register"), 1;
  }
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  double t0 = now();
  size_t sent = 0, off = 0;
  unsigned long notifs = 0, owed = 0;
  while (sent < total || owed > 0) {
    unsigned n = 0;
    for (; n < depth && sent + n * slice < total; n++) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      size_t o = (off + n * slice) % bufLen;
      size_t len = slice;
      if (o + len > bufLen) len = bufLen - o;
      if (fixed) io_uring_prep_send_zc_fixed(sqe, s, buf + o, len, MSG_WAITALL, 0, 0);
      else if (zc) io_uring_prep_send_zc(sqe, s, buf + o, len, MSG_WAITALL, 0);
      else io_uring_prep_send(sqe, s, buf + o, len, MSG_WAITALL);
      if (n + 1 < depth) sqe->flags |= IOSQE_IO_LINK;
      owed++;
    }
    if (n) io_uring_sqe_set_flags(ring.sq.sqes + ((ring.sq.sqe_tail - 1) & *ring.sq.kring_mask), 0);
    io_uring_submit(&ring);
    unsigned results = 0;
    while (results < n || (n == 0 && owed > 0)) {
      struct io_uring_cqe* cqe;
      io_uring_wait_cqe(&ring, &cqe);
      if (cqe->flags & IORING_CQE_F_NOTIF) {
        notifs++;
        owed--;
      } else {
        if (cqe->res < 0) return fprintf(stderr, "send: %s\n", strerror(-cqe->res)), 1;
        sent += cqe->res;
        off += cqe->res;
        results++;
        if (!(cqe->flags & IORING_CQE_F_MORE)) owed--;
      }
      io_uring_cqe_seen(&ring, cqe);
      if (n == 0) break;
    }
  }
  double t = now() - t0;
  getrusage(RUSAGE_SELF, &r1);
  shutdown(s, SHUT_WR);
  int status;
  waitpid(pid, &status, 0);
  double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
               (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
  printf("%-8s slice=%zuK depth=%u  %.2f GB/s  sender CPU %.3f s/GB  notifs=%lu  receiver %s\n", mode, slice >> 10, depth,
         total / t / 1e9, cpu / (total / 1e9), notifs, WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "exact count" : "WRONG");
  return 0;
}
