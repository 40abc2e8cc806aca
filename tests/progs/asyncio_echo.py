#!/usr/bin/python3
"""asyncio echo server and client, for tests/e2e/test_run_asyncio.c.

  asyncio_echo.py server HOST PORT
      Serve until SIGTERM (then exit 0).  Prints "listening" once the
      listening socket is open.  Each connection: echo every byte until
      the peer's EOF, then half-close (write_eof) and close.

  asyncio_echo.py client HOST PORT CONNS
      CONNS concurrent connections; on each, every message size of SIZES
      in turn: send a message, read exactly as many bytes back, compare.
      Then half-close and expect a clean EOF (nothing more, no error).
      Prints "ok conns=N bytes=B" (B: bytes sent per connection) and
      exits 0, or prints what went wrong and exits 1.

Both run on asyncio's default event loop (epoll on Linux).
"""
import asyncio
import random
import signal
import sys

# 1 B .. 256 KiB, with the sizes around page and 64 KiB boundaries.
SIZES = [1, 2, 3, 100, 1000, 4095, 4096, 4097, 65535, 65536, 65537,
         100000, 262144]
READ_CHUNK = 65536


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def serve(host, port):
    server = await asyncio.start_server(echo, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("listening", flush=True)
    async with server:
        await stop.wait()
    return 0


def message(conn, index, size):
    """Reproducible bytes, different for every connection and message."""
    return random.Random(conn * 1000 + index).randbytes(size)


async def exchange(host, port, conn):
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0
    try:
        for index, size in enumerate(SIZES):
            msg = message(conn, index, size)
            # Written without waiting for drain: the echo is read while
            # the transport flushes, so neither side can block the other.
            writer.write(msg)
            back = await reader.readexactly(size)
            if back != msg:
                raise RuntimeError(f"conn {conn}: message of {size} bytes "
                                   f"came back different")
            sent += size
        writer.write_eof()
        rest = await reader.read()
        if rest:
            raise RuntimeError(f"conn {conn}: {len(rest)} bytes after "
                               f"the last echo")
    finally:
        writer.close()
        await writer.wait_closed()
    return sent


async def clients(host, port, conns):
    sent = await asyncio.gather(*(exchange(host, port, c)
                                  for c in range(conns)))
    print(f"ok conns={conns} bytes={sent[0]}", flush=True)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "server":
        return asyncio.run(serve(argv[2], int(argv[3])))
    if len(argv) == 5 and argv[1] == "client":
        try:
            return asyncio.run(clients(argv[2], int(argv[3]), int(argv[4])))
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as e:
            print(f"failed: {e!r}", flush=True)
            return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
