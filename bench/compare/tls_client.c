/*
 * A load client for the TLS and PROXY-protocol measurements (bench/compare/tls_proxy.ts), in C
 * with OpenSSL so that the client costs less than the server it measures (a JS client
 * saturates its core first). It shares no code with tallyho.
 *
 *   tls_client MODE PORT WORKERS SECONDS [tls|plain] [none|v1|v2] [NUMBERS_FILE]
 *
 * MODE handshake: each worker loops connect, (TLS 1.3 full handshake: no tickets, no session
 * cache), one request line, one reply, close. MODE closed: each worker keeps one connection and
 * sends the next line only after the reply to the last. With v1/v2 every connection first sends a
 * PROXY header (source 10.1.2.3). Every reply is checked to be `Hello World<digits>\n`; with
 * NUMBERS_FILE each N is written there (8 bytes each) so the caller can check none repeats.
 * WORKERS processes run on whatever cores the caller pins this to (taskset).
 *
 * Prints one JSON line: {"replies":R,"connections":C,"errors":E,"bad":B,"seconds":S}.
 *
 * Build: cc -O2 -o tls_client tls_client.c -lssl -lcrypto
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct counts {
  uint64_t replies, connections, errors, bad;
};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A PROXY header as a balancer sends it: TCP4 10.1.2.3:40000 -> 127.0.0.1:port. */
static int proxy_header(const char *kind, int port, unsigned char *out) {
  if (strcmp(kind, "v1") == 0) {
    return sprintf((char *)out, "PROXY TCP4 10.1.2.3 127.0.0.1 40000 %d\r\n", port);
  }
  if (strcmp(kind, "v2") == 0) {
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(out, sig, 12);
    out[12] = 0x21; /* v2, PROXY */
    out[13] = 0x11; /* TCP over IPv4 */
    out[14] = 0;
    out[15] = 12;
    unsigned char addrs[12] = {10, 1, 2, 3, 127, 0, 0, 1, 40000 >> 8, 40000 & 255,
                               (unsigned char)(port >> 8), (unsigned char)(port & 255)};
    memcpy(out + 16, addrs, 12);
    return 28;
  }
  return 0;
}

/* One side of a connection, TLS or plain. */
struct conn {
  int fd;
  SSL *ssl;
};

static int conn_write(struct conn *c, const void *b, int n) {
  return c->ssl ? SSL_write(c->ssl, b, n) : (int)write(c->fd, b, n);
}

static int conn_read(struct conn *c, void *b, int n) {
  return c->ssl ? SSL_read(c->ssl, b, n) : (int)read(c->fd, b, n);
}

static int conn_open(struct conn *c, SSL_CTX *ctx, int port, const char *proxy) {
  c->ssl = NULL;
  c->fd = tcp_connect(port);
  if (c->fd < 0) return -1;
  unsigned char header[128];
  int h = proxy_header(proxy, port, header);
  if (h > 0 && write(c->fd, header, h) != h) return -1;
  if (ctx == NULL) return 0;
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_tlsext_host_name(c->ssl, "localhost");
  return SSL_connect(c->ssl) == 1 ? 0 : -1;
}

static void conn_close(struct conn *c) {
  if (c->ssl) {
    SSL_shutdown(c->ssl); /* close_notify, as a polite client sends it */
    SSL_free(c->ssl);
  }
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->ssl = NULL;
}

/* Sends one line and reads one reply; 1 when it is `Hello World<digits>\n`, 0 when not, -1 on
 * an error. The number goes to *number. */
static int ask(struct conn *c, uint64_t *number) {
  static const char greeting[] = "Hello World";
  if (conn_write(c, "hi\n", 3) != 3) return -1;
  char buf[128];
  int have = 0;
  while (have == 0 || buf[have - 1] != '\n') {
    int n = conn_read(c, buf + have, (int)sizeof buf - 1 - have);
    if (n <= 0) return -1;
    have += n;
    if (have >= (int)sizeof buf - 1) return 0;
  }
  buf[have] = 0;
  if (strncmp(buf, greeting, 11) != 0) return 0;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(buf + 11, &end, 10);
  if (end == buf + 11 || *end != '\n' || end[1] != 0 || errno != 0) return 0;
  *number = v;
  return 1;
}

static void worker(const char *mode, int port, double seconds, SSL_CTX *ctx, const char *proxy,
                   FILE *numbers, struct counts *out) {
  double deadline = now_s() + seconds;
  struct conn c = {-1, NULL};
  int closed_loop = strcmp(mode, "closed") == 0;
  while (now_s() < deadline) {
    if (c.fd < 0) {
      if (conn_open(&c, ctx, port, proxy) != 0) {
        out->errors++;
        conn_close(&c);
        continue;
      }
      out->connections++;
    }
    uint64_t number = 0;
    int r = ask(&c, &number);
    if (r == 1) {
      out->replies++;
      if (numbers) fwrite(&number, sizeof number, 1, numbers);
    } else if (r == 0) {
      out->bad++;
    } else {
      out->errors++;
    }
    if (!closed_loop || r != 1) conn_close(&c);
  }
  conn_close(&c);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: tls_client handshake|closed PORT WORKERS SECONDS [tls|plain] [none|v1|v2] "
            "[NUMBERS_FILE]\n");
    return 2;
  }
  const char *mode = argv[1];
  int port = atoi(argv[2]);
  int workers = atoi(argv[3]);
  double seconds = atof(argv[4]);
  int tls = argc <= 5 || strcmp(argv[5], "tls") == 0;
  const char *proxy = argc > 6 ? argv[6] : "none";
  const char *numbers_path = argc > 7 ? argv[7] : NULL;
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX *ctx = NULL;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    /* Every connection a full handshake: no session resumption. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  int fds[2];
  if (pipe(fds) != 0) return 1;
  double started = now_s();
  for (int w = 0; w < workers; w++) {
    if (fork() == 0) {
      close(fds[0]);
      FILE *numbers = NULL;
      if (numbers_path) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", numbers_path, w);
        numbers = fopen(path, "wb");
      }
      struct counts c = {0, 0, 0, 0};
      worker(mode, port, seconds, ctx, proxy, numbers, &c);
      if (numbers) fclose(numbers);
      if (write(fds[1], &c, sizeof c) != sizeof c) _exit(1);
      _exit(0);
    }
  }
  close(fds[1]);
  struct counts total = {0, 0, 0, 0}, c;
  while (read(fds[0], &c, sizeof c) == sizeof c) {
    total.replies += c.replies;
    total.connections += c.connections;
    total.errors += c.errors;
    total.bad += c.bad;
  }
  while (wait(NULL) > 0) {
  }
  printf("{\"replies\":%llu,\"connections\":%llu,\"errors\":%llu,\"bad\":%llu,\"seconds\":%.3f}\n",
         (unsigned long long)total.replies, (unsigned long long)total.connections,
         (unsigned long long)total.errors, (unsigned long long)total.bad, now_s() - started);
  return 0;
}
