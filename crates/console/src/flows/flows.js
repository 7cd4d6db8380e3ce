// flows: the flow page's two panels as tabs.
(function () {
  'use strict';
  const tablist = document.getElementById('flow-tabs');
  if (tablist) {
    const tabs = Array.from(tablist.querySelectorAll('[role="tab"]'));
    const panelOf = (tab) => document.getElementById(tab.getAttribute('aria-controls'));
    const select = (tab, focus) => {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute('aria-selected', on ? 'true' : 'false');
        t.tabIndex = on ? 0 : -1;
        const panel = panelOf(t);
        if (panel) panel.hidden = !on;
      }
      if (focus) tab.focus();
      if (history.replaceState) history.replaceState(null, '', '#' + tab.getAttribute('aria-controls'));
    };
    const fromHash = tabs.find((t) => '#' + t.getAttribute('aria-controls') === location.hash);
    const initial = fromHash || tabs.find((t) => t.getAttribute('aria-controls') === tablist.dataset.initial) || tabs[0];
    for (const t of tabs) {
      t.addEventListener('click', (e) => { e.preventDefault(); select(t, false); });
      t.addEventListener('keydown', (e) => {
        const i = tabs.indexOf(t);
        let next = null;
        if (e.key === 'ArrowRight') next = tabs[(i + 1) % tabs.length];
        else if (e.key === 'ArrowLeft') next = tabs[(i - 1 + tabs.length) % tabs.length];
        else if (e.key === 'Home') next = tabs[0];
        else if (e.key === 'End') next = tabs[tabs.length - 1];
        if (next) { e.preventDefault(); select(next, true); }
      });
    }
    for (const t of tabs) {
      const on = t === initial;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tabIndex = on ? 0 : -1;
      const panel = panelOf(t);
      if (panel) panel.hidden = !on;
    }
  }
  // Copy buttons use the shared `data-copy` handler (assets/console.js).
})();
