#!/usr/bin/env python3
"""Python's ssl module with an HSM key through hsmproxy:

- ssl.SSLContext.load_cert_chain(cert, keyfile=<PKCS#11 PROVIDER URI file>)
  serving TLS 1.2 and 1.3 handshakes;
- multiprocessing (fork start method): children inherit the context whose
  key the parent loaded and each completes handshakes signed by hsmd.

The outer run starts `hsmd --demo`, writes openssl.cnf and re-runs this file
with OPENSSL_CONF set (OpenSSL reads it when the ssl module starts)."""

import multiprocessing
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

KEY_URI = "pkcs11:token=demo;object=ec-p256;type=private"


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------
# Inner run: OPENSSL_CONF is set.

def handshake(server_ctx, client_ctx, version):
    """One handshake over a socket pair, server in a thread."""
    server_sock, client_sock = socket.socketpair()
    errors = []

    def serve():
        try:
            with server_ctx.wrap_socket(server_sock, server_side=True) as tls:
                tls.sendall(tls.recv(5))
        except Exception as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client_ctx.minimum_version = version
        client_ctx.maximum_version = version
        with client_ctx.wrap_socket(client_sock, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            if tls.recv(5) != b"hello":
                raise RuntimeError("echo mismatch")
            negotiated = tls.version()
    finally:
        thread.join(30)
    if errors:
        raise errors[0]
    return negotiated


def client_context(cert):
    ctx = ssl.create_default_context(cafile=cert)
    return ctx


SERVER_CTX = None
CERT = None


def child_task(index):
    """Runs in a forked worker: the key was loaded by the parent."""
    versions = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
    got = handshake(SERVER_CTX, client_context(CERT), versions[index % 2])
    return os.getpid(), got


def inner(cert, key_file):
    global SERVER_CTX, CERT
    CERT = cert
    SERVER_CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    SERVER_CTX.load_cert_chain(cert, keyfile=key_file)
    for version, name in [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]:
        got = handshake(SERVER_CTX, client_context(cert), version)
        if got != name:
            fail(f"negotiated {got}, wanted {name}")
    print("load_cert_chain: TLS 1.2 and 1.3 handshakes OK")

    pool = multiprocessing.get_context("fork").Pool(4)
    try:
        results = pool.map_async(child_task, range(16)).get(120)
    finally:
        pool.close()
        pool.join()
    pids = {pid for pid, _ in results}
    if len(results) != 16 or not pids or os.getpid() in pids:
        fail(f"unexpected results {results}")
    print(f"multiprocessing: 16 handshakes in {len(pids)} forked workers OK")
    # The parent still works after its children did.
    handshake(SERVER_CTX, client_context(cert), ssl.TLSVersion.TLSv1_3)
    return 0


# ---------------------------------------------------------------------------
# Outer run: starts hsmd and configures OpenSSL.

def runfile(path):
    root = os.path.join(os.environ["TEST_SRCDIR"],
                        os.environ.get("TEST_WORKSPACE", "hsmd"))
    return os.path.join(root, path)


def outer():
    work = os.path.join(os.environ.get("TEST_TMPDIR", tempfile.gettempdir()),
                        "python")
    os.makedirs(work, exist_ok=True)
    demo = tempfile.mkdtemp(prefix="hsmd", dir="/tmp")
    log_path = os.path.join(work, "hsmd.log")
    env = dict(os.environ)
    env.pop("OPENSSL_CONF", None)
    with open(log_path, "wb") as log:
        hsmd = subprocess.Popen([runfile("daemon/hsmd"), "--demo", demo],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 60
        while 'msg="hsmd ready"' not in open(log_path).read():
            if hsmd.poll() is not None or time.time() > deadline:
                fail("hsmd did not start:\n" + open(log_path).read())
            time.sleep(0.1)

        conf = os.path.join(work, "openssl.cnf")
        with open(conf, "w") as f:
            f.write(f"""openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
hsmproxy = hsmproxy_sect
[default_sect]
activate = 1
[hsmproxy_sect]
module = {runfile("proxy_provider/hsmproxy.so")}
socket = {demo}/hsmd.sock
activate = 1
""")
        env = dict(os.environ, OPENSSL_CONF=conf)
        cert = os.path.join(work, "server.crt")
        subprocess.run(["openssl", "req", "-new", "-x509", "-key", KEY_URI,
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost",
                        "-days", "2", "-out", cert],
                       env=env, check=True, timeout=60)
        der = os.path.join(work, "uri.der")
        with open(os.path.join(work, "uri.asn1"), "w") as f:
            f.write("asn1 = SEQUENCE:uri_file\n[uri_file]\n"
                    "desc = VISIBLESTRING:PKCS\\#11 Provider URI v1.0\n"
                    f"uri = UTF8:{KEY_URI}\n")
        subprocess.run(["openssl", "asn1parse", "-genconf",
                        os.path.join(work, "uri.asn1"), "-noout", "-out", der],
                       check=True, timeout=60)
        import base64
        body = base64.encodebytes(open(der, "rb").read()).decode()
        key_file = os.path.join(work, "server.key.pem")
        with open(key_file, "w") as f:
            f.write("-----BEGIN PKCS#11 PROVIDER URI-----\n" + body +
                    "-----END PKCS#11 PROVIDER URI-----\n")

        # Audit records (the demo keeps an audit trail, and then writes a
        # successful request's own line at debug level only), or request
        # lines when auditing is off.
        signed = re.compile(r'method=Sign .*status=OK|'
                            r'"msg":"audit","method":"Sign",.*"result":"OK"')
        before = len(signed.findall(open(log_path).read()))
        result = subprocess.run([sys.executable, __file__, "--inner", cert, key_file],
                                env=env, timeout=300)
        if result.returncode != 0:
            fail(f"inner run exited with {result.returncode}")
        after = len(signed.findall(open(log_path).read()))
        # 2 + 16 + 1 server handshakes, each signed by hsmd.
        if after - before < 19:
            fail(f"only {after - before} signatures by hsmd")
        print(f"hsmd signed {after - before} handshakes")
    finally:
        hsmd.send_signal(signal.SIGTERM)
        try:
            hsmd.wait(30)
        except subprocess.TimeoutExpired:
            hsmd.kill()
        shutil.rmtree(demo, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--inner":
        sys.exit(inner(sys.argv[2], sys.argv[3]))
    sys.exit(outer())
