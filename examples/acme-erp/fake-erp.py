#!/usr/bin/env python3
"""A stand-in for "Acme ERP" and "Progix", for trying examples/acme-erp/ by hand.

Acme ERP (under /acme): PUT/DELETE /acme/webhooks (subscriptions; needs X-Api-Key),
GET /acme/customers/<id>, and POST /acme/emit/<event> which makes it call the subscribed
webhook URLs with the body you send. Progix (under /progix): POST /progix/api/<kind> records
what arrives (needs the bearer token) and prints it.

    python3 examples/acme-erp/fake-erp.py 9100 acme-key progix-token
    python3 examples/acme-erp/fake-erp.py --detach 9100 acme-key progix-token

With --detach it returns once it listens and goes on serving in the background (what you
type next can rely on it being there; `&` alone would race with it).

The crates/server/tests/acme.rs test runs the same story with a Rust fake.
"""

import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DETACH = "--detach" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--detach"]
PORT = int(ARGS[0]) if len(ARGS) > 0 else 9100
ACME_KEY = ARGS[1] if len(ARGS) > 1 else "acme-key"
PROGIX_TOKEN = ARGS[2] if len(ARGS) > 2 else "progix-token"
subscriptions = {"list": [], "secret": ""}


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null")

    def acme_ok(self):
        if self.headers.get("X-Api-Key") != ACME_KEY:
            self.reply(401, {"error": "bad X-Api-Key"})
            return False
        return True

    def do_PUT(self):
        if self.path == "/acme/webhooks" and self.acme_ok():
            b = self.body()
            subscriptions["list"], subscriptions["secret"] = b.get("subscriptions", []), b.get("secret", "")
            print("acme: registered", json.dumps(subscriptions["list"]), flush=True)
            self.reply(200, {"registered": True})

    def do_DELETE(self):
        if self.path == "/acme/webhooks" and self.acme_ok():
            subscriptions["list"] = []
            print("acme: webhooks removed", flush=True)
            self.reply(204)

    def do_GET(self):
        if self.path.startswith("/acme/customers/") and self.acme_ok():
            cid = int(self.path.rsplit("/", 1)[1])
            self.reply(200, {"id": cid, "name": f"Customer {cid}", "email": f"C{cid}@Acme.Example", "active": cid != 13})
        elif not self.path.startswith("/acme/"):
            self.reply(404, {"error": "no such path"})

    def do_POST(self):
        if self.path.startswith("/acme/emit/"):
            event, body = self.path.rsplit("/", 1)[1], self.body()
            sent = []
            for s in subscriptions["list"]:
                if s.get("event") == event:
                    req = urllib.request.Request(s["url"], data=json.dumps(body).encode(), method="POST",
                                                 headers={"Content-Type": "application/json", "X-Acme-Key": subscriptions["secret"]})
                    with urllib.request.urlopen(req) as r:
                        sent.append({"url": s["url"], "status": r.status})
            self.reply(200, {"sent": sent})
        elif self.path.startswith("/progix/api/"):
            if self.headers.get("Authorization") != f"Bearer {PROGIX_TOKEN}":
                return self.reply(401, {"error": "bad token"})
            print("progix:", self.path.rsplit("/", 1)[1], json.dumps(self.body()), flush=True)
            self.reply(201, {"id": "p-1"})
        else:
            self.reply(404, {"error": "no such path"})

    def log_message(self, *args):
        pass


# Listening before saying so (and, detached, before the command returns).
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(f"fake Acme ERP and Progix on http://127.0.0.1:{PORT}", flush=True)
if DETACH and os.fork() > 0:
    os._exit(0)
server.serve_forever()
