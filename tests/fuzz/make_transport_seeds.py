# Writes the raw HTTP/2 seed inputs of corpus/http2_transport and
# corpus/grpc_framing. Run from tests/fuzz: python3 make_transport_seeds.py
import struct, os, base64
D='corpus/http2_transport/'
def frame(t, flags, sid, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([t, flags]) + struct.pack('>I', sid) + payload
def lit(name, value):  # HPACK literal without indexing, new name, no Huffman
    assert len(name) < 127 and len(value) < 127
    return b'\x00' + bytes([len(name)]) + name + bytes([len(value)]) + value
SETTINGS = frame(4, 0, 0)
ACK = frame(4, 1, 0)
def grpc(msg, comp=0): return bytes([comp]) + struct.pack('>I', len(msg)) + msg
hdrs = b'\x88' + lit(b'content-type', b'application/grpc')
def trailers(status, msg=b'', extra=b''):
    return lit(b'grpc-status', status) + (lit(b'grpc-message', msg) if msg else b'') + extra
def w(name, mode, data):
    open(D+name, 'wb').write(bytes([mode]) + data)
ok = SETTINGS + ACK + frame(1, 4, 1, hdrs) + frame(0, 0, 1, grpc(b'\x0a\x03sig')) + frame(1, 5, 1, trailers(b'0'))
w('ok', 0, ok)
w('ok-idle-second-call', 3, ok)
w('error-details', 0, SETTINGS + ACK + frame(1, 4, 1, hdrs) + frame(1, 5, 1, trailers(b'5', b'no%20such%20key', lit(b'grpc-status-details-bin', base64.b64encode(b'\x08\x05\x12\x03abc').rstrip(b'=')))))
w('trailers-only', 0, SETTINGS + frame(1, 5, 1, b'\x88' + lit(b'content-type', b'application/grpc') + trailers(b'14', b'down')))
w('http-503', 0, SETTINGS + frame(1, 5, 1, lit(b':status', b'503')))
w('compressed', 0, SETTINGS + frame(1, 4, 1, hdrs) + frame(0, 0, 1, grpc(b'xx', 1)) + frame(1, 5, 1, trailers(b'0')))
w('too-large', 0, SETTINGS + frame(1, 4, 1, hdrs) + frame(0, 0, 1, struct.pack('>BI', 0, 0xffffffff) + b'a' * 40))
w('two-messages', 0, SETTINGS + frame(1, 4, 1, hdrs) + frame(0, 0, 1, grpc(b'a') + grpc(b'b')) + frame(1, 5, 1, trailers(b'0')))
w('split-data', 0, SETTINGS + frame(1, 4, 1, hdrs) + frame(0, 0, 1, grpc(b'hello')[:3]) + frame(0, 0, 1, grpc(b'hello')[3:]) + frame(1, 5, 1, trailers(b'0')))
w('rst-refused', 0, SETTINGS + frame(3, 0, 1, struct.pack('>I', 7)))
w('goaway', 1, SETTINGS + frame(7, 0, 0, struct.pack('>II', 0, 0) + b'bye'))
w('ping-window', 0, SETTINGS + frame(6, 0, 0, b'12345678') + frame(8, 0, 0, struct.pack('>I', 1000)) + frame(8, 0, 1, struct.pack('>I', 1)) + frame(1, 4, 1, hdrs))
w('bad-grpc-status', 0, SETTINGS + frame(1, 4, 1, hdrs) + frame(1, 5, 1, trailers(b'abc')))
w('settings-params', 0, frame(4, 0, 0, struct.pack('>HI', 3, 0) + struct.pack('>HI', 4, 0x7fffffff) + struct.pack('>HI', 5, 16384)))
w('continuation', 0, SETTINGS + frame(1, 0, 1, hdrs[:5]) + frame(9, 4, 1, hdrs[5:]))
w('empty', 0, b'')
F='corpus/grpc_framing/'
def g(name, seed, data): open(F+name, 'wb').write(bytes([seed]) + data)
g('message', 0, grpc(b'\x0a\x03sig'))
g('empty-message', 1, grpc(b''))
g('compressed', 2, grpc(b'abc', 1))
g('huge-length', 3, struct.pack('>BI', 0, 0x7fffffff))
g('timeout-m', 4, b'1500m')
g('timeout-h', 5, b'99999999H')
g('timeout-n', 6, b'1n')
g('status', 7, b'16')
g('message-escapes', 8, b'no%20key%zz%')
g('base64', 9, base64.b64encode(b'\x08\x05\x12\x03abc\xff'))
