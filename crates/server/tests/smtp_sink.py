"""An independent SMTP server for the server's notification tests, on aiosmtpd.

    python3 smtp_sink.py PORT OUTDIR

Each accepted message is written to OUTDIR as msg-N.eml (the raw DATA) and msg-N.json (the
envelope), renamed into place so a reader never sees half a file. Runs until killed.
"""

import json
import os
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, outdir):
        self.outdir, self.count, self.lock = outdir, 0, threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.outdir, f"msg-{n}")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Message accepted"


port, outdir = int(sys.argv[1]), sys.argv[2]
controller = Controller(Handler(outdir), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
