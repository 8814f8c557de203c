/*
 * The memory benchmark's holder: opens many TCP connections to one server, sends one message on
 * each, reads its `Hello World<N>` reply and keeps the connection open, so that the server's
 * memory per held connection can be read. It shares no code with the server: it parses the
 * replies itself and writes every first-reply N to a file for the driver to check for repeats.
 *
 *   cc -O2 -o holder holder.c
 *   holder --port P [--host 127.0.0.1] --connections N [--source 127.0.1.1 --sources S]
 *          [--in-flight M] [--setup-ms MS] [--life-ms MS] [--numbers FILE] [--message 'x\n']
 *
 * It connects from the S source addresses from --source on (each connection binds one, with
 * IP_BIND_ADDRESS_NO_PORT, so each source and server address pair has its own ephemeral ports),
 * with at most M connections between connect() and their first reply. Once every connection is
 * held or has failed, or after --setup-ms, it prints one JSON line:
 *
 *   {"event":"held","held":H,"failed":F,"errors":{...},"ms":T}
 *
 * and then obeys its standard input, one word a line: `again` sends the message once more on
 * every held connection and prints {"event":"again","answered":A,"same":S,"errors":{...}} once
 * every one has answered or failed (or after --setup-ms); `close`, or the end of the input,
 * closes every connection, writes the first-reply numbers (little-endian uint64) to --numbers and
 * exits. It exits by itself after --life-ms whatever happens, so no run can leave it behind.
 *
 * Exit 0 after a close, 2 on a usage error, 1 when it could not start.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#define MAX_EVENTS 512

/* Where a connection stands. */
enum phase { IDLE, CONNECTING, AWAIT_FIRST, HELD, AWAIT_AGAIN, ANSWERED, FAILED };

/* 24 bytes a connection: the holder must cost little beside the server it measures. */
struct conn {
  int fd;
  uint8_t phase;
  uint8_t line_pos;   /* bytes of the reply line read so far */
  uint8_t line_state; /* 0 greeting so far, 1 digits, 2 malformed */
  uint8_t digits;
  uint64_t value; /* the N being read */
  uint64_t first; /* the first reply's N */
};

static const char *host = "127.0.0.1";
static int port = 0;
static long connections = 0;
static uint32_t source_first = 0; /* host order; 0: let the kernel choose */
static int sources = 1;
static int max_in_flight = 128;
static long setup_ms = 120000;
static long life_ms = 600000;
static const char *numbers_path = NULL;
static char message[64] = "x\n";
static size_t message_len = 2;

static struct conn *conns;
static int epfd;
static struct sockaddr_in target;
static long next_to_open, in_flight, held, failed, answered, same, waiting;

#define ERROR_KINDS 7
static const char *error_names[ERROR_KINDS] = {"ECONNREFUSED", "ECONNRESET", "closed",
                                               "malformed",    "EADDRNOTAVAIL", "timeout",
                                               "other"};
static long error_counts[ERROR_KINDS];

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void count_error(int kind) { error_counts[kind]++; }

static int kind_of(int err) {
  switch (err) {
    case ECONNREFUSED: return 0;
    case ECONNRESET: case EPIPE: return 1;
    case EADDRNOTAVAIL: return 4;
    default: return 6;
  }
}

static void print_errors(void) {
  printf("\"errors\":{");
  int first = 1;
  for (int i = 0; i < ERROR_KINDS; i++) {
    if (error_counts[i] == 0) continue;
    printf("%s\"%s\":%ld", first ? "" : ",", error_names[i], error_counts[i]);
    first = 0;
  }
  printf("}");
}

/* A connection that will not be held: closed, counted once by the phase it failed in. */
static void fail(struct conn *c, int kind) {
  if (c->phase == CONNECTING || c->phase == AWAIT_FIRST) in_flight--;
  if (c->phase == AWAIT_AGAIN) waiting--;
  if (c->phase == HELD || c->phase == AWAIT_AGAIN || c->phase == ANSWERED) held--;
  count_error(kind);
  failed++;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->phase = FAILED;
}

static void open_next(void) {
  struct conn *c = &conns[next_to_open];
  uint32_t source = source_first == 0 ? 0 : source_first + (uint32_t)(next_to_open % sources);
  next_to_open++;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (c->fd < 0) {
    c->phase = FAILED;
    count_error(kind_of(errno));
    failed++;
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (source != 0) {
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = 0};
    from.sin_addr.s_addr = htonl(source);
    if (bind(c->fd, (struct sockaddr *)&from, sizeof from) < 0) {
      c->phase = CONNECTING;
      in_flight++;
      fail(c, kind_of(errno));
      return;
    }
  }
  c->phase = CONNECTING;
  in_flight++;
  if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
    fail(c, kind_of(errno));
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static int send_message(struct conn *c) {
  ssize_t sent = send(c->fd, message, message_len, MSG_NOSIGNAL);
  if (sent == (ssize_t)message_len) return 0;
  fail(c, sent < 0 ? kind_of(errno) : 1);
  return -1;
}

/* Reads what the server sent; returns 1 once a whole reply line is in, 0 before, -1 failed. */
static int read_reply(struct conn *c) {
  char bytes[64];
  ssize_t got = recv(c->fd, bytes, sizeof bytes, 0);
  if (got < 0) {
    if (errno == EAGAIN || errno == EINTR) return 0;
    fail(c, kind_of(errno));
    return -1;
  }
  if (got == 0) {
    fail(c, 2);
    return -1;
  }
  for (ssize_t i = 0; i < got; i++) {
    char b = bytes[i];
    if (b == '\n') {
      if (c->line_state != 1 || c->digits == 0 || i != got - 1) {
        fail(c, 3);
        return -1;
      }
      c->line_pos = c->line_state = c->digits = 0;
      return 1;
    }
    if (c->line_state == 0) {
      if (b != GREETING[c->line_pos]) c->line_state = 2;
      else if (++c->line_pos == GREETING_LEN) c->line_state = 1;
    } else if (c->line_state == 1) {
      if (b >= '0' && b <= '9' && c->digits < 17) {
        c->value = c->value * 10 + (uint64_t)(b - '0');
        c->digits++;
      } else if (b != '\r') {
        c->line_state = 2;
      }
    }
  }
  return 0;
}

static void on_event(struct conn *c, uint32_t events) {
  if (c->phase == FAILED) return;
  if (c->phase == CONNECTING) {
    if (events & (EPOLLERR | EPOLLHUP)) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      fail(c, err == 0 ? 2 : kind_of(err));
      return;
    }
    if (!(events & EPOLLOUT)) return;
    /* Connected: from now on only reads (and the peer's close) matter. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->phase = AWAIT_FIRST;
    c->value = 0;
    send_message(c);
    return;
  }
  if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
  if (c->phase == HELD || c->phase == ANSWERED) {
    /* Nothing is owed on a held connection: anything here is the server closing it. */
    char byte;
    ssize_t got = recv(c->fd, &byte, 1, MSG_PEEK);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    fail(c, got == 0 ? 2 : got < 0 ? kind_of(errno) : 3);
    return;
  }
  int done = read_reply(c);
  if (done <= 0) return;
  if (c->phase == AWAIT_FIRST) {
    c->first = c->value;
    c->phase = HELD;
    in_flight--;
    held++;
  } else if (c->phase == AWAIT_AGAIN) {
    if (c->value == c->first) same++;
    c->phase = ANSWERED;
    waiting--;
    answered++;
  }
  c->value = 0;
}

static void poll_once(int timeout_ms) {
  struct epoll_event events[MAX_EVENTS];
  int n = epoll_wait(epfd, events, MAX_EVENTS, timeout_ms);
  /* Standard input (no pointer) waits for the main loop. */
  for (int i = 0; i < n; i++) {
    if (events[i].data.ptr != NULL) on_event(events[i].data.ptr, events[i].events);
  }
}

static void set_up(uint64_t deadline) {
  uint64_t started = now_ms();
  while (next_to_open < connections || in_flight > 0) {
    while (next_to_open < connections && in_flight < max_in_flight) open_next();
    if (now_ms() >= deadline) break;
    poll_once(50);
  }
  /* What is still in flight at the deadline did not make it. */
  for (long i = 0; i < next_to_open; i++) {
    if (conns[i].phase == CONNECTING || conns[i].phase == AWAIT_FIRST) fail(&conns[i], 5);
  }
  printf("{\"event\":\"held\",\"held\":%ld,\"failed\":%ld,\"opened\":%ld,", held, failed,
         next_to_open);
  print_errors();
  printf(",\"ms\":%llu}\n", (unsigned long long)(now_ms() - started));
  fflush(stdout);
}

static void ask_again(uint64_t deadline) {
  memset(error_counts, 0, sizeof error_counts);
  answered = same = waiting = 0;
  for (long i = 0; i < next_to_open; i++) {
    struct conn *c = &conns[i];
    if (c->phase != HELD && c->phase != ANSWERED) continue;
    c->phase = AWAIT_AGAIN;
    waiting++;
    c->value = 0;
    send_message(c);
  }
  while (waiting > 0 && now_ms() < deadline) poll_once(50);
  for (long i = 0; i < next_to_open; i++) {
    if (conns[i].phase == AWAIT_AGAIN) fail(&conns[i], 5);
  }
  printf("{\"event\":\"again\",\"answered\":%ld,\"same\":%ld,", answered, same);
  print_errors();
  printf("}\n");
  fflush(stdout);
}

static void finish(void) {
  for (long i = 0; i < next_to_open; i++) {
    if (conns[i].fd >= 0) close(conns[i].fd);
  }
  if (numbers_path == NULL) return;
  FILE *out = fopen(numbers_path, "wb");
  if (out == NULL) {
    perror(numbers_path);
    return;
  }
  for (long i = 0; i < next_to_open; i++) {
    if (conns[i].first != 0) fwrite(&conns[i].first, sizeof conns[i].first, 1, out);
  }
  fclose(out);
}

static int usage(const char *why) {
  fprintf(stderr, "holder: %s\n", why);
  return 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (value == NULL) return usage("every option takes a value");
    i++;
    if (strcmp(arg, "--host") == 0) host = value;
    else if (strcmp(arg, "--port") == 0) port = atoi(value);
    else if (strcmp(arg, "--connections") == 0) connections = atol(value);
    else if (strcmp(arg, "--sources") == 0) sources = atoi(value);
    else if (strcmp(arg, "--in-flight") == 0) max_in_flight = atoi(value);
    else if (strcmp(arg, "--setup-ms") == 0) setup_ms = atol(value);
    else if (strcmp(arg, "--life-ms") == 0) life_ms = atol(value);
    else if (strcmp(arg, "--numbers") == 0) numbers_path = value;
    else if (strcmp(arg, "--source") == 0) {
      struct in_addr a;
      if (inet_pton(AF_INET, value, &a) != 1) return usage("--source takes an IPv4 address");
      source_first = ntohl(a.s_addr);
    } else if (strcmp(arg, "--message") == 0) {
      /* Only \n is unescaped: the message is one short line. */
      size_t n = 0;
      for (const char *p = value; *p && n < sizeof message - 1; p++) {
        if (p[0] == '\\' && p[1] == 'n') message[n++] = '\n', p++;
        else message[n++] = *p;
      }
      message[n] = 0;
      message_len = n;
    } else {
      return usage("unknown option (see the comment at the top of holder.c)");
    }
  }
  if (port <= 0 || port > 65535) return usage("--port must be 1-65535");
  if (connections <= 0) return usage("--connections must be at least 1");
  if (sources < 1 || max_in_flight < 1 || message_len == 0) {
    return usage("--sources, --in-flight and --message must be at least 1");
  }
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &target.sin_addr) != 1) return usage("--host takes an IPv4 address");
  conns = calloc((size_t)connections, sizeof *conns);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (conns == NULL || epfd < 0) {
    perror("holder");
    return 1;
  }
  for (long i = 0; i < connections; i++) conns[i].fd = -1;
  uint64_t end_of_life = now_ms() + (uint64_t)life_ms;
  uint64_t deadline = now_ms() + (uint64_t)setup_ms;
  set_up(deadline < end_of_life ? deadline : end_of_life);

  /* Commands on stdin; held connections are watched for the server closing them meanwhile. */
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
  char line[64];
  size_t line_len = 0;
  while (now_ms() < end_of_life) {
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(epfd, events, MAX_EVENTS, 250);
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr != NULL) {
        on_event(events[i].data.ptr, events[i].events);
        continue;
      }
      ssize_t got = read(0, line + line_len, sizeof line - 1 - line_len);
      if (got <= 0) {
        finish();
        return 0;
      }
      line_len += (size_t)got;
      line[line_len] = 0;
      char *end;
      while ((end = strchr(line, '\n')) != NULL) {
        *end = 0;
        if (strcmp(line, "again") == 0) {
          uint64_t until = now_ms() + (uint64_t)setup_ms;
          ask_again(until < end_of_life ? until : end_of_life);
        } else if (strcmp(line, "close") == 0) {
          finish();
          return 0;
        }
        line_len -= (size_t)(end + 1 - line);
        memmove(line, end + 1, line_len + 1);
      }
      if (line_len == sizeof line - 1) line_len = 0; /* a line too long: dropped */
    }
  }
  finish();
  return 0;
}
