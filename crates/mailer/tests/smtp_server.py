"""A real SMTP server for flowgate-mailer's integration tests, on aiosmtpd.

Each accepted message is written to OUTDIR as msg-N.json (envelope: mail_from, rcpt_tos)
and msg-N.eml (the raw DATA, as received). Each login attempt appends
"MECHANISM LOGIN ok|fail" to OUTDIR/auth.log. With --tls-cert it speaks STARTTLS (required
before MAIL) or implicit TLS. Runs until killed.
"""

import argparse
import json
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, outdir, data_reply):
        self.outdir = outdir
        self.data_reply = data_reply
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.outdir, f"msg-{n}")
        # Written under a temporary name and renamed, so the test never reads half a file.
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--data-reply", default="", help='e.g. "451 4.3.0 Try again later"')
    p.add_argument("--auth", default="", help="USER:PASSWORD; logging in is then required")
    p.add_argument("--auth-exclude", default="", help="comma-separated mechanisms not to offer")
    p.add_argument("--tls-cert", default="", help="PEM certificate chain; enables --tls-mode")
    p.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    p.add_argument("--tls-mode", default="starttls", choices=["starttls", "implicit"])
    args = p.parse_args()

    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)
        log = os.path.join(args.outdir, "auth.log")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == user.encode()
                and auth_data.password == password.encode()
            )
            login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
            with open(log, "a") as f:
                f.write(f"{mechanism} {login} {'ok' if ok else 'fail'}\n")
            # handled=False: aiosmtpd then sends the 535 itself.
            return AuthResult(success=ok, handled=False)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=False,
            auth_exclude_mechanism=[m for m in args.auth_exclude.split(",") if m],
        )

    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs.update(ssl_context=context)

    controller = Controller(
        Handler(args.outdir, args.data_reply), hostname="127.0.0.1", port=args.port, **kwargs
    )
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
