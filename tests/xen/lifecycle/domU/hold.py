#!/usr/bin/python3
# hold.py HOST PORT N [LISTEN_PORT]: open N connections to an echo server
# at HOST:PORT (one line each way, checked), optionally listen on
# HOST:LISTEN_PORT too, print "ready N", then wait in recv() on every
# connection at once and print how each wait ended ("eof", "data" or the
# errno name, e.g. ECONNRESET), one line per connection, then "done".
import errno
import socket
import sys
import threading

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
listen_port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
conns = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=60)
    s.settimeout(None)
    line = b"hello %d\n" % i
    s.sendall(line)
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(64)
        if not chunk:
            sys.exit("echo server closed connection %d early" % i)
        got += chunk
    if got != line:
        sys.exit("connection %d echoed %r" % (i, got))
    conns.append(s)
if listen_port:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, listen_port))
    lsock.listen(8)
print("ready", n, flush=True)

results = [None] * n


def wait_one(i, s):
    try:
        results[i] = "data" if s.recv(64) else "eof"
    except OSError as e:
        results[i] = errno.errorcode.get(e.errno, str(e.errno))


threads = [threading.Thread(target=wait_one, args=(i, s)) for i, s in enumerate(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i, r in enumerate(results):
    print("conn", i, r, flush=True)
print("done", flush=True)
