#!/usr/bin/env python3
"""A fast local application for bench/sip-load: answer_url returns an NCCO connecting the call
to the SIPp far end; event_url accepts everything. Threaded so it never limits the benchmark."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CALLEE = sys.argv[2]
NCCO = json.dumps([{"action": "connect", "timeout": 30,
                    "endpoint": [{"type": "sip", "uri": f"sip:bench@{CALLEE}"}]}]).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, body=b""):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(NCCO if self.path.startswith("/answer") else b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(NCCO if self.path.startswith("/answer") else b"")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops SYNs under load, and each drop costs a 1 s retransmission.
    request_queue_size = 4096


Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
