// The console's dashboard pages in the browser; called by run.mjs with a signed-in page.
// ctx: { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort }
//
// Runs a few executions of its own integration (successes and failures), opens the dashboard
// from the navigation, checks the SVG chart (bars coloured by the stylesheet, a tooltip with
// numbers), the legend in words, the hidden table, failures by code; sees a new execution
// counted by the live refresh without a reload; switches to the last day (screenshot
// dashboard.png).

const INTEGRATION = `
integration: console-dash
flows:
  - flow: fine
    trigger: { webhook: { path: dash-e2e/fine } }
    steps:
      - { id: shape, transform: '{ ok: true }' }
  - flow: broken
    trigger: { webhook: { path: dash-e2e/broken } }
    steps:
      - { id: boom, transform: 'error("dashboard e2e")' }
`;

export async function run(ctx) {
  const { page, base, api, hook, check, eventually, SHOTS, path } = ctx;
  const applied = await api('PUT', '/v1/integrations/console-dash', INTEGRATION, 'application/yaml');
  check(applied.status === 201 || applied.status === 200, `dashboard: integration applied (${applied.status})`);
  for (let i = 0; i < 3; i++) await hook({ i }, 'dash-e2e/fine');
  for (let i = 0; i < 2; i++) await hook({ i }, 'dash-e2e/broken');
  await eventually('the dashboard executions finish', async () => {
    const r = await api('GET', '/v1/executions?integration=console-dash&limit=10');
    return r.json.items.length === 5 && r.json.items.every((e) => e.status === 'succeeded' || e.status === 'failed');
  });

  // From the navigation.
  await page.goto(`${base}/console/executions`);
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.waitForURL(`${base}/console/dashboard`);
  const chart = page.locator('svg#dash-rates-chart');
  await chart.waitFor();
  check(await chart.getAttribute('role') === 'img', 'dashboard: the chart is an image with a title');
  check((await page.locator('#dash-rates-title').textContent()).includes('Executions per minute by status'),
    'dashboard: the chart says what it shows');
  const box = await chart.boundingBox();
  check(box && box.width > 300 && box.height > 80, `dashboard: the chart has a size (${box && Math.round(box.width)}×${box && Math.round(box.height)})`);
  // Bars, coloured by the stylesheet (classes; no inline style under the CSP).
  const fills = await page.locator('svg#dash-rates-chart rect.seg.s-succeeded').evaluateAll(
    (rs) => rs.map((r) => getComputedStyle(r).fill));
  check(fills.length > 0 && fills.every((f) => f === 'rgb(46, 148, 80)'), `dashboard: succeeded bars drawn in green (${fills[0]})`);
  check(await page.locator('svg#dash-rates-chart rect.seg.s-failed').count() > 0, 'dashboard: failed bars drawn');
  const tip = await page.locator('svg#dash-rates-chart g.bar').last().locator('title').textContent();
  check(/UTC: \d+ \(.*succeeded/.test(tip), `dashboard: the current minute's tooltip has numbers ("${tip}")`);
  // The legend in words.
  const legend = await page.locator('ul.dash-legend li').allTextContents();
  check(legend.length === 7 && ['succeeded', 'failed', 'queued', 'running'].every((w) => legend.some((l) => l.includes(w))),
    `dashboard: the legend names each status (${legend.map((l) => l.trim()).join(' | ')})`);
  // The hidden table: the same numbers for screen readers, not shown.
  const table = page.locator('table#dash-rates');
  check(await table.count() === 1, 'dashboard: the numbers table exists');
  const clipped = await table.evaluate((t) => t.parentElement.getBoundingClientRect().width <= 1
    && getComputedStyle(t.parentElement).overflow === 'hidden');
  check(clipped, 'dashboard: the numbers table is visually hidden');
  const totals = await table.locator('tfoot td').allTextContents();
  const headers = await table.locator('thead th').allTextContents();
  const total = Number(totals[totals.length - 1]);
  const succeeded = Number(totals[headers.indexOf('succeeded') - 1]);
  check(total >= 5 && succeeded >= 3, `dashboard: the numbers table counts the executions (${total} in all, ${succeeded} succeeded)`);
  check(await page.locator('#dash-failures tr[data-code="expression_error"]').count() === 1,
    'dashboard: failures listed by error code');
  check(await page.locator('#dash-durations tr[data-integration="console-dash"][data-flow="fine"]').count() === 1,
    'dashboard: p50 / p99 of each flow');

  // Live: a new execution is counted without a reload (the page refreshes every 10 s).
  await page.evaluate(() => { window.__dashNotReloaded = true; });
  const before = Number(await page.locator('#tile-executions').textContent());
  await hook({ live: true }, 'dash-e2e/fine');
  await eventually('the dashboard counts the new execution', async () =>
    Number(await page.locator('#tile-executions').textContent()) > before, 25_000);
  check(await page.evaluate(() => window.__dashNotReloaded === true), 'dashboard: refreshed live, not reloaded');

  // The last day.
  await page.getByRole('link', { name: 'Last day' }).click();
  await page.waitForURL(`${base}/console/dashboard?range=day`);
  check((await page.locator('#dash-rate-h').textContent()).includes('per 15 minutes'), 'dashboard: switched to the last day');
  check(await page.getByRole('link', { name: 'Last day' }).getAttribute('aria-current') === 'page',
    'dashboard: the current range is marked');
  check(await page.locator('svg#dash-rates-chart g.bar').count() === 96, 'dashboard: 96 bars of 15 minutes');
  await page.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });
  await page.getByRole('link', { name: 'Last hour' }).click();
  await page.waitForURL(`${base}/console/dashboard?range=hour`);
  check(await page.locator('svg#dash-rates-chart g.bar').count() === 60, 'dashboard: back to 60 bars of a minute');
}
