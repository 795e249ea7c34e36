#!/usr/bin/env python3
"""A TCP proxy that counts bytes, for the S3 benchmarks (benches/s3.sh).

    tcpcount.py LISTEN_PORT TARGET_PORT STATS_FILE

Forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT and keeps STATS_FILE holding
"request_bytes response_bytes connections" (bytes on the wire, HTTP headers
included), rewritten at most every 50 ms and at every connection's end. Requests are
counted from the S3 server's own log (one line per request), not here.
"""
import os
import socket
import sys
import threading
import time

listen_port, target_port, stats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
counts = [0, 0, 0]
last_write = [0.0]


def write(force=False):
    now = time.monotonic()
    if not force and now - last_write[0] < 0.05:
        return
    last_write[0] = now
    with open(stats + ".tmp", "w") as f:
        f.write("%d %d %d\n" % tuple(counts))
    os.replace(stats + ".tmp", stats)


def pump(src, dst, i):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
            with lock:
                counts[i] += len(data)
                write()
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with lock:
            write(force=True)


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(64)
    with lock:
        write(force=True)
    while True:
        client, _ = srv.accept()
        try:
            server = socket.create_connection(("127.0.0.1", target_port))
        except OSError:  # the server is gone (the benchmark is ending)
            client.close()
            continue
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with lock:
            counts[2] += 1
        threading.Thread(target=pump, args=(client, server, 0), daemon=True).start()
        threading.Thread(target=pump, args=(server, client, 1), daemon=True).start()


main()
