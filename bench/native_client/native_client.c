/*
 * The comparison's native client: drives one server with the workloads of `tallyho load`
 * (closed loop, pipelined, connect per request) from one thread with epoll, checks every reply,
 * and prints one JSON report in the shape of `tallyho load --json` (the fields bench/compare
 * reads). It exists because the JavaScript generator's core was 96-100 % busy in the closed-loop
 * and connect runs, so those figures measured the client; this one needs a fraction of a core
 * for the same rates, so the server sets the pace.
 *
 * It shares no code with the server: it parses `Hello World<N>` itself and records every N in
 * a paged bitmap. A connection whose N stays the same is numbered by connection (gevent,
 * nginx's `$connection`); every change of N, and the first, must be a number never seen before
 * on any connection, and a connection's N must never fall. Lines that do not start with the
 * greeting (Redis's `+PONG`) are counted as other and not checked.
 *
 *   cc -O2 -o native_client native_client.c
 *   native_client --port P [--host 127.0.0.1] --workload closed|pipelined|connect
 *                 [--connections N] [--depth D] [--duration-ms MS] [--message 'PING\r\n']
 *                 [--sources N: spread connects over 127.0.0.2 and the N-1 addresses after it]
 *
 * Exit 0 when every reply checked out and some came, 3 on a failed check, 1 with no replies,
 * 2 on a usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GREETING "Hello World"
#define GREETING_LEN 11
#define MAX_DEPTH 1024
#define READ_BYTES 65536

enum workload { CLOSED, PIPELINED, CONNECT };

/* ---- time ---- */

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram: log-linear buckets, 32 per power of two (under 3.2 % error) ---- */

#define SUB_BITS 5
#define SUB (1 << SUB_BITS)
#define BUCKETS (64 * SUB)
static uint64_t histogram[BUCKETS];
static uint64_t samples;

static inline int bucket_of(uint64_t ns) {
  if (ns < SUB) return (int)ns;
  int msb = 63 - __builtin_clzll(ns);
  int shift = msb - SUB_BITS;
  return (shift + 1) * SUB + (int)((ns >> shift) & (SUB - 1));
}

static double bucket_value(int bucket) {
  if (bucket < SUB) return bucket;
  int shift = bucket / SUB - 1;
  uint64_t low = ((uint64_t)(SUB + bucket % SUB)) << shift;
  return (double)low + (double)((1ull << shift) - 1) / 2.0;
}

static inline void record_latency(uint64_t ns) {
  histogram[bucket_of(ns)]++;
  samples++;
}

static double percentile_us(double p) {
  if (samples == 0) return 0;
  uint64_t rank = (uint64_t)(p * (double)samples);
  if (rank >= samples) rank = samples - 1;
  uint64_t seen = 0;
  for (int b = 0; b < BUCKETS; b++) {
    seen += histogram[b];
    if (seen > rank) return bucket_value(b) / 1000.0;
  }
  return 0;
}

/* ---- seen numbers: a bitmap in 64 KiB pages, found by a hash of the page index ---- */

#define PAGE_BITS 19 /* 512 Ki numbers per page */
#define PAGE_WORDS ((1u << PAGE_BITS) / 64)

struct page {
  uint64_t key;
  uint64_t *bits;
};
static struct page *pages;
static size_t page_slots;
static size_t page_count;
static struct page *last_page;

static struct page *page_for(uint64_t key, int create) {
  if (last_page != NULL && last_page->key == key) return last_page;
  if (page_slots == 0 || (create && page_count * 2 >= page_slots)) {
    size_t slots = page_slots == 0 ? 64 : page_slots * 2;
    struct page *grown = calloc(slots, sizeof *grown);
    if (grown == NULL) return NULL;
    for (size_t i = 0; i < page_slots; i++) {
      if (pages[i].bits == NULL) continue;
      size_t at = (size_t)(pages[i].key * 0x9E3779B97F4A7C15ull) & (slots - 1);
      while (grown[at].bits != NULL) at = (at + 1) & (slots - 1);
      grown[at] = pages[i];
    }
    free(pages);
    pages = grown;
    page_slots = slots;
    last_page = NULL;
  }
  size_t at = (size_t)(key * 0x9E3779B97F4A7C15ull) & (page_slots - 1);
  while (pages[at].bits != NULL) {
    if (pages[at].key == key) return last_page = &pages[at];
    at = (at + 1) & (page_slots - 1);
  }
  if (!create) return NULL;
  uint64_t *bits = calloc(PAGE_WORDS, sizeof *bits);
  if (bits == NULL) return NULL;
  pages[at].key = key;
  pages[at].bits = bits;
  page_count++;
  return last_page = &pages[at];
}

/* Returns 1 when n was seen before, 0 when it is new (and records it), -1 out of memory. */
static inline int seen_before(uint64_t n) {
  struct page *page = page_for(n >> PAGE_BITS, 1);
  if (page == NULL) return -1;
  uint64_t index = n & ((1u << PAGE_BITS) - 1);
  uint64_t mask = 1ull << (index & 63);
  uint64_t *word = &page->bits[index >> 6];
  if (*word & mask) return 1;
  *word |= mask;
  return 0;
}

/* ---- check figures ---- */

static uint64_t numbered, other_lines, malformed, repeats, decreasing, untracked, distinct;
#define REPEAT_EXAMPLES 10
static uint64_t repeat_examples[REPEAT_EXAMPLES];
static int repeat_example_count;

/* ---- connections ---- */

struct conn {
  int fd;
  int open;       /* connected */
  int connecting; /* connect in progress */
  int in_flight;
  int stamp_head;
  uint64_t stamps[MAX_DEPTH];
  uint64_t connect_started;
  /* where the reply line being read stands */
  int line_pos;   /* bytes of the line so far */
  int line_state; /* 0 greeting so far, 1 digits, 2 other, 3 malformed */
  int digits;
  uint64_t value;
  uint64_t last_number;
};

static enum workload workload = CLOSED;
static const char *host = "127.0.0.1";
static int port = 0;
static int connections = 100;
static int depth = 1;
static uint64_t duration_ns = 3000000000ull;
static char message[256] = "PING\r\n";
static size_t message_len = 6;
static char *batch;
static size_t batch_len;

static int epfd;
static struct conn *conns;
static struct sockaddr_in target;
/* Source addresses to spread connects over (0: let the kernel pick), from 127.0.0.2 up. */
static int sources = 0;
static int next_source = 0;
static uint64_t requests, replies, connects, completed, errors_total;
static uint64_t started_ns, last_reply_ns;
static int stopping;
/* Some slot lost its connection to an error and waits to connect again. */
static int slots_closed;

#define ERROR_KINDS 8
static const char *error_names[ERROR_KINDS] = {"ECONNREFUSED", "ECONNRESET",   "EPIPE",
                                               "closed",       "EADDRNOTAVAIL", "ETIMEDOUT",
                                               "EMFILE",       "other"};
static uint64_t error_counts[ERROR_KINDS];

static void count_error(int err) {
  int kind;
  switch (err) {
    case ECONNREFUSED: kind = 0; break;
    case ECONNRESET: kind = 1; break;
    case EPIPE: kind = 2; break;
    case 0: kind = 3; break; /* the server closed with requests in flight */
    case EADDRNOTAVAIL: kind = 4; break;
    case ETIMEDOUT: kind = 5; break;
    case EMFILE: case ENFILE: kind = 6; break;
    default: kind = 7;
  }
  error_counts[kind]++;
  errors_total++;
}

static void observe(struct conn *c, uint64_t n) {
  numbered++;
  if (c->last_number != 0 && n == c->last_number) return; /* numbered by connection */
  if (n < c->last_number) decreasing++;
  c->last_number = n;
  int before = seen_before(n);
  if (before < 0) {
    untracked++;
  } else if (before) {
    repeats++;
    if (repeat_example_count < REPEAT_EXAMPLES) repeat_examples[repeat_example_count++] = n;
  } else {
    distinct++;
  }
}

static void end_line(struct conn *c) {
  if (c->line_state == 1 && c->digits > 0) observe(c, c->value);
  else if (c->line_state == 2) other_lines++;
  else malformed++;
  c->line_pos = 0;
  c->line_state = 0;
  c->digits = 0;
  c->value = 0;
}

/* Parses replies; returns the number of complete lines. */
static int parse(struct conn *c, const char *bytes, ssize_t length) {
  int lines = 0;
  for (ssize_t i = 0; i < length; i++) {
    char b = bytes[i];
    if (b == '\n') {
      end_line(c);
      lines++;
      continue;
    }
    switch (c->line_state) {
      case 0:
        if (b == GREETING[c->line_pos]) {
          if (++c->line_pos == GREETING_LEN) c->line_state = 1;
        } else {
          c->line_state = 2;
        }
        break;
      case 1:
        if (b >= '0' && b <= '9' && c->digits < 16) {
          c->value = c->value * 10 + (uint64_t)(b - '0');
          c->digits++;
        } else if (b == '\r' && c->digits > 0) {
          /* a CRLF line end */
        } else {
          c->line_state = 3;
        }
        break;
      default:
        break;
    }
  }
  return lines;
}

static int nonblocking_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return -1;
  /* A connect-per-request connection writes once, and Nagle never holds a first segment back:
   * the call is left out there, as each syscall is a share of what a connect costs the client. */
  if (workload != CONNECT) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

static void reset_line(struct conn *c) {
  c->line_pos = 0;
  c->line_state = 0;
  c->digits = 0;
  c->value = 0;
  c->last_number = 0;
  c->in_flight = 0;
  c->stamp_head = 0;
}

static int open_conn(struct conn *c) {
  reset_line(c);
  c->fd = nonblocking_socket();
  if (c->fd < 0) {
    count_error(errno);
    slots_closed = 1;
    return -1;
  }
  if (sources > 0) {
    /* Each source address has its own ephemeral ports: spread over several, a connect finds a
     * free port at once instead of walking thousands still in TIME_WAIT (which cost this
     * client over 40 % of its core at 14,000 connects/s from one address). */
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in source = {.sin_family = AF_INET, .sin_port = 0};
    source.sin_addr.s_addr = htonl(0x7F000002u + (uint32_t)next_source);
    next_source = (next_source + 1) % sources;
    if (bind(c->fd, (struct sockaddr *)&source, sizeof source) < 0) {
      count_error(errno);
      close(c->fd);
      c->fd = -1;
      slots_closed = 1;
      return -1;
    }
  }
  c->connect_started = now_ns();
  c->connecting = 1;
  c->open = 0;
  if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
    count_error(errno);
    close(c->fd);
    c->fd = -1;
    c->connecting = 0;
    slots_closed = 1;
    return -1;
  }
  /* Edge-triggered: the connect's EPOLLOUT comes once, so the socket needs no EPOLL_CTL_MOD
   * after it (reads go on until a short read, which leaves the socket's queue empty). */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  return 0;
}

static void close_conn(struct conn *c) {
  slots_closed = 1;
  if (c->fd >= 0) {
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
  }
  c->open = 0;
  c->connecting = 0;
}

static void send_requests(struct conn *c) {
  const char *bytes = depth > 1 ? batch : message;
  size_t length = depth > 1 ? batch_len : message_len;
  uint64_t t = now_ns();
  ssize_t sent = send(c->fd, bytes, length, MSG_NOSIGNAL);
  if (sent != (ssize_t)length) {
    /* Requests are small and the socket buffer holds them; a short write is an error here. */
    count_error(sent < 0 ? errno : EPIPE);
    close_conn(c);
    return;
  }
  for (int i = 0; i < depth; i++) c->stamps[(c->stamp_head + c->in_flight + i) % MAX_DEPTH] = t;
  c->in_flight += depth;
  requests += (uint64_t)depth;
}

static void on_connected(struct conn *c, uint32_t events) {
  if (events & EPOLLERR) {
    /* Only a connect that may have failed needs its error read. */
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      count_error(err);
      close_conn(c);
      return;
    }
  }
  c->connecting = 0;
  c->open = 1;
  connects++;
  send_requests(c);
}

static char read_buffer[READ_BYTES];

static void on_readable(struct conn *c) {
  for (;;) {
    ssize_t got = recv(c->fd, read_buffer, READ_BYTES, 0);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      count_error(errno);
      close_conn(c);
      return;
    }
    if (got == 0) {
      if (c->in_flight > 0 && !stopping) count_error(0);
      close_conn(c);
      return;
    }
    int lines = parse(c, read_buffer, got);
    if (lines == 0) {
      if (got < READ_BYTES) return;
      continue;
    }
    uint64_t t = now_ns();
    last_reply_ns = t;
    for (int i = 0; i < lines && c->in_flight > 0; i++) {
      uint64_t sent = workload == CONNECT ? c->connect_started : c->stamps[c->stamp_head];
      record_latency(t - sent);
      c->stamp_head = (c->stamp_head + 1) % MAX_DEPTH;
      c->in_flight--;
    }
    replies += (uint64_t)lines;
    if (c->in_flight == 0) {
      if (workload == CONNECT) {
        completed++;
        close_conn(c);
        if (!stopping) open_conn(c);
        return;
      }
      if (!stopping) send_requests(c);
      if (c->fd < 0) return;
    }
    if (got < READ_BYTES) return;
  }
}

static int usage(const char *why) {
  fprintf(stderr,
          "native_client: %s\nusage: native_client --port P [--host 127.0.0.1] "
          "--workload closed|pipelined|connect [--connections N] [--depth D] "
          "[--duration-ms MS] [--message TEXT (\\r \\n allowed)] [--sources N (127.0.0.2 up)]\n",
          why);
  return 2;
}

static size_t unescape(const char *text, char *out, size_t room) {
  size_t n = 0;
  for (const char *p = text; *p != '\0' && n < room; p++) {
    if (p[0] == '\\' && p[1] == 'r') { out[n++] = '\r'; p++; }
    else if (p[0] == '\\' && p[1] == 'n') { out[n++] = '\n'; p++; }
    else out[n++] = *p;
  }
  return n;
}

static const char *workload_name(void) {
  return workload == CLOSED ? "closed" : workload == PIPELINED ? "pipelined" : "connect";
}

static void print_json_string(const char *text, size_t length) {
  putchar('"');
  for (size_t i = 0; i < length; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch == '\r') printf("\\r");
    else if (ch == '\n') printf("\\n");
    else if (ch < 0x20) printf("\\u%04x", ch);
    else putchar(ch);
  }
  putchar('"');
}

static void report(uint64_t elapsed_ns, uint64_t unanswered, int ok, const char *failure) {
  double seconds = (double)elapsed_ns / 1e9;
  printf("{\"tool\":\"tallyho native client\",\"version\":\"1\",\"runtime\":\"c\",");
  printf("\"transport\":\"epoll\",\"target\":{\"host\":\"%s\",\"port\":%d,\"source\":null},", host,
         port);
  printf("\"workload\":\"%s\",\"connections\":%d,\"depth\":%d,\"threads\":1,\"message\":",
         workload_name(), connections, depth);
  print_json_string(message, message_len);
  printf(",\"count\":null,\"durationMs\":%.0f,\"elapsedMs\":%.3f,", (double)duration_ns / 1e6,
         (double)elapsed_ns / 1e6);
  printf("\"requests\":%llu,\"replies\":%llu,\"connects\":%llu,\"completed\":%llu,",
         (unsigned long long)requests, (unsigned long long)replies,
         (unsigned long long)connects, (unsigned long long)completed);
  printf("\"unanswered\":%llu,", (unsigned long long)unanswered);
  printf("\"repliesPerSecond\":%.0f,\"connectionsPerSecond\":%.0f,",
         seconds > 0 ? (double)replies / seconds : 0,
         seconds > 0 ? (double)connects / seconds : 0);
  printf("\"latencyUs\":{\"samples\":%llu,\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,"
         "\"relativeErrorBound\":%.4f},",
         (unsigned long long)samples, percentile_us(0.5), percentile_us(0.9),
         percentile_us(0.99), percentile_us(0.999), 1.0 / SUB);
  printf("\"errors\":{");
  int first = 1;
  for (int k = 0; k < ERROR_KINDS; k++) {
    if (error_counts[k] == 0) continue;
    printf("%s\"%s\":%llu", first ? "" : ",", error_names[k], (unsigned long long)error_counts[k]);
    first = 0;
  }
  printf("},\"errorsTotal\":%llu,", (unsigned long long)errors_total);
  printf("\"check\":{\"numbered\":%llu,\"other\":%llu,\"malformed\":%llu,\"repeats\":%llu,"
         "\"decreasing\":%llu,\"mixed\":0,\"untracked\":%llu,\"distinctNumbers\":%llu,"
         "\"repeatExamples\":[",
         (unsigned long long)numbered, (unsigned long long)other_lines,
         (unsigned long long)malformed, (unsigned long long)repeats,
         (unsigned long long)decreasing, (unsigned long long)untracked,
         (unsigned long long)distinct);
  for (int i = 0; i < repeat_example_count; i++) {
    printf("%s%llu", i == 0 ? "" : ",", (unsigned long long)repeat_examples[i]);
  }
  printf("],\"ok\":%s},", repeats == 0 && malformed == 0 && decreasing == 0 ? "true" : "false");
  printf("\"ok\":%s,\"failure\":", ok ? "true" : "false");
  if (failure == NULL) printf("null");
  else print_json_string(failure, strlen(failure));
  printf("}\n");
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (value == NULL) return usage("every flag takes a value");
    i++;
    if (strcmp(flag, "--host") == 0) host = value;
    else if (strcmp(flag, "--port") == 0) port = atoi(value);
    else if (strcmp(flag, "--connections") == 0) connections = atoi(value);
    else if (strcmp(flag, "--depth") == 0) depth = atoi(value);
    else if (strcmp(flag, "--sources") == 0) sources = atoi(value);
    else if (strcmp(flag, "--duration-ms") == 0) duration_ns = (uint64_t)atoll(value) * 1000000ull;
    else if (strcmp(flag, "--message") == 0) {
      message_len = unescape(value, message, sizeof message);
    } else if (strcmp(flag, "--workload") == 0) {
      if (strcmp(value, "closed") == 0) workload = CLOSED;
      else if (strcmp(value, "pipelined") == 0) workload = PIPELINED;
      else if (strcmp(value, "connect") == 0) workload = CONNECT;
      else return usage("--workload must be closed, pipelined or connect");
    } else {
      return usage("unknown flag");
    }
  }
  if (port <= 0 || port > 65535) return usage("--port must be 1-65535");
  if (sources < 0 || sources > 250) return usage("--sources must be 0-250");
  if (connections <= 0 || connections > 100000) return usage("--connections must be 1-100000");
  if (workload != PIPELINED) depth = 1;
  if (depth <= 0 || depth > MAX_DEPTH) return usage("--depth must be 1-1024");
  if (message_len == 0 || message[message_len - 1] != '\n') {
    return usage("--message must end with a newline (\\n)");
  }
  batch_len = message_len * (size_t)depth;
  batch = malloc(batch_len);
  for (int i = 0; i < depth; i++) memcpy(batch + (size_t)i * message_len, message, message_len);
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &target.sin_addr) != 1) return usage("--host must be an IPv4 address");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  epfd = epoll_create1(EPOLL_CLOEXEC);
  conns = calloc((size_t)connections, sizeof *conns);
  started_ns = now_ns();
  last_reply_ns = started_ns;
  for (int i = 0; i < connections; i++) {
    conns[i].fd = -1;
    open_conn(&conns[i]);
  }
  struct epoll_event events[512];
  uint64_t deadline = started_ns + duration_ns;
  uint64_t drain_until = 0;
  uint64_t next_reopen = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (!stopping && t >= deadline) stopping = 1;
    if (stopping) {
      if (drain_until == 0) drain_until = t + 200000000ull; /* 200 ms for replies in flight */
      int pending = 0;
      for (int i = 0; i < connections; i++) pending += conns[i].in_flight;
      if (pending == 0 || t >= drain_until) break;
    }
    int n = epoll_wait(epfd, events, 512, 10);
    if (n < 0 && errno != EINTR) break;
    for (int e = 0; e < n; e++) {
      struct conn *c = events[e].data.ptr;
      if (c->fd < 0) continue;
      if (c->connecting) {
        if (!(events[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
        on_connected(c, events[e].events);
        /* A server that writes at once (nginx's `return`) may have been heard already: with
         * edge-triggered events no second event comes for those bytes. */
        if (c->fd < 0 || !(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      }
      if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
    }
    if (!stopping && slots_closed && t >= next_reopen) {
      /* Reconnect what an error closed, at most every 10 ms so a refusing server is not spun on. */
      slots_closed = 0;
      next_reopen = t + 10000000ull;
      for (int i = 0; i < connections; i++) {
        if (conns[i].fd < 0) open_conn(&conns[i]);
      }
    }
  }
  uint64_t unanswered = 0;
  for (int i = 0; i < connections; i++) {
    unanswered += (uint64_t)conns[i].in_flight;
    close_conn(&conns[i]);
  }
  /* The measured window ends at the last reply, as `tallyho load`'s does. */
  uint64_t elapsed = last_reply_ns - started_ns;
  int check_ok = repeats == 0 && malformed == 0 && decreasing == 0;
  const char *failure = NULL;
  if (!check_ok) failure = "the reply check failed: a repeated, decreasing or malformed number";
  else if (replies == 0) failure = "no replies came: is the server listening on that port?";
  report(elapsed, unanswered, failure == NULL, failure);
  return !check_ok ? 3 : replies == 0 ? 1 : 0;
}
