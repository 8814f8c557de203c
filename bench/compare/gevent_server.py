"""The classic pooled coroutine server: gevent StreamServer with a Pool, numbering its clients.

Each client takes the next number when it connects and gets Hello World<N> for every line it
sends (one reply per line, so it serves pipelined load too). When the pool is full the server
stops accepting until a greenlet ends.

    /usr/bin/python3 bench/compare/gevent_server.py PORT [POOL_SIZE]
"""
import sys

from gevent.pool import Pool
from gevent.server import StreamServer

counter = 0


def handle(sock, _address):
    global counter
    counter += 1
    reply = b"Hello World%d\n" % counter
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            lines = data.count(b"\n")
            if lines:
                sock.sendall(reply * lines)
    except OSError:
        pass
    finally:
        sock.close()


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
pool_size = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
server = StreamServer(("127.0.0.1", port), handle, spawn=Pool(pool_size), backlog=4096)
print("gevent listening on 127.0.0.1:%d" % port, flush=True)
server.serve_forever()
