#!/usr/bin/env python3
"""faultproxy.py: an HTTP/1.1 forwarding proxy for the remote-store fault
tests and benchmarks, between a client (cairn, curl) and the S3 engine.
Multi-threaded, keep-alive on both sides (one upstream connection per client
connection); the request goes upstream byte for byte, Host included (SigV4
signs it), and the response comes back as sent, unless a fault says
otherwise. Standard library only.

  faultproxy.py --listen-port-file F --upstream http://127.0.0.1:PORT
                --control FILE [--stats FILE] [--port N]

It listens on 127.0.0.1 (port N, default any) and writes the port to F once
it accepts. The control file is read again for each request: key=value lines
('#' comments; a missing or empty file means no faults):

  latency_ms=N   added before every request is forwarded (all methods)
  fault=KIND     none | error | reset_before | reset_mid | truncate | flip | stall
                 error: answered here with `status` and an S3 XML error
                 (503: <Code>SlowDown</Code>, 500: InternalError), the
                 request body read and dropped; reset_before: the connection
                 reset (RST) before any response; reset_mid: the response
                 head and half the body sent, then a reset; truncate: the
                 head (Content-Length N) and `keep` bytes (default N/2) sent,
                 then the connection closed; flip: `bits` random bits
                 (default 1) of the response body flipped (2xx bodies only);
                 stall: the head and half the body sent, then `stall_ms`
                 (default 60000) of silence, then the rest. Faults other than
                 error and reset_before act on the response: a PUT they hit
                 has reached the engine (reset_mid: stored, answer lost)
  status=N       the error fault's status (default 503)
  methods=LIST   comma-separated methods the fault applies to, or all (default)
  match=TEXT     the fault applies only to request targets containing TEXT
  skip=N         the first N requests the fault applies to pass untouched
  count=N        then only N requests get the fault; rate=F (0..1) instead
                 gives each one the fault with probability F; neither: all
  keep=N         bytes the truncate fault lets through
  bits=N         bits the flip fault flips
  stall_ms=N     how long the stall fault stalls

skip and count restart whenever the file's content changes. The stats file
(default CONTROL.stats) is rewritten (atomically) after each request with
key=value lines: requests, METHOD=count per method, faults (injected),
GET_bytes (response body bytes sent for GETs), PUT_bytes (request body bytes
received for PUTs), GET_done (GETs answered, whatever the answer),
GET_inflight_max (the most GETs the proxy held at once: received, latency
included, and not yet answered; 0 when the control file last changed).
"""
import argparse
import http.client
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = 65536
ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
}


class Faults:
    """The control file, read per request, and the counters of its faults."""

    def __init__(self, control, stats):
        self.control = control
        self.stats_path = stats
        self.lock = threading.Lock()
        self.content = None
        self.seen = 0  # requests the current fault matched
        self.stats = {"requests": 0, "faults": 0, "GET_bytes": 0, "PUT_bytes": 0}
        self.stats.update({"GET_done": 0, "GET_inflight_max": 0})
        self.inflight = 0
        self.write_stats()

    def read(self):
        try:
            with open(self.control, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        conf = {}
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                k, v = line.split("=", 1)
                conf[k.strip()] = v.strip()
        return text, conf

    def decide(self, method, target):
        """(latency in s, fault kind or None, conf) for one request."""
        text, conf = self.read()
        with self.lock:
            if text != self.content:
                self.content = text
                self.seen = 0
                self.stats["GET_inflight_max"] = self.inflight
            self.stats["requests"] += 1
            self.stats[method] = self.stats.get(method, 0) + 1
            latency = float(conf.get("latency_ms", 0)) / 1000
            kind = conf.get("fault", "none")
            if kind == "none":
                return latency, None, conf
            methods = conf.get("methods", "all")
            if methods != "all" and method not in methods.upper().split(","):
                return latency, None, conf
            if conf.get("match", "") not in target:
                return latency, None, conf
            self.seen += 1
            n = self.seen - int(conf.get("skip", 0))
            if n <= 0:
                return latency, None, conf
            if "count" in conf:
                hit = n <= int(conf["count"])
            elif "rate" in conf:
                hit = random.random() < float(conf["rate"])
            else:
                hit = True
            if hit:
                self.stats["faults"] += 1
            return latency, kind if hit else None, conf

    def enter(self):
        with self.lock:
            self.inflight += 1
            self.stats["GET_inflight_max"] = max(self.stats["GET_inflight_max"], self.inflight)

    def leave(self):
        with self.lock:
            self.inflight -= 1
            self.stats["GET_done"] += 1

    def add(self, key, n):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def write_stats(self):
        with self.lock:
            text = "".join("%s=%d\n" % kv for kv in sorted(self.stats.items()))
            tmp = "%s.%d.tmp" % (self.stats_path, threading.get_ident())
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.stats_path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The status line and headers go out in one write, the body in others:
    # with Nagle's algorithm on, the body's first write waits for the ACK of
    # the headers, which the client delays (40 ms on Linux).
    disable_nagle_algorithm = True
    upstream = None  # (host, port), set by main
    faults = None

    def setup(self):
        super().setup()
        self.up = None

    def finish(self):
        super().finish()
        if self.up:
            self.up.close()

    def log_message(self, fmt, *args):  # keep stderr for real errors
        pass

    def reset(self):
        """Close the client connection with an RST."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def read_body(self):
        """The request body, raw (chunked framing kept), or b''."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            parts = []
            while True:
                line = self.rfile.readline(HOP)
                parts.append(line)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        t = self.rfile.readline(HOP)
                        parts.append(t)
                        if t in (b"\r\n", b"\n", b""):
                            return b"".join(parts)
                parts.append(self.rfile.read(size + 2))
        n = int(self.headers.get("Content-Length", 0) or 0)
        return self.rfile.read(n) if n else b""

    def send_error_fault(self, status):
        code, msg = ERRORS.get(status, ("InternalError", "fault injected"))
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>%s</Code><Message>%s</Message>"
            "<RequestId>faultproxy</RequestId></Error>" % (code, msg)
        ).encode()
        reason = http.client.responses.get(status, "Error")
        head = "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % (
            status,
            reason,
            len(body),
        )
        self.wfile.write(head.encode() + (body if self.command != "HEAD" else b""))

    def forward(self, body):
        """Send the request upstream (once more on a fresh connection when a
        kept-alive one turns out closed); returns the response."""
        for attempt in (0, 1):
            if self.up is None:
                self.up = http.client.HTTPConnection(*self.upstream)
            try:
                self.up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    self.up.putheader(k, v)
                self.up.endheaders()
                if body:
                    self.up.send(body)
                return self.up.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                self.up.close()
                self.up = None
                if attempt:
                    raise

    def handle_one_request(self):
        try:
            super().handle_one_request()
        finally:
            if self.faults and getattr(self, "command", None):
                self.faults.write_stats()

    def do_any(self):
        try:
            self.proxy()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: fine here

    def proxy(self):
        if self.command != "GET":
            self.proxy_one()
            return
        self.faults.enter()
        try:
            self.proxy_one()
        finally:
            self.faults.leave()

    def proxy_one(self):
        latency, kind, conf = self.faults.decide(self.command, self.path)
        if latency:
            time.sleep(latency)
        if kind == "reset_before":
            self.reset()
            return
        body = self.read_body()
        if self.command == "PUT":
            self.faults.add("PUT_bytes", len(body))
        if kind == "error":
            self.send_error_fault(int(conf.get("status", 503)))
            return
        try:
            resp = self.forward(body)
        except (OSError, http.client.HTTPException) as e:
            print("faultproxy: upstream: %s" % e, file=sys.stderr)
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.close_connection = True
            return
        chunked = "chunked" in (resp.getheader("Transfer-Encoding") or "").lower()
        has_body = self.command != "HEAD" and resp.status not in (204, 304) and resp.status >= 200
        data = resp.read() if (chunked and has_body) else None
        length = len(data) if data is not None else resp.length or 0
        head = ["HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)]
        head += ["%s: %s\r\n" % kv for kv in resp.getheaders()]
        head.append("\r\n")
        self.wfile.write("".join(head).encode("latin-1"))
        if resp.will_close or (resp.getheader("Connection") or "").lower() == "close":
            self.close_connection = True
        if not has_body:
            return
        stop = None  # bytes after which the fault cuts the body
        flips = set()
        stall = None  # bytes after which the stall fault stalls
        if kind in ("reset_mid", "truncate"):
            stop = int(conf.get("keep", length // 2)) if kind == "truncate" else length // 2
        elif kind == "stall":
            stall = length // 2
        elif kind == "flip" and 200 <= resp.status < 300 and length:
            flips = {random.randrange(length * 8) for _ in range(int(conf.get("bits", 1)))}
        sent = 0
        while True:
            if data is not None:
                piece, data = data[:HOP], data[HOP:]
            else:
                piece = resp.read(HOP)
            if not piece:
                break
            if flips:
                buf = bytearray(piece)
                for bit in flips:
                    if sent * 8 <= bit < (sent + len(buf)) * 8:
                        buf[bit // 8 - sent] ^= 1 << (bit % 8)
                piece = bytes(buf)
            if stall is not None and sent + len(piece) >= stall:
                self.wfile.write(self.chunk(piece[: stall - sent], chunked))
                time.sleep(float(conf.get("stall_ms", 60000)) / 1000)
                piece = piece[stall - sent :]
                sent, stall = stall, None
            if stop is not None and sent + len(piece) >= stop:
                piece = piece[: stop - sent]
                self.wfile.write(self.chunk(piece, chunked))
                sent += len(piece)
                break
            self.wfile.write(self.chunk(piece, chunked))
            sent += len(piece)
        if self.command == "GET":
            self.faults.add("GET_bytes", sent)
        if stop is not None:
            # The rest of the upstream body is not wanted: drop that connection.
            self.up.close()
            self.up = None
            if kind == "reset_mid":
                self.reset()
            else:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
        elif chunked:
            self.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def chunk(piece, chunked):
        if not chunked or not piece:
            return piece
        return b"%x\r\n%s\r\n" % (len(piece), piece)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_OPTIONS = do_PATCH = do_any


def main():
    ap = argparse.ArgumentParser(description="fault-injecting HTTP/1.1 proxy (see the top of this file)")
    ap.add_argument("--listen-port-file", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--stats")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or not up.hostname:
        sys.exit("faultproxy.py: --upstream must be http://HOST:PORT")
    Handler.upstream = (up.hostname, up.port or 80)
    Handler.faults = Faults(args.control, args.stats or args.control + ".stats")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    tmp = args.listen_port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.listen_port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
