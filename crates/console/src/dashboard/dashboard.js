// dashboard: reloads the figures every 10 seconds while the page is visible, by fetching the
// page itself and swapping in its #dash-live part (the server's own escaped markup, parsed
// inertly by DOMParser); stops when the session ended (the answer is no longer the dashboard).
(function () {
  'use strict';
  const live = document.getElementById('dash-live');
  if (!live || !window.fetch || !window.DOMParser) return;
  const every = Number(live.dataset.refresh || 10000);
  let stopped = false;

  function say(text) {
    const state = document.getElementById('dash-refresh-state');
    if (state) state.textContent = text;
  }

  async function refresh() {
    if (stopped) return;
    if (document.visibilityState === 'visible') {
      try {
        const res = await fetch(window.location.pathname + window.location.search, {
          credentials: 'same-origin',
          headers: { Accept: 'text/html' },
        });
        const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
        const next = doc.getElementById('dash-live');
        if (!res.ok || !next || res.redirected) {
          stopped = true;
          say(res.redirected ? ' Live refresh stopped: sign in again.' : ' Live refresh stopped: reload the page.');
          return;
        }
        live.replaceChildren(...Array.from(next.childNodes).map((n) => document.importNode(n, true)));
      } catch (e) {
        say(' Could not refresh; trying again.');
      }
    }
    window.setTimeout(refresh, every);
  }

  window.setTimeout(refresh, every);
})();
