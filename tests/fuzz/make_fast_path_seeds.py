# Writes the seed inputs of corpus/fast_path: a mode byte (bit 0: the fuzz
# target prepends client_lib's opening; bit 1: small limits), then raw
# HTTP/2 frames as a client would send them, with literal HPACK headers.
# Run from tests/fuzz: python3 make_fast_path_seeds.py
import os
import struct

D = 'corpus/fast_path/'
OPENING = 1  # the target adds the preface and the fast-path SETTINGS
SMALL = 2    # max_request_bytes 1024, 2 streams, 512 header bytes
PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
FAST_PATH_SETTING = struct.pack('>HI', 0xf0d5, 1)

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 1, 1, 4


def frame(t, flags, sid, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([t, flags]) + struct.pack('>I', sid) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def lit(name, value):  # literal without indexing, new name, no Huffman
    return b'\x00' + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def request_headers(path=b'/hsmd.v1.KeyService/Sign', method=b'POST',
                    content_type=b'application/grpc', extra=b''):
    return (lit(b':method', method) + lit(b':scheme', b'http') + lit(b':path', path) +
            lit(b':authority', b'localhost') + lit(b'content-type', content_type) +
            lit(b'te', b'trailers') + extra)


def grpc(msg, comp=0):
    return bytes([comp]) + struct.pack('>I', len(msg)) + msg


# A valid hsmd.v1.SignRequest: key uri "pkcs11:token=fuzz;object=ec",
# algorithm 4, message "hello".
SIGN = b'\x0a\x1d\x0a\x1bpkcs11:token=fuzz;object=ec\x12\x04\x1a\x02\x08\x03\x1a\x05hello'
RANDOM = b'\x08\x20'  # GenerateRandomRequest{length: 32}


def call(sid, body=grpc(SIGN), **kw):
    return frame(HEADERS, END_HEADERS, sid, request_headers(**kw)) + frame(DATA, END_STREAM, sid, body)


def w(name, mode, data):
    with open(D + name, 'wb') as f:
        f.write(bytes([mode]) + data)


os.makedirs(D, exist_ok=True)
ACK_FRAME = frame(SETTINGS, ACK, 0)
w('sign', OPENING, ACK_FRAME + call(1))
w('sign-full-opening', 0, PREFACE + frame(SETTINGS, 0, 0, FAST_PATH_SETTING) + ACK_FRAME + call(1))
w('two-calls', OPENING, ACK_FRAME + call(1) + call(3))
w('timeout', OPENING, call(1, extra=lit(b'grpc-timeout', b'5S')))
w('timeout-malformed', OPENING, call(1, extra=lit(b'grpc-timeout', b'99999999H')))
w('unknown-path', OPENING, call(1, path=b'/hsmd.v1.KeyService/Nope'))
w('error-details', OPENING, call(1, path=b'/hsmd.v1.KeyService/GetKey', body=grpc(b'\x0a\x02id')))
w('large-response', OPENING, call(1, path=b'/hsmd.v1.KeyService/GenerateRandom', body=grpc(RANDOM)) +
  call(3, path=b'/hsmd.v1.KeyService/GenerateRandom', body=grpc(RANDOM)) +
  call(5, path=b'/hsmd.v1.KeyService/GenerateRandom', body=grpc(RANDOM)) +
  call(7, path=b'/hsmd.v1.KeyService/GenerateRandom', body=grpc(RANDOM)))
# The client's window is 0: hsmd's response waits for a WINDOW_UPDATE that
# never comes, until EOF.
w('zero-window', OPENING, frame(SETTINGS, 0, 0, struct.pack('>HI', 4, 0)) +
  call(1, path=b'/hsmd.v1.KeyService/GenerateRandom', body=grpc(RANDOM)))
w('bad-content-type', OPENING, call(1, content_type=b'text/plain'))
w('get', OPENING, frame(HEADERS, END_HEADERS | END_STREAM, 1, request_headers(method=b'GET')))
w('compressed', OPENING, call(1, body=grpc(SIGN, 1), extra=lit(b'grpc-encoding', b'gzip')))
w('length-mismatch', OPENING, call(1, body=struct.pack('>BI', 0, 1000) + SIGN))
w('two-messages', OPENING, call(1, body=grpc(SIGN) + grpc(SIGN)))
w('no-message', OPENING, frame(HEADERS, END_HEADERS | END_STREAM, 1, request_headers()))
w('bad-message', OPENING, call(1, body=grpc(b'\xff\xff\xff')))
w('oversized-body', OPENING | SMALL, frame(HEADERS, END_HEADERS, 1, request_headers()) +
  frame(DATA, 0, 1, grpc(b'\x1a' + b'\x80\x10' + b'a' * 2048)[:1500]) + frame(DATA, END_STREAM, 1, b'a' * 600))
w('oversized-headers', OPENING | SMALL, call(1, extra=lit(b'x-pad', b'p' * 600)))
w('oversized-headers-end-stream', OPENING | SMALL, frame(HEADERS, END_HEADERS | END_STREAM, 1, request_headers(extra=lit(b'x-pad', b'p' * 600))) + call(3))
w('oversized-trailers', OPENING | SMALL, frame(HEADERS, END_HEADERS, 1, request_headers()) + frame(DATA, 0, 1, grpc(SIGN)) +
  frame(HEADERS, END_HEADERS | END_STREAM, 1, lit(b'x-pad', b'p' * 600)) + call(3))
# PADDED | PRIORITY flags on HEADERS, padding on DATA, and a PRIORITY frame.
w('padded-priority', OPENING, frame(2, 0, 1, struct.pack('>IB', 0, 15)) +
  frame(HEADERS, END_HEADERS | 0x8 | 0x20, 1, b'\x03' + struct.pack('>IB', 0, 200) + request_headers() + b'\0' * 3) +
  frame(DATA, END_STREAM | 0x8, 1, b'\x02' + grpc(SIGN) + b'\0' * 2))
w('too-many-streams', OPENING | SMALL, b''.join(frame(HEADERS, END_HEADERS, sid, request_headers()) for sid in (1, 3, 5, 7)) +
  frame(DATA, END_STREAM, 3, grpc(SIGN)))
w('rst-mid-request', OPENING, frame(HEADERS, END_HEADERS, 1, request_headers()) +
  frame(DATA, 0, 1, grpc(SIGN)[:10]) + frame(RST_STREAM, 0, 1, struct.pack('>I', 8)) + call(3))
w('rst-after-request', OPENING, call(1) + frame(RST_STREAM, 0, 1, struct.pack('>I', 8)))
w('ping', OPENING, frame(PING, 0, 0, b'12345678') + call(1) + frame(PING, 0, 0, b'abcdefgh'))
w('window-update', OPENING, frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 1 << 20)) +
  frame(HEADERS, END_HEADERS, 1, request_headers()) + frame(WINDOW_UPDATE, 0, 1, struct.pack('>I', 1000)) +
  frame(DATA, END_STREAM, 1, grpc(SIGN)) + frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 0x7fffffff)))
w('client-trailers', OPENING, frame(HEADERS, END_HEADERS, 1, request_headers()) + frame(DATA, 0, 1, grpc(SIGN)) +
  frame(HEADERS, END_HEADERS | END_STREAM, 1, lit(b'x-trailer', b'1')))
hdrs = request_headers()
w('continuation', OPENING, frame(HEADERS, 0, 1, hdrs[:20]) + frame(CONTINUATION, 0, 1, hdrs[20:50]) +
  frame(CONTINUATION, END_HEADERS, 1, hdrs[50:]) + frame(DATA, END_STREAM, 1, grpc(SIGN)))
w('settings-ack-flood', OPENING, ACK_FRAME + call(1) + ACK_FRAME * 200 + call(3))
w('settings-flood', OPENING, frame(SETTINGS, 0, 0, struct.pack('>HI', 1, 0)) * 100 + call(1))
w('goaway', OPENING, call(1) + frame(GOAWAY, 0, 0, struct.pack('>II', 0, 0) + b'bye') + call(3))
w('garbage-after-preface', OPENING, b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
w('no-preface', 0, b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
w('data-on-idle-stream', OPENING, frame(DATA, END_STREAM, 5, grpc(SIGN)))
w('empty', 0, b'')
w('opening-only', OPENING, b'')
