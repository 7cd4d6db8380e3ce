// The editor area: the YAML editor's line-number gutter, Tab, problem markers and Validate
// without a reload; Try it's Run without a reload, polling the run's steps until it ends.
// Everything the server sends as markup is its own escaped HTML, parsed into an inert
// <template>; problems and errors are written with textContent.
(function () {
  'use strict';

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const isJson = (res) => (res.headers.get('content-type') || '').includes('application/json');

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- The YAML editor -------------------------------------------------------------
  function editor(form) {
    const ta = document.getElementById('source');
    const box = document.getElementById('editor');
    const gutter = document.getElementById('gutter');
    const status = document.getElementById('editor-status');
    const list = document.getElementById('problem-list');
    const summary = document.getElementById('problems-summary');
    if (!ta || !box || !gutter || !list) return;

    // The problems shown, as the server listed them.
    let problems = Array.from(list.querySelectorAll('li')).map((li) => {
      const a = li.querySelector('a.problem');
      const m = li.querySelector('.message');
      return {
        line: a && a.dataset.line ? Number(a.dataset.line) : null,
        column: a && a.dataset.column ? Number(a.dataset.column) : null,
        message: m ? m.textContent : '',
        place: a ? a.textContent : '',
      };
    });
    let shownLines = -1;
    let escaped = false;

    const lineCount = () => ta.value.split('\n').length;

    function renderGutter(force) {
      const n = lineCount();
      ta.rows = Math.max(12, n + 1);
      if (n === shownLines && !force) return;
      shownLines = n;
      const byLine = new Map();
      for (const p of problems) {
        if (!p.line) continue;
        const l = Math.min(p.line, n);
        if (!byLine.has(l)) byLine.set(l, []);
        byLine.get(l).push(p);
      }
      const rows = [];
      for (let i = 1; i <= n; i++) {
        const row = el('div', 'ln');
        row.dataset.line = String(i);
        const ps = byLine.get(i);
        if (ps) {
          row.classList.add('bad');
          const message = ps.map((p) => p.message).join('; ');
          const mark = el('a', 'mark', '✗');
          mark.href = '#source';
          mark.dataset.line = String(i);
          mark.dataset.column = String(ps[0].column || 1);
          mark.title = message;
          mark.setAttribute('aria-label', `Problem at line ${i}: ${message}`);
          row.appendChild(mark);
        }
        const num = el('span', null, String(i));
        num.setAttribute('aria-hidden', 'true');
        row.appendChild(num);
        rows.push(row);
      }
      gutter.replaceChildren(...rows);
    }

    function place(p) {
      if (p.line && p.column) return `line ${p.line}, column ${p.column}`;
      if (p.line) return `line ${p.line}`;
      if (p.path) return `at ${p.path}`;
      return 'the document';
    }

    function renderProblems() {
      const items = problems.map((p) => {
        const li = el('li');
        const a = el('a', 'problem', p.place || place(p));
        a.href = '#source';
        if (p.line) a.dataset.line = String(p.line);
        if (p.column) a.dataset.column = String(p.column);
        li.append(a, ': ', el('span', 'message', p.message));
        if (p.path && p.line) li.append(' ', el('span', 'sub', `(${p.path})`));
        return li;
      });
      list.replaceChildren(...items);
      summary.textContent = problems.length === 0
        ? 'None found: the definition is valid.'
        : `${problems.length} ${problems.length === 1 ? 'problem' : 'problems'} found.`;
      if (problems.length) ta.setAttribute('aria-invalid', 'true'); else ta.removeAttribute('aria-invalid');
      renderGutter(true);
    }

    // Moves the caret to a line and column (from 1) and brings it into view.
    function goTo(line, column) {
      const lines = ta.value.split('\n');
      const l = Math.max(1, Math.min(line, lines.length));
      let offset = 0;
      for (let i = 0; i < l - 1; i++) offset += lines[i].length + 1;
      offset += Math.min(Math.max((column || 1) - 1, 0), lines[l - 1].length);
      ta.focus();
      ta.setSelectionRange(offset, offset);
      const lh = parseFloat(getComputedStyle(ta).lineHeight) || 18;
      box.scrollTop = Math.max(0, (l - 4) * lh);
    }

    document.addEventListener('click', (e) => {
      const a = e.target.closest && e.target.closest('a.problem, a.mark');
      if (!a || !a.dataset.line) return;
      e.preventDefault();
      goTo(Number(a.dataset.line), Number(a.dataset.column || 1));
    });

    ta.addEventListener('input', () => renderGutter(false));
    // The textarea grows with its text, so the box scrolls both columns together; should the
    // textarea scroll itself (before the next input), the box takes the scroll over.
    ta.addEventListener('scroll', () => {
      if (ta.scrollTop) {
        box.scrollTop += ta.scrollTop;
        ta.scrollTop = 0;
      }
    });

    // Tab inserts two spaces (Shift+Tab removes up to two at the line's start); Esc, then
    // Tab, leaves the editor as usual.
    ta.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { escaped = true; return; }
      if (e.key !== 'Tab' || e.ctrlKey || e.altKey || e.metaKey || escaped) { escaped = false; return; }
      e.preventDefault();
      const start = ta.selectionStart;
      if (e.shiftKey) {
        const lineStart = ta.value.lastIndexOf('\n', start - 1) + 1;
        const n = ta.value.startsWith('  ', lineStart) ? 2 : ta.value.startsWith(' ', lineStart) ? 1 : 0;
        if (n) {
          ta.setRangeText('', lineStart, lineStart + n, 'preserve');
          ta.setSelectionRange(Math.max(lineStart, start - n), Math.max(lineStart, start - n));
        }
      } else if (!document.execCommand || !document.execCommand('insertText', false, '  ')) {
        ta.setRangeText('  ', start, ta.selectionEnd, 'end');
      }
      renderGutter(false);
    });

    // Validate without a reload; Apply stays a plain form post.
    form.addEventListener('submit', async (e) => {
      if (!e.submitter || e.submitter.value !== 'validate' || !window.fetch) return;
      e.preventDefault();
      status.textContent = 'Validating…';
      const csrf = form.querySelector('input[name="csrf"]').value;
      let res;
      try {
        res = await fetch(form.getAttribute('action'), {
          method: 'POST',
          headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ csrf, source: ta.value, action: 'validate' }),
          credentials: 'same-origin',
        });
      } catch (err) {
        status.textContent = 'Could not reach the server; try again.';
        return;
      }
      if (!res.ok || !isJson(res)) {
        status.textContent = res.status === 403
          ? 'Refused: this page is out of date; reload it.'
          : `Could not validate (HTTP ${res.status}); try again.`;
        return;
      }
      const data = await res.json();
      problems = (data.problems || []).map((p) => ({
        line: p.line || null, column: p.column || null, path: p.path || '', message: String(p.message || ''),
      }));
      const notice = document.getElementById('notice');
      if (notice) notice.remove();
      renderProblems();
      status.textContent = problems.length === 0
        ? 'Valid: no problems found.'
        : `${problems.length} ${problems.length === 1 ? 'problem' : 'problems'}: see the list below.`;
    });

    renderGutter(true);
  }

  // ---- Try it ------------------------------------------------------------------------
  function tryIt(form) {
    const state = document.getElementById('try-state');
    const result = document.getElementById('try-result');
    const button = document.getElementById('try-run');
    let run = 0;
    let lastHtml = '';

    function clearErrors() {
      form.querySelectorAll('.field-error').forEach((p) => p.remove());
      form.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
      const old = document.getElementById('run-error');
      if (old) old.remove();
    }

    function showErrors(errors) {
      for (const key of ['body', 'headers', 'query']) {
        if (!errors[key]) continue;
        const control = document.getElementById(`try-${key}`);
        const p = el('p', 'field-error');
        p.id = `try-${key}-error`;
        p.setAttribute('role', 'alert');
        const icon = el('span', null, '✗ ');
        icon.setAttribute('aria-hidden', 'true');
        p.append(icon, String(errors[key]));
        control.setAttribute('aria-invalid', 'true');
        control.after(p);
      }
      if (errors.run) {
        const p = el('p', 'notice bad');
        p.id = 'run-error';
        p.setAttribute('role', 'alert');
        p.textContent = String(errors.run);
        form.before(p);
      }
    }

    function show(html) {
      if (html === lastHtml) return;
      lastHtml = html;
      const tpl = document.createElement('template');
      tpl.innerHTML = html;
      // Keep what the reader opened or closed.
      const open = new Map();
      result.querySelectorAll('li.step').forEach((li) => {
        li.querySelectorAll('details').forEach((d, i) => open.set(`${li.dataset.step}/${li.dataset.status}/${i}`, d.open));
      });
      tpl.content.querySelectorAll('li.step').forEach((li) => {
        li.querySelectorAll('details').forEach((d, i) => {
          const k = `${li.dataset.step}/${li.dataset.status}/${i}`;
          if (open.has(k)) d.open = open.get(k);
        });
      });
      result.replaceChildren(tpl.content);
    }

    async function poll(url, mine) {
      const started = Date.now();
      while (mine === run) {
        let res;
        try {
          res = await fetch(url, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
        } catch (err) {
          state.textContent = 'Lost the server; retrying…';
          await sleep(2000);
          continue;
        }
        if (mine !== run) return;
        if (!res.ok || !isJson(res)) {
          state.textContent = res.redirected
            ? 'Your session ended: sign in again to follow the run.'
            : `Could not read the run (HTTP ${res.status}).`;
          return;
        }
        const d = await res.json();
        if (mine !== run) return;
        show(String(d.html || ''));
        const n = (d.steps || []).length;
        if (d.done) {
          state.textContent = `Finished: ${d.status}, ${n} ${n === 1 ? 'step' : 'steps'}.`;
          button.disabled = false;
          return;
        }
        state.textContent = `Running (${d.status}): ${n} ${n === 1 ? 'step' : 'steps'} so far…`;
        await sleep(Date.now() - started > 30000 ? 2000 : 400);
      }
    }

    form.addEventListener('submit', async (e) => {
      if (!window.fetch) return;
      e.preventDefault();
      clearErrors();
      const mine = ++run;
      button.disabled = true;
      state.textContent = 'Starting…';
      let res;
      try {
        res = await fetch(form.getAttribute('action'), {
          method: 'POST',
          headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(new FormData(form)),
          credentials: 'same-origin',
        });
      } catch (err) {
        state.textContent = 'Could not reach the server; try again.';
        button.disabled = false;
        return;
      }
      const data = isJson(res) ? await res.json().catch(() => null) : null;
      if (res.status === 422 && data && data.errors) {
        showErrors(data.errors);
        state.textContent = 'Nothing was run: see the errors.';
        button.disabled = false;
        return;
      }
      if (!res.ok || !data || !data.stepsUrl) {
        state.textContent = res.status === 403
          ? 'Refused: this page is out of date; reload it.'
          : `The run could not start (HTTP ${res.status}).`;
        button.disabled = false;
        return;
      }
      lastHtml = '';
      result.replaceChildren();
      state.textContent = 'Started; waiting for its steps…';
      poll(data.stepsUrl, mine);
    });
  }

  const form = document.getElementById('editor-form');
  if (form) editor(form);
  const tryForm = document.getElementById('try-form');
  if (tryForm) tryIt(tryForm);
})();
