#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (small, meaningful inputs for each fuzzer).

Run it again after changing an input layout or the fixed secrets of fuzz_jwt.c / fuzz_ticket.c,
whose seed tokens are signed here. Existing seeds of the same name are overwritten; others kept.
"""
import base64, hashlib, hmac, json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
JWT_SECRET = b"fuzz-secret-0123456789abcdef-0123456789"  # fuzz_jwt.c, fuzz_ticket.c
EXP_2100 = 4102444800


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token(header, payload, secret=JWT_SECRET):
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    s = b64url(hmac.new(secret, h + b"." + p, hashlib.sha256).digest())
    return h + b"." + p + b"." + s


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def http(lines, body=b""):
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---- fuzz_request: first byte = template (bits 0-2), half-close (bit 3), split write (bit 4) ----
R = "request"
write(R, "raw-healthz", b"\x00" + http(["GET /healthz HTTP/1.1", "Host: fuzz"]))
write(R, "raw-metrics", b"\x00" + http(["GET /metrics HTTP/1.1", "Host: fuzz"]))
write(R, "raw-preflight", b"\x00" + http(["OPTIONS /insert HTTP/1.1", "Host: fuzz",
      "Origin: http://example.com", "Access-Control-Request-Method: POST"]))
write(R, "raw-405", b"\x00" + http(["PUT /users HTTP/1.1", "Host: fuzz", "Content-Length: 2"], b"{}"))
write(R, "raw-404-http10", b"\x00" + http(["GET /nope?x=1 HTTP/1.0"]))
body = b'{"event":"score","data":{"home":1,"away":2}}'
write(R, "raw-insert", b"\x00" + http(["POST /insert HTTP/1.1", "Host: fuzz", "Authorization: Bearer @L",
      "Content-Type: application/json", "Content-Length: %d" % len(body)], body))
part1, part2 = b'{"eve', b'nt":"chunky","data":[1,2,3]}   '
chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(part1), part1, len(part2), part2)
write(R, "raw-insert-chunked", b"\x00" + http(["POST /insert HTTP/1.1", "Host: fuzz",
      "Authorization: Bearer @L", "Transfer-Encoding: chunked"], chunked))
write(R, "raw-insert-expect", b"\x00" + http(["POST /insert HTTP/1.1", "Host: fuzz", "Authorization: Bearer @L",
      "Expect: 100-continue", "Content-Length: %d" % len(body)], body))
write(R, "raw-ticket", b"\x00" + http(["POST /sse/ticket HTTP/1.1", "Host: fuzz", "Authorization: Bearer @L",
      "Content-Length: 0"]))
write(R, "raw-sse-resume", b"\x00" + http(["GET /sse?events=score,other HTTP/1.1", "Host: fuzz",
      "Authorization: Bearer @L", "Last-Event-ID: 1", "Accept: text/event-stream"]))
write(R, "raw-sse-ticket", b"\x00" + http(["GET /sse?ticket=@T&lastEventId=0 HTTP/1.1", "Host: fuzz"]))
write(R, "raw-pipelined", b"\x00" + http(["GET /healthz HTTP/1.1", "Host: fuzz"]) +
      http(["GET /sse HTTP/1.1", "Host: fuzz", "Authorization: Bearer @L"]) +
      http(["GET /metrics HTTP/1.1", "Host: fuzz"]))
write(R, "raw-too-big", b"\x00" + http(["POST /insert HTTP/1.1", "Host: fuzz", "Authorization: Bearer @L",
      "Content-Length: 99999999"], b"{"))
# identity and access (SPEC §5): "@A" is the admin token; the server runs with a rules file
def jpost(method, path, auth, body):
    return http(["%s %s HTTP/1.1" % (method, path), "Host: fuzz", "Authorization: Bearer " + auth,
                 "Content-Type: application/json", "Content-Length: %d" % len(body)], body)
write(R, "admin-list", b"\x00" + http(["GET /admin/users?limit=2&after=0 HTTP/1.1", "Host: fuzz",
      "Authorization: Bearer @A"]))
write(R, "admin-create", b"\x00" + jpost("POST", "/admin/users", "@A",
      b'{"username":"staffer","password":"staff password 1","roles":["staff","ops"]}'))
write(R, "admin-patch", b"\x00" + jpost("PATCH", "/admin/users/0123456789abcdef0123456789abcdef", "@A",
      b'{"roles":["staff"],"revoked":false}'))
write(R, "admin-wrong-token", b"\x00" + http(["GET /admin/users/x HTTP/1.1", "Host: fuzz",
      "Authorization: Bearer @L"]))
write(R, "me", b"\x00" + http(["GET /users/me HTTP/1.1", "Host: fuzz", "Authorization: Bearer @L"]))
write(R, "me-password", b"\x00" + jpost("POST", "/users/me/password", "@L",
      b'{"password":"correct horse battery","new_password":"another horse battery"}'))
write(R, "me-totp", b"\x00" + jpost("POST", "/users/me/totp", "@L", b"{}") +
      jpost("POST", "/users/me/totp/confirm", "@L", b'{"code":"123456"}') +
      jpost("DELETE", "/users/me/totp", "@L", b'{"code":"000000"}'))
write(R, "insert-private", b"\x03" + b'{"event":"user.0123456789abcdef0123456789abcdef.note","data":1}')
write(R, "insert-forbidden", b"\x03" + b'{"event":"staff.memo","data":{"x":1}}')
write(R, "login-totp", b"\x02" + b'{"username":"alice","password":"correct horse battery","totp":"123456"}')
write(R, "users-valid", b"\x01" + b'{"username":"alice","password":"correct horse battery"}')
write(R, "users-short-password", b"\x01" + b'{"username":"bob","password":"short"}')
write(R, "users-bad-types", b"\x01" + b'{"username":["x"],"password":12345678}')
write(R, "login-valid", b"\x02" + b'{"username":"alice","password":"correct horse battery"}')
write(R, "login-unknown", b"\x0a" + b'{"username":"nobody","password":"whatever1"}')
write(R, "insert-object", b"\x03" + b'{"event":"score","data":{"a":[1,2.5e10,"x\\u00e9"],"b":null}}')
write(R, "insert-bignum", b"\x03" + b'{"data" : 123456789012345678901234567890 , "event" : "big"}')
write(R, "insert-string", b"\x13" + b'{"event":"\\u00e9v\\u00e9nement","data":"line\\nbreak \\"quoted\\""}')
write(R, "insert-dup", b"\x0b" + b'{"event":"a","data":1,"data":[true,false]}')
write(R, "insert-no-data", b"\x03" + b'{"event":"a"}')
write(R, "sse-filter", b"\x04" + b"events=score,big")
write(R, "sse-resume", b"\x04" + b"lastEventId=1")
write(R, "sse-resume-bad", b"\x0c" + b"lastEventId=abc&events=a")
write(R, "sse-ticket", b"\x05" + b"events=score")
write(R, "sse-ticket-resume", b"\x0d" + b"lastEventId=2")
write(R, "sse-header-resume", b"\x06" + b"Last-Event-ID: 1")
write(R, "sse-header-origin", b"\x0e" + b"Origin: http://example.com\r\nLast-Event-ID: 0")
write(R, "auth-login", b"\x07" + b"Bearer @L")
write(R, "auth-ticket", b"\x07" + b"Bearer @T")
write(R, "auth-none", b"\x07" + b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.")
write(R, "auth-lower", b"\x0f" + b"bearer    @L")

# ---- fuzz_json_raw: JSON objects ----
J = "json_raw"
write(J, "insert", b'{"event":"score","data":{"home":1,"away":2}}')
write(J, "spaces", b' {\n\t"event" : "a" ,\r\n "data" : [ 1 , 2 , { "x" : "y z" } ] }\n')
write(J, "escapes", b'{"d\\u0061ta":1,"data":"\\"quoted\\\\ \\/ \\b\\f\\n\\r\\t","x":"}"}')
write(J, "dup", b'{"data":1,"event":"a","data":{"again":true}}')
write(J, "bignum", b'{"data":123456789012345678901234567890,"f":-0.5e-300,"e":1E+2}')
write(J, "unicode", b'{"\\ud83d\\ude00":"\xf0\x9f\x98\x80","data":"\\u0000nul"}')
write(J, "nested", b'{"data":[[[[{"a":[{"b":[]}]}]]]],"empty":{}}')
write(J, "empty", b"{}")
write(J, "scalars", b'{"t":true,"f":false,"n":null,"data":""}')

# ---- fuzz_jwt: mode byte, then a token (0) or "<header>\0<payload>" signed by the harness (1-3) ----
T = "jwt"
claims = {"sub": "0123456789abcdef0123456789abcdef", "username": "alice", "iat": 1700000000, "exp": EXP_2100}
write(T, "valid-login", b"\x00" + token({"alg": "HS256", "typ": "JWT"}, claims))
write(T, "valid-ticket", b"\x00" + token({"alg": "HS256", "typ": "JWT"}, dict(claims, scope="sse")))
write(T, "expired", b"\x00" + token({"alg": "HS256", "typ": "JWT"}, dict(claims, exp=1600000000)))
write(T, "wrong-secret", b"\x00" + token({"alg": "HS256"}, claims, b"another secret"))
write(T, "alg-none", b"\x00" + b64url(b'{"alg":"none"}') + b"." + b64url(json.dumps(claims).encode()) + b".")
write(T, "alg-hs512", b"\x00" + token({"alg": "HS512"}, claims))
hp = lambda h, p: json.dumps(h).encode() + b"\x00" + json.dumps(p).encode()
write(T, "signed-claims", b"\x01" + hp({"alg": "HS256", "typ": "JWT"}, claims))
write(T, "signed-ticket", b"\x01" + hp({"alg": "HS256"}, dict(claims, scope="sse")))
write(T, "signed-types", b"\x01" + hp({"alg": "HS256"}, {"sub": 1, "exp": "4102444800", "iat": 1.5}))
write(T, "signed-long", b"\x01" + hp({"alg": "HS256"}, dict(claims, username="u" * 200)))
write(T, "signed-none", b"\x01" + hp({"alg": "none"}, claims))
write(T, "signed-dup-alg", b"\x01" + b'{"alg":"none","alg":"HS256"}\x00' + json.dumps(claims).encode())
write(T, "wrong-key", b"\x02" + hp({"alg": "HS256"}, claims))
write(T, "unsigned", b"\x03" + hp({"alg": "HS256"}, claims))

# ---- fuzz_ticket: a query string; @T = a valid ticket, @L = a valid login token ----
K = "ticket"
write(K, "ticket", b"ticket=@T&events=score,big&lastEventId=5")
write(K, "login-in-url", b"ticket=@L")
write(K, "encoded", b"events=%73core,b%2Cc&ticket=@T")
write(K, "empty-items", b"events=a,,b,&lastEventId=")
write(K, "empty", b"events=")
write(K, "plus", b"events=a+b&events=c")
write(K, "bad-ticket", b"ticket=" + b64url(b'{"alg":"HS256"}') + b".e30.AAAA")
write(K, "many", b"events=" + b",".join(b"e%d" % i for i in range(70)))
write(K, "utf8", b"events=%C3%A9v%C3%A9nement,%C2%85")

# ---- fuzz_config: argv strings separated by NUL, then \0\0 and environment strings ----
C = "config"
write(C, "defaults", b"")
write(C, "flags", b"--port=8080\x00--db\x00/tmp/x\x00--origin=http://a.example,http://b.example")
write(C, "secure", b"--secure\x00--key_path=key.pem\x00--cert_path=cert.pem")
write(C, "secure-missing", b"--secure=true")
write(C, "help", b"--port=0\x00--help")
write(C, "version", b"-v")
write(C, "env", b"--port=9000\x00\x00BROKER_PORT=8000\x00BROKER_JWT_SECRET=abcdefghijklmnopqrstuvwxyz012345\x00BROKER_X=1")
write(C, "two-word", b"--port\x008081\x00--secure\x00false\x00--log_level\x00debug")
write(C, "limits", b"--max_body=64\x00--max_header=1048576\x00--slow_consumer=conflate\x00--heartbeat=0")
write(C, "bad-int", b"--port=65536")
write(C, "unknown", b"--jwt_secre=hunter2hunter2hunter2")

# ---- fuzz_frame: id (8 LE), retry (4 LE), name length (2 LE), name, data [0xff 0xfe, next frame] ----
F = "frame"
def frame(id_, retry, name, data):
    return struct.pack("<qiH", id_, retry, len(name)) + name + data
write(F, "one", frame(1, 2000, b"score", b'{"home":1}'))
write(F, "batch", frame(41, 0, b"a", b"1") + b"\xff\xfe" + struct.pack("<qiH", 0, 0, 1) + b"b" + b"[2]")
write(F, "big-id", frame(2**63 - 1, -1, b"\xc3\xa9v\xc3\xa9nement", b'"x"'))
write(F, "negative", frame(-2**63, 0, b"", b""))
write(F, "long-name", frame(7, 1, b"n" * 255, b"null"))

# ---- fuzz_validate: byte strings ----
V = "validate"
for name, data in [("ascii", b"hello world"), ("latin", b"\xc3\xa9t\xc3\xa9"), ("emoji", b"\xf0\x9f\x98\x80"),
                   ("surrogate", b"\xed\xa0\x80"), ("beyond", b"\xf4\x90\x80\x80"),
                   ("overlong", b"\xc0\x80\xe0\x80\x80"), ("c1", b"a\xc2\x85b"), ("nul", b"a\x00b"),
                   ("truncated", b"ok\xe2\x82"), ("del", b"x\x7f")]:
    write(V, name, data)

# ---- fuzz_h2: mode byte (bit 0 framed, bit 1 half-close, bit 2 split write), then for framed inputs
# records [kind][flags][sel][len] + payload (see fuzz_h2.c); the harness sends the preface and an
# empty SETTINGS first. kind & 15: 1 request HEADERS (template kind >> 4), 15 request with the
# payload as body, 4 RST_STREAM, 5 SETTINGS, 7 PING, 8 GOAWAY, 9 WINDOW_UPDATE, 10/11 CONTINUATION,
# 13 repeat, 14 pause ----
H = "h2"
def rec(kind, flags, sel, payload=b""):
    assert len(payload) < 256
    return bytes([kind, flags, sel, len(payload)]) + payload
def req(template, flags=0x01, text=b"", sel=0):
    return rec(template << 4 | 0x01, flags, sel, text)
def body(template, data, flags=0x00, sel=0):
    return rec(template << 4 | 0x0f, flags, sel, data)
SETTINGS_ACK = rec(0x05, 0x01, 0)
CANCEL = b"\x00\x00\x00\x08"
score = b'{"event":"score","data":{"home":1,"away":2}}'
write(H, "healthz", b"\x01" + req(0))
write(H, "metrics-head-deflate", b"\x01" + req(6, 0x31) + req(11, 0x31) + req(0, 0x21))
write(H, "insert", b"\x01" + SETTINGS_ACK + body(3, score))
write(H, "sse-insert-reset", b"\x01" + req(4, 0x01, b"events=score") + body(3, score) + rec(0x0e, 20, 0) +
      rec(0x04, 0, 5, CANCEL))
write(H, "users-login-me", b"\x01" + body(1, b'{"username":"alice","password":"correct horse battery"}') +
      body(2, b'{"username":"alice","password":"correct horse battery"}', 0x01) + req(7) + req(8))
write(H, "split-padded-priority", b"\x01" + req(4, 0x4b, b"events=a\nlast-event-id: 0") + req(5, 0x13))
write(H, "continuation", b"\x01" + req(0, 0x05) + rec(0x0b, 0x04, 0, b"x-extra: 1\nx-other: two"))
write(H, "rapid-reset", b"\x01" + req(0, 0x00) + rec(0x04, 0, 0, CANCEL) + rec(0x0d, 200, 1))
write(H, "ping-flood", b"\x01" + rec(0x07, 0, 0, b"12345678") + rec(0x0d, 40, 0))
write(H, "continuation-flood", b"\x01" + req(0, 0x04) + rec(0x0a, 0, 0) + rec(0x0d, 20, 0))
big = b'{"event":"big","data":"' + b"@L" * 16 + b'"}'  # about 3.7 kB of data once expanded
write(H, "window-shut-backlog", b"\x01" + rec(0x05, 0, 0, b"\x00\x04\x00\x00\x00\x00") +
      req(4, 0x01, b"events=big") + rec(0x0e, 10, 0) + body(3, big) + body(3, big) + body(3, big) +
      rec(0x0e, 30, 0) + rec(0x09, 0, 5, b"\x00\x00\x40\x00"))
write(H, "max-streams", b"\x01" + req(4) + rec(0x0d, 9, 0))
write(H, "preflight-admin-goaway", b"\x01" + req(10) + req(9, 0x01, b"limit=2") + req(13) +
      rec(0x09, 0, 4, b"\x00\x01\x00\x00") + rec(0x08, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00"))
write(H, "header-bomb", b"\x01" + req(0, 0x01, b"\nx-tokens: " + b"@L" * 40))
write(H, "raw", b"\x00" + b"\x00\x00\x09\x01\x05\x00\x00\x00\x01\x82\x84\x86\x41\x04fuzz" +
      b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"pingpong")
write(H, "free-form-half-close", b"\x03" + req(12, 0x01, b":method: GET\n:scheme: http\n:path: /healthz\n"
      b":authority: fuzz"))
# mode bit 3: the connection is parked for 3 s (deadlines, heartbeats, token expiry reach it)
write(H, "park-incomplete", b"\x09" + req(0, 0x00) + req(3, 0x00) + rec(0x00, 0, 0, b'{"event":'))
write(H, "park-idle", b"\x09" + req(6))
write(H, "park-expiring-stream", b"\x09" + req(14, 0x01, b"events=score"))
write(H, "park-window-shut", b"\x09" + rec(0x05, 0, 0, b"\x00\x04\x00\x00\x00\x00") + req(4) + req(5, 0x01, b"events=big"))
