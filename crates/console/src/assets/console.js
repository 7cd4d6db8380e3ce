// Flowgate console: the little script the pages need (no framework, no build step).
// The monitor subscribes to its server-sent events and inserts or updates rows. Rows come
// as the server's own escaped markup; they are parsed into a <template> (inert: nothing in
// it runs) and, with the page's Content-Security-Policy, no inline script could run anyway.
'use strict';

(function () {
  const body = document.querySelector('#executions tbody[data-stream]');
  const live = document.getElementById('live');
  if (!body || !window.EventSource) {
    if (live) live.textContent = 'Live updates: off (reload to refresh).';
    return;
  }
  const insert = body.dataset.live === 'insert';
  const seqOf = (tr) => Number(tr.dataset.seq || 0);

  function place(tr) {
    const seq = seqOf(tr);
    const rows = Array.from(body.querySelectorAll('tr[data-seq]'));
    const before = rows.find((r) => seqOf(r) < seq);
    if (before) {
      body.insertBefore(tr, before);
    } else if (rows.length === 0) {
      body.appendChild(tr);
    } else {
      return false; // older than this page shows
    }
    const empty = body.querySelector('tr.empty');
    if (empty) empty.remove();
    return true;
  }

  function onRow(event) {
    let data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    const tpl = document.createElement('template');
    tpl.innerHTML = String(data.html || '').trim();
    const tr = tpl.content.querySelector('tr');
    if (!tr || tr.id !== 'ex-' + data.id) return;
    const old = document.getElementById(tr.id);
    if (old) {
      if (old.outerHTML !== tr.outerHTML) {
        tr.classList.add('fresh');
        old.replaceWith(tr);
      }
    } else if (insert && place(tr)) {
      tr.classList.add('fresh');
    }
  }

  function connect() {
    const source = new EventSource(body.dataset.stream);
    source.addEventListener('open', () => { if (live) live.textContent = 'Live updates: on.'; });
    source.addEventListener('row', onRow);
    // A row that no longer matches the page's filters (executions.rs: stream.rs).
    source.addEventListener('gone', (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      const old = document.getElementById('ex-' + data.id);
      if (old && insert) old.remove();
    });
    source.addEventListener('error', () => {
      // CLOSED: the server refused the stream (the session ended); the browser retries otherwise.
      if (!live) return;
      live.textContent = source.readyState === EventSource.CLOSED
        ? 'Live updates: off (sign in again to resume).'
        : 'Live updates: reconnecting…';
    });
  }
  connect();
})();

// Copy buttons, on every page: `<button data-copy="ID">` copies the element ID's value (a
// field) or text, and says so in `#ID-copied`, or else in a `.copied` beside the button.
(function () {
  'use strict';
  function selectAndCopy(el) {
    if ('select' in el) {
      el.focus();
      el.select();
    } else {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
    try { return document.execCommand('copy'); } catch (e) { return false; }
  }
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    var el = document.getElementById(button.dataset.copy);
    if (!el) return;
    var said = document.getElementById(button.dataset.copy + '-copied') ||
      (button.parentElement && button.parentElement.querySelector('.copied'));
    var timer = null;
    var tell = function (text) {
      if (!said) return;
      said.textContent = text;
      clearTimeout(timer);
      timer = setTimeout(function () { said.textContent = ''; }, 4000);
    };
    button.addEventListener('click', function () {
      var text = 'value' in el && el.tagName !== 'BUTTON' ? el.value : el.textContent;
      var fallback = function () { tell(selectAndCopy(el) ? 'Copied' : 'Press Ctrl+C to copy the selected text'); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { tell('Copied'); }, fallback);
      } else {
        fallback();
      }
    });
  });
})();
