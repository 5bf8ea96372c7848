#!/usr/bin/env python3
"""Full TLS handshakes (no resumption) against a server; prints, one line per
request, what the server answered (nginx's worker pid). Exits non-zero if any
handshake or request fails."""

import argparse
import concurrent.futures
import socket
import ssl
import sys


def one_request(port: int, context: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        # A fresh connection with no session to resume: a full handshake.
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = b""
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:60]!r}")
    return body.decode().strip()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.cafile)
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        futures = [pool.submit(one_request, args.port, context)
                   for _ in range(args.count)]
        for future in futures:
            try:
                print(future.result())
            except Exception as error:  # report every failure, then fail
                failures += 1
                print(f"handshake failed: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
