#!/usr/bin/env python3
"""Docs test: run the ```sh blocks of README.md and docs/*.md against a real Flowgate server.

For each markdown file with runnable blocks: start a fresh `flowgate serve` (temporary data
directory, free port, known bootstrap and admin tokens), then run the file's blocks in order in
ONE bash session (variables and background processes carry over between blocks), each block
with `set -e -o pipefail` semantics and a 60 s timeout. A failing block is reported with its
file:line, the failing command and the output; the rest of that file is not run (unless
--keep-going) and the next file starts. See tests/docs/README.md.

    python3 tests/docs/run.py [FILE.md ...] [--keep-going] [--strict-http] [-v]

Standard library only.
"""

import argparse
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHELL_LANGS = {"sh", "bash", "shell"}
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\w[\w-]*)\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
RS = "\x1e"  # separates the blocks' output in the session's log


# ---------------------------------------------------------------------------------------------
# Markdown: the shell blocks and their markers

class Block:
    def __init__(self, path, line, lines, skip):
        self.path = path          # relative to the repo
        self.line = line          # 1-based line of the opening fence
        self.lines = lines        # the block's lines (dedented by the fence's indentation)
        self.skip = skip          # None, or the reason given in the skip marker
        self.status = None        # ok | failed | timeout | skipped | not-run
        self.output = ""
        self.fail = None          # (md line, exit code, bash command, expected text or None)
        self.http = []            # (md line, HTTP status) of curl calls answered >= 400
        self.commands = {}        # md line -> source text of the command starting there

    @property
    def where(self):
        return f"{self.path}:{self.line}"


def parse_markdown(path):
    rel = os.path.relpath(path, REPO)
    with open(path, encoding="utf-8") as f:
        text = f.read().split("\n")
    blocks, i = [], 0
    while i < len(text):
        m = FENCE.match(text[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        start, body, i = i, [], i + 1
        while i < len(text):
            s = text[i].strip()
            if s.startswith(fence[0] * len(fence)) and not s.strip(fence[0]):
                break
            line = text[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        i += 1
        if lang not in SHELL_LANGS:
            continue
        skip = None
        j = start - 1
        while j >= 0 and not text[j].strip():
            j -= 1
        if j >= 0:
            mm = MARKER.match(text[j])
            if mm:
                if mm.group(1) != "skip":
                    sys.exit(f"{rel}:{j + 1}: unknown docs-test marker `{mm.group(1)}` (only `skip`)")
                skip = mm.group(2).strip().strip("()").strip() or "no reason given"
        blocks.append(Block(rel, start + 1, body, skip))
    return blocks


# ---------------------------------------------------------------------------------------------
# Shell: split a block into logical commands (quotes, continuations, heredocs, compounds)

OPEN_KW = {"if", "for", "while", "until", "case", "select", "{"}
CLOSE_KW = {"fi", "done", "esac", "}"}
CMD_START_AFTER = {";", "&&", "||", "|", "(", "then", "do", "else", "elif", "&"}


def scan_line(line, st):
    """Advance the lexer state over one line; returns the line's unquoted words (for keywords)."""
    words, cur, i, n = [], "", 0, len(line)

    def flush():
        nonlocal cur
        if cur:
            words.append(cur)
            cur = ""

    while i < n:
        c = line[i]
        if st["quote"] == "'":
            if c == "'":
                st["quote"] = None
            i += 1
            continue
        if st["quote"] == '"':
            if c == "\\":
                i += 2
                continue
            if c == '"':
                st["quote"] = None
            elif line.startswith("$(", i):
                st["parens"] += 1
                i += 1
            i += 1
            continue
        # unquoted
        if c == "\\":
            if i == n - 1:
                st["cont"] = True
            i += 2
            cur += "x"
            continue
        if c in "'\"":
            st["quote"] = c
            cur += "x"
        elif c == "#" and not cur:
            break  # a comment runs to the end of the line
        elif line.startswith("<<", i) and not line.startswith("<<<", i):
            m = re.match(r"<<-?\s*(['\"]?)([\w.-]+)\1", line[i:])
            if m:
                st["heredocs"].append(m.group(2))
                i += m.end()
                flush()
                continue
            cur += c
        elif c.isspace():
            flush()
        elif c in ";|&()":
            flush()
            op = line[i:i + 2] if line[i:i + 2] in ("&&", "||", ";;") else c
            if c == "(":
                st["parens"] += 1
            elif c == ")" and st["parens"] > 0:
                st["parens"] -= 1
            words.append(op)
            i += len(op)
            continue
        elif line.startswith("$(", i):
            st["parens"] += 1
            cur += "$("
            i += 2
            continue
        else:
            cur += c
        i += 1
    flush()
    return words


def split_commands(lines):
    """Yields ("blank"|"comment"|"expect"|"cmd", first index, [lines])."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            out.append(("blank", i, [line]))
            i += 1
            continue
        if s.startswith("#=>"):
            out.append(("expect", i, [line]))
            i += 1
            continue
        if s.startswith("#"):
            out.append(("comment", i, [line]))
            i += 1
            continue
        st = {"quote": None, "parens": 0, "heredocs": [], "cont": False}
        depth, start, cmd = 0, i, []
        while i < len(lines):
            line = lines[i]
            cmd.append(line)
            i += 1
            st["cont"] = False
            words = scan_line(line, st)
            at_start = True
            for w in words:
                if at_start and w in OPEN_KW:
                    depth += 1
                elif at_start and w in CLOSE_KW:
                    depth = max(0, depth - 1)
                at_start = w in CMD_START_AFTER or (at_start and w in OPEN_KW)
            while st["heredocs"] and i < len(lines):
                delim = st["heredocs"].pop(0)
                while i < len(lines):
                    cmd.append(lines[i])
                    i += 1
                    if lines[i - 1].strip() == delim:
                        break
            tail = re.sub(r"\s+#.*$", "", line).rstrip() if st["quote"] is None else line
            if (st["quote"] or st["cont"] or st["parens"] > 0 or depth > 0
                    or tail.endswith(("|", "&&", "||"))):
                continue
            break
        out.append(("cmd", start, cmd))
    return out


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


SERVE_ALONE = re.compile(r"^\s*(cargo\s+run\b[^#]*?\s--\s+serve|flowgate\s+serve)\s*(#.*)?$")
ALIAS = re.compile(r"^\s*alias\s+flowgate=")


def block_script(block, port):
    """The bash text of one block, meant to be `source`d by the session's driver."""
    def subst(text):
        return re.sub(r"\b(127\.0\.0\.1|localhost):8080\b", lambda m: f"{m.group(1)}:{port}", text)

    items = split_commands([subst(l) for l in block.lines])
    out = ['trap \'__dt_rc=$?; __dt_report "$__dt_rc" "$BASH_COMMAND"; trap - ERR; return $__dt_rc\' ERR']
    for k, (kind, idx, lines) in enumerate(items):
        mdline = block.line + 1 + idx
        if kind in ("blank", "comment"):
            out.extend(lines)
            continue
        if kind == "expect":
            continue  # handled with the command before it
        text = "\n".join(lines)
        block.commands[mdline] = text
        expects = []
        for kind2, idx2, lines2 in items[k + 1:]:
            if kind2 != "expect":
                break
            expects.append((block.line + 1 + idx2, lines2[0].strip()[3:].strip()))
        out.append(f"__dt_line={mdline}")
        # `#=> HTTP 500`: the curl of this command is expected to get that status.
        http_ok = [e for _, e in expects if re.fullmatch(r"HTTP \d{3}", e)]
        expects = [(l, e) for l, e in expects if not re.fullmatch(r"HTTP \d{3}", e)]
        out.append(f"export __dt_http_ok={http_ok[0][5:] if http_ok else ''}")
        if len(lines) == 1 and ALIAS.match(text):
            out.append(": docs-test: alias ignored, flowgate is on PATH")
        elif len(lines) == 1 and SERVE_ALONE.match(text):
            out.append(": docs-test: skipped, the server is already running")
        elif expects and not re.sub(r"\s+#.*$", "", text).rstrip().endswith("&"):
            out.append('__dt_cap=1; : >"$__DT_CAP"')
            out.append("{ " + text)
            out.append('} >"$__DT_CAP" 2>&1')
            out.append('__dt_cap=0; cat "$__DT_CAP"')
            for eline, etext in expects:
                out.append(f"__dt_expect {eline} {sh_quote(etext)}")
        else:
            out.append(text)
    out.append("trap - ERR")
    return "\n".join(out) + "\n"


DRIVER_HEAD = r"""
exec 3>>"$DOCS_TEST_STATUS"
set -o pipefail
export __dt_line=0
__dt_cap=0
__dt_report() {
  if [ "$__dt_cap" = 1 ]; then cat "$__DT_CAP"; __dt_cap=0; fi
  local c="${2//$'\n'/ }"
  printf 'FAIL %s %s %s %s\n' "$__dt_block" "$__dt_line" "$1" "$c" >&3
}
__dt_expect() {
  __dt_line=$1
  if grep -qF -- "$2" "$__DT_CAP"; then return 0; fi
  printf 'EXPECT %s %s %s\n' "$__dt_block" "$1" "$2" >&3
  echo "docs-test: the output does not contain: $2"
  return 1
}
"""


def driver_script(blockfiles, keep_going):
    out = [DRIVER_HEAD]
    for n, path in blockfiles:
        out.append(f"__dt_block={n}; printf '{RS}DT:{n}{RS}\\n'; printf 'BEGIN {n}\\n' >&3")
        out.append(f"source {sh_quote(path)}")
        out.append(f"__dt_src=$?; printf 'END {n} %s %s\\n' \"$__dt_src\" \"$__dt_line\" >&3")
        if not keep_going:
            out.append('[ "$__dt_src" = 0 ] || exit "$__dt_src"')
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# The sandbox: wrappers on PATH, a working directory whose ./data is the server's

def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def make_bin(bindir, flowgate, real_curl):
    os.makedirs(bindir)
    write_exec(os.path.join(bindir, "flowgate"), f"""#!/bin/sh
if [ "$1" = serve ]; then
  echo "docs-test: a Flowgate server is already running for this file ($FLOWGATE_URL);" \\
       "a block that starts another needs <!-- docs-test: skip (reason) -->" >&2
  exit 2
fi
exec {sh_quote(flowgate)} "$@"
""")
    # `cargo run ... -- ARGS` runs the built binary; nothing else of cargo is run here.
    write_exec(os.path.join(bindir, "cargo"), """#!/bin/sh
if [ "$1" = run ]; then
  while [ $# -gt 0 ]; do a=$1; shift; [ "$a" = -- ] && exec flowgate "$@"; done
fi
echo "docs-test: cargo is not run by the docs test (cargo $*); mark the block skip" >&2
exit 2
""")
    # curl as usual, but an HTTP status >= 400 is noted (and fails with --strict-http).
    if real_curl:
        write_exec(os.path.join(bindir, "curl"), f"""#!/bin/sh
h=$(mktemp) || exit 2
{sh_quote(real_curl)} -D "$h" "$@"
rc=$?
st=$(sed -n 's/^HTTP\\/[0-9.]* \\([0-9][0-9][0-9]\\).*/\\1/p' "$h" | tail -n 1)
rm -f "$h"
if [ "$rc" = 0 ] && [ -n "$st" ] && [ "$st" -ge 400 ] && [ "$st" != "${{__dt_http_ok:-}}" ]; then
  printf 'HTTP %s %s\\n' "${{__dt_line:-0}}" "$st" >>"$DOCS_TEST_STATUS"
  if [ "$DOCS_TEST_STRICT_HTTP" = 1 ]; then echo >&2; echo "docs-test: curl: HTTP $st" >&2; exit 22; fi
fi
exit $rc
""")


def make_workdir(tmp):
    work = os.path.join(tmp, "work")
    os.makedirs(os.path.join(work, "data"))
    os.chmod(os.path.join(work, "data"), 0o700)
    for name in os.listdir(REPO):
        if name in ("data", ".git"):
            continue
        src = os.path.join(REPO, name)
        if name == "examples":   # small, and blocks may write next to the examples
            shutil.copytree(src, os.path.join(work, name), symlinks=True)
        else:
            os.symlink(src, os.path.join(work, name))
    return work


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc, grace=5.0):
    """SIGTERM the process group of proc (it leads its own session), then SIGKILL what is left."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline:
            proc.poll()  # reap the leader, so that an empty group reads as gone
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            continue  # still there: next signal
        break
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass


def base_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}


# ---------------------------------------------------------------------------------------------
# One file

def run_file(blocks, args, real_curl):
    runnable = [b for b in blocks if not b.skip]
    for b in blocks:
        if b.skip:
            b.status = "skipped"
    if not runnable:
        return
    tmp = tempfile.mkdtemp(prefix="flowgate-docs-")
    try:
        work = make_workdir(tmp)
        data = os.path.join(work, "data")
        bindir = os.path.join(tmp, "bin")
        make_bin(bindir, args.binary, real_curl)
        token = "fgt_docstest_" + secrets.token_hex(12)
        admin = "fga_docstest_" + secrets.token_hex(12)
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        env = base_env()
        env.update(FLOWGATE_BOOTSTRAP_TOKEN=token, FLOWGATE_ADMIN_TOKEN=admin)
        server_log = open(os.path.join(tmp, "server.log"), "ab")
        server = subprocess.Popen(
            [args.binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
            cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log,
            start_new_session=True)
        try:
            if not wait_healthy(url, server, 30):
                with open(os.path.join(tmp, "server.log"), errors="replace") as f:
                    log = f.read()[-3000:]
                for b in runnable:
                    b.status, b.output = "failed", "the server did not start:\n" + log
                    b.fail = (b.line, "-", "flowgate serve", None)
                return
            # The docs read the tokens from ./data, as a server started without them writes.
            for name, value in (("bootstrap-token", token), ("admin-token", admin)):
                p = os.path.join(data, name)
                if not os.path.exists(p):
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
                    os.write(fd, (value + "\n").encode())
                    os.close(fd)
            run_session(runnable, tmp, work, bindir, url, token, admin, port, args)
        finally:
            kill_group(server, grace=12.0)
            server_log.close()
    finally:
        if args.keep:
            print(f"   kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def wait_healthy(url, server, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def run_session(blocks, tmp, work, bindir, url, token, admin, port, args):
    files = []
    for n, b in enumerate(blocks, 1):
        p = os.path.join(tmp, f"block-{n}.sh")
        with open(p, "w") as f:
            f.write(block_script(b, port))
        files.append((n, p))
    driver = os.path.join(tmp, "session.sh")
    with open(driver, "w") as f:
        f.write(driver_script(files, args.keep_going))
    status_path = os.path.join(tmp, "status")
    out_path = os.path.join(tmp, "output")
    open(status_path, "w").close()

    env = base_env()
    env.update(
        FLOWGATE_URL=url, FLOWGATE_TOKEN=token, FLOWGATE_ADMIN_TOKEN=admin,
        PATH=bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        DOCS_TEST_STATUS=status_path, __DT_CAP=os.path.join(tmp, "capture"),
        DOCS_TEST_STRICT_HTTP="1" if args.strict_http else "0")
    with open(out_path, "ab") as out:
        bash = subprocess.Popen(["bash", "--noprofile", "--norc", driver], cwd=work, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    events, current, started, timed_out, pos = [], None, None, None, 0
    try:
        while True:
            done = bash.poll() is not None
            with open(status_path, errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
            nl = chunk.rfind("\n")
            if nl >= 0:
                for line in chunk[:nl].split("\n"):
                    parts = line.split(" ")
                    events.append((parts, current))
                    if parts[0] == "BEGIN":
                        current, started = int(parts[1]), time.time()
                    elif parts[0] == "END":
                        current = None
                pos += len(chunk[:nl + 1].encode())
            if done:
                break
            if current is not None and time.time() - started > args.timeout:
                timed_out = current
                break
            time.sleep(0.1)
    finally:
        kill_group(bash, grace=3.0)
    with open(out_path, "rb") as f:
        output = f.read().decode("utf-8", "replace")
    chunks = {}
    for part in output.split(RS + "DT:")[1:]:
        n, _, rest = part.partition(RS)
        chunks[int(n)] = rest.lstrip("\n")

    for n, b in enumerate(blocks, 1):
        b.output = chunks.get(n, "")
    for parts, cur in events:
        kind = parts[0]
        if kind == "FAIL":
            b = blocks[int(parts[1]) - 1]
            if b.fail is None:
                b.fail = (int(parts[2]), parts[3], " ".join(parts[4:]), None)
        elif kind == "EXPECT":
            b = blocks[int(parts[1]) - 1]
            b.fail = (int(parts[2]), "-", None, " ".join(parts[3:]))
        elif kind == "HTTP" and cur is not None:
            blocks[cur - 1].http.append((int(parts[1]), parts[2]))
        elif kind == "END":
            b = blocks[int(parts[1]) - 1]
            b.status = "ok" if parts[2] == "0" else "failed"
            if b.status == "failed" and b.fail is None:
                # no ERR trap: a syntax error (or `exit`) in the command after __dt_line
                b.fail = (int(parts[3]), parts[2], "(bash: syntax error or exit, see the output)", None)
    if timed_out is not None:
        b = blocks[timed_out - 1]
        b.status = "timeout"
    for b in blocks:
        if b.status is None:
            b.status = "not-run"


# ---------------------------------------------------------------------------------------------
# Report

def tail(text, n):
    lines = text.rstrip("\n").split("\n")
    if len(lines) > n:
        lines = [f"… ({len(lines) - n} lines before)"] + lines[-n:]
    return "\n".join("   | " + l for l in lines)


def report(blocks, args):
    for b in blocks:
        if b.status == "skipped":
            print(f"skip {b.where}  ({b.skip})")
        elif b.status == "not-run":
            print(f"---- {b.where}  not run (an earlier block of the file failed)")
        elif b.status == "ok":
            print(f"ok   {b.where}")
            if args.verbose and b.output.strip():
                print(tail(b.output, 10_000))
        else:
            print(f"FAIL {b.where}" + ("  (timed out after %ds)" % args.timeout if b.status == "timeout" else ""))
            if b.fail:
                line, rc, bashcmd, expect = b.fail
                src = b.commands.get(line, "")
                if expect is not None:
                    print(f"   {b.path}:{line}: the output of the command before does not contain: {expect}")
                else:
                    print(f"   {b.path}:{line}: exit {rc}: {src.strip() or bashcmd}")
                    if bashcmd and src and bashcmd not in src:
                        print(f"   (failing simple command: {bashcmd})")
            print(tail(b.output or "(no output)", 10_000 if args.verbose else 25))
        for line, st in b.http:
            src = b.commands.get(line, "").strip().split("\n")[0].rstrip(" \\")
            print(f"   warning {b.path}:{line}: curl got HTTP {st}: {src}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="markdown files (default: README.md docs/*.md)")
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "debug", "flowgate"))
    ap.add_argument("--timeout", type=int, default=60, help="seconds per block (60)")
    ap.add_argument("--keep-going", action="store_true",
                    help="after a failing block, run the file's next blocks in the same session")
    ap.add_argument("--strict-http", action="store_true",
                    help="a curl answered with HTTP >= 400 fails its block (default: a warning)")
    ap.add_argument("--skip", action="append", default=[], metavar="FILE:LINE",
                    help="treat this block as marked skip (to try a marker before adding it)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every block's output")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"no Flowgate binary at {args.binary} (build it, or pass --binary)")
    files = [os.path.abspath(f) for f in args.files] or (
        [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))))
    real_curl = shutil.which("curl")

    everything = []
    for path in files:
        blocks = parse_markdown(path)
        for b in blocks:
            if b.where in args.skip and not b.skip:
                b.skip = "--skip"
        if not blocks:
            continue
        print(f"== {os.path.relpath(path, REPO)}", flush=True)
        run_file(blocks, args, real_curl)
        report(blocks, args)
        sys.stdout.flush()
        everything += blocks

    count = lambda *s: sum(1 for b in everything if b.status in s)
    failed = count("failed", "timeout")
    warnings = sum(len(b.http) for b in everything)
    print(f"\ndocs test: {count('ok', 'failed', 'timeout')} blocks run, {count('skipped')} skipped, "
          f"{failed} failed, {count('not-run')} not run after a failure, {warnings} HTTP warnings")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
