// executions: a bulk job's page follows its progress while it runs (without script, reload).
(function () {
  'use strict';
  const job = document.getElementById('bulk-job');
  if (!job || !job.dataset.running) return;
  let left = 120; // at most two minutes of refreshing, then the page stays as it is
  function tick() {
    if (left-- <= 0) return;
    fetch(window.location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } })
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
      .then((html) => {
        const doc = new DOMParser().parseFromString(html, 'text/html');
        const fresh = doc.getElementById('bulk-job');
        if (!fresh) return;
        job.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
        if (fresh.dataset.running) setTimeout(tick, 1000);
        else delete job.dataset.running;
      })
      .catch(() => setTimeout(tick, 3000));
  }
  setTimeout(tick, 1000);
})();
