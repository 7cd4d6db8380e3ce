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
