// The web console in a real browser (issue 19): headless Chromium (Debian's `chromium`,
// driven by playwright-core; no browser download) against a real `flowgate serve`.
//
// It starts the debug binary on a free port with a temporary data directory, applies an
// integration through the API, signs in through the page, watches webhooks appear live in
// the monitor (server-sent events, no reload), opens a failed execution, sees the failing
// step's error, starts the upstream it needed, clicks Retry and sees it succeed; and checks
// that hostile markup in a flow name and in step data stays inert (no dialog ever opens);
// then each area's checks (tests/console/areas/), and a second tenant that sees none of it.
// Screenshots go to target/console-screenshots/.
//
// Run: `node tests/console/run.mjs` from the repository root after `cargo build --bin
// flowgate` and `npm install` in tests/console (.ci/run does both).

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Each console area's browser checks, beside this file (tests/console/areas/).
import * as areaDashboard from './areas/dashboard.mjs';
import * as areaFlows from './areas/flows.mjs';
import * as areaEditor from './areas/editor.mjs';
import * as areaIntegrations from './areas/integrations.mjs';
import * as areaExecutions from './areas/executions.mjs';
import * as areaAdmin from './areas/admin.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BINARY = process.env.FLOWGATE_BIN || path.join(ROOT, 'target/debug/flowgate');
const SHOTS = path.join(ROOT, 'target/console-screenshots');
const TOKEN = 'fgt_console_browser_test';
const DEADLINE_MS = 15_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok   ${what}`);
}

async function eventually(what, fn, ms = DEADLINE_MS) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${what} (last: ${last})`);
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowgate-console-'));
const port = await freePort();
const upstreamPort = await freePort();
const base = `http://127.0.0.1:${port}`;
let server;
let browser;
let upstream;

async function api(method, p, body, type = 'application/json') {
  const res = await fetch(base + p, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type },
    body,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function hook(body, hookPath = 'e2e/orders') {
  const res = await fetch(`${base}/hooks/default/${hookPath}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${JSON.stringify(json)}`);
  return json.executionId;
}

const INTEGRATION = `
integration: console-e2e
name: "Console e2e <img src=x onerror=alert('integration-name')>"
flows:
  - flow: orders
    name: "<script>alert('flow-name')</script>"
    trigger: { webhook: { path: e2e/orders } }
    steps:
      - id: shape
        transform: '{ order: $trigger.body.id, note: "<img src=x onerror=alert(\\"step-data\\")>" }'
      - id: push
        when: '$trigger.body.push == true'
        http: { method: POST, url: "http://127.0.0.1:${upstreamPort}/orders", json: "{{ . }}" }
        retry: { attempts: 1 }
  - flow: slow
    trigger: { webhook: { path: e2e/slow } }
    steps:
      - { id: pause, delay: { for: 3s } }
      - { id: done, transform: '{ done: true }' }
`;

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  server = spawn(BINARY, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: { ...process.env, FLOWGATE_BOOTSTRAP_TOKEN: TOKEN, RUST_LOG: process.env.RUST_LOG || 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  server.on('exit', (code, signal) => {
    if (code !== null && code !== 0) console.error(`flowgate exited with ${code ?? signal}`);
  });
  await eventually('the server is ready', async () => (await fetch(`${base}/readyz`)).ok);

  const applied = await api('PUT', '/v1/integrations/console-e2e', INTEGRATION, 'application/yaml');
  check(applied.status === 201, `integration applied (${applied.status})`);

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // Sign in: a page without a session leads to the form; a bad token is refused.
  await page.goto(`${base}/`);
  check(page.url() === `${base}/console/signin`, '/ leads to the sign-in page');
  await page.getByLabel('API token').fill('fgt_not_a_token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  check((await page.getByRole('alert').textContent()).includes('not valid'), 'a bad token is refused');
  await page.getByLabel('API token').fill(TOKEN);
  await page.keyboard.press('Enter'); // keyboard only
  await page.waitForURL(`${base}/console/executions`);
  check(true, 'signed in with the token');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'fg_console');
  check(session && session.httpOnly && session.sameSite === 'Strict' && session.path === '/console',
    'the session cookie is HttpOnly, SameSite=Strict, Path=/console');

  // The monitor, live.
  await eventually('live updates connect', async () =>
    (await page.locator('#live').textContent()).includes('on'));
  check(true, 'the monitor subscribed to live updates');
  await page.evaluate(() => { window.__notReloaded = true; });
  const ok = [];
  for (let i = 1; i <= 3; i++) ok.push(await hook({ id: i, push: false }));
  for (const id of ok) {
    await page.locator(`#ex-${id}`).getByText('succeeded').waitFor({ timeout: DEADLINE_MS });
  }
  check(true, 'three webhooks appeared live as succeeded');
  const failedId = await hook({ id: 99, push: true });
  await page.locator(`#ex-${failedId}`).getByText('failed').waitFor({ timeout: DEADLINE_MS });
  check(true, 'a failing execution appeared live as failed');
  check(await page.evaluate(() => window.__notReloaded === true), 'the page was never reloaded');
  const order = await page.locator('#executions tbody tr').evaluateAll((rows) => rows.map((r) => r.id));
  check(order[0] === `ex-${failedId}` && order.indexOf(`ex-${ok[2]}`) < order.indexOf(`ex-${ok[0]}`),
    'newest rows first');
  // A running execution changes status in place.
  const slowId = await hook({}, 'e2e/slow');
  await page.locator(`#ex-${slowId}`).getByText(/running|waiting|queued/).waitFor({ timeout: DEADLINE_MS });
  await page.locator(`#ex-${slowId}`).getByText('succeeded').waitFor({ timeout: DEADLINE_MS });
  check(await page.evaluate(() => window.__notReloaded === true), 'a running execution turned succeeded live');
  await page.screenshot({ path: path.join(SHOTS, 'monitor.png'), fullPage: true });
  const bytes = await page.evaluate(() => performance.getEntriesByType('navigation')
    .concat(performance.getEntriesByType('resource'))
    .reduce((sum, e) => sum + (e.decodedBodySize || 0), 0));
  check(bytes > 0 && bytes < 200 * 1024, `the monitor's first load is light (${bytes} bytes, page and assets)`);

  // Filters: failed only.
  await page.getByLabel('Status').selectOption('failed');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/status=failed/);
  check(await page.locator(`#ex-${ok[0]}`).count() === 0 && await page.locator(`#ex-${failedId}`).count() === 1,
    'the status filter shows only failed executions');

  // A phone-sized monitor.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(SHOTS, 'monitor-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 860 });

  // The failed execution: its failing step and error.
  await page.locator(`#ex-${failedId} a.id`).click();
  await page.waitForURL(`${base}/console/executions/${failedId}`);
  check((await page.locator('#status').textContent()).includes('failed'), 'the execution page says failed');
  const error = await page.locator('#error').textContent();
  check(error.includes('push'), `the error names the failing step (${error.trim().replace(/\s+/g, ' ')})`);
  const pushStep = page.locator('li.step[data-step="push"][data-status="failed"]');
  check(await pushStep.count() >= 1, 'the push step is journaled as failed');
  check(await pushStep.first().locator('details.step-error pre').isVisible(), "the failing step's error is shown");

  await page.screenshot({ path: path.join(SHOTS, 'execution-failed.png'), fullPage: true });

  // Hostile markup stays text.
  check(await page.locator('#flow-name').textContent() === "<script>alert('flow-name')</script>",
    'the flow name shows as text');
  const shape = page.locator('li.step[data-step="shape"]');
  await shape.locator('summary', { hasText: 'Output' }).click();
  const shapeOutput = await shape.locator('details pre').last().textContent();
  check(shapeOutput.includes('<img src=x onerror=alert(\\"step-data\\")>'), 'step data shows as text');
  check(await page.locator('main img').count() === 0, 'no element was injected');

  // Fix the upstream, then Retry from the failed step.
  upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"accepted":true}');
    });
  });
  await new Promise((r) => upstream.listen(upstreamPort, '127.0.0.1', r));
  await page.getByRole('button', { name: 'Retry' }).click();
  await page.getByRole('button', { name: 'Confirm retry' }).click(); // every action is confirmed first
  await page.waitForURL(`${base}/console/executions/${failedId}`);
  await eventually('the retried execution succeeds', async () => {
    await page.reload();
    return (await page.locator('#status').textContent()).includes('succeeded');
  });
  check(true, 'Retry made it succeed');
  check(await page.locator('li.step[data-step="push"][data-status="succeeded"]').count() === 1,
    'the push step succeeded on the retry');
  check(await page.locator('li.step[data-step="shape"]').count() === 1, 'completed steps were not run again');
  await page.screenshot({ path: path.join(SHOTS, 'execution.png'), fullPage: true });

  // The integrations page with the hostile names.
  await page.getByRole('link', { name: 'Integrations' }).click();
  await page.waitForURL(`${base}/console/integrations`);
  check((await page.locator('main').textContent()).includes("<script>alert('flow-name')</script>"),
    'the integrations page shows the flow name as text');
  await page.screenshot({ path: path.join(SHOTS, 'integrations.png'), fullPage: true });

  // Each area's checks, in one signed-in page (they add to dialogs/pageErrors above).
  const ctx = { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort };
  for (const [name, area] of [
    ['dashboard', areaDashboard], ['flows', areaFlows], ['editor', areaEditor],
    ['integrations', areaIntegrations], ['executions', areaExecutions], ['admin', areaAdmin],
  ]) {
    console.log(`-- ${name}`);
    await area.run(ctx);
  }
  if (!page.url().startsWith(`${base}/console/`) || page.url().includes('signin')) {
    await page.goto(`${base}/console/executions`);
  }

  // A second tenant, in its own browser context, sees none of it: an empty monitor and
  // integrations list, and the first tenant's execution, flow and editor pages are 404s.
  const admin = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  const created = await fetch(`${base}/v1/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'stranger' }),
  });
  check(created.status === 201, `a second tenant was created (${created.status})`);
  const strangerToken = (await created.json()).token;
  const other = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const otherPage = await other.newPage();
  otherPage.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  await otherPage.goto(`${base}/console/signin`);
  await otherPage.getByLabel('API token').fill(strangerToken);
  await otherPage.getByRole('button', { name: 'Sign in' }).click();
  await otherPage.waitForURL(`${base}/console/executions`);
  check(await otherPage.locator('#executions tbody tr:not(.empty)').count() === 0
    && (await otherPage.locator('#executions').textContent()).includes('No executions match'), 'the second tenant sees no execution');
  await otherPage.goto(`${base}/console/integrations`);
  check(!(await otherPage.locator('main').textContent()).includes('console-e2e'),
    "the second tenant's integrations list is empty of the first tenant's");
  for (const p of [`/console/executions/${failedId}`, '/console/integrations/console-e2e',
    '/console/integrations/console-e2e/flows/orders', '/console/integrations/console-e2e/edit']) {
    const res = await otherPage.goto(`${base}${p}`);
    check(res.status() === 404, `the second tenant gets 404 for ${p}`);
  }
  await other.close();

  // Sign out.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${base}/console/signin`);
  await page.goto(`${base}/console/executions`);
  check(page.url() === `${base}/console/signin`, 'signed out');

  check(dialogs.length === 0, `no dialog ever opened (${JSON.stringify(dialogs)})`);
  check(pageErrors.length === 0, `no script error (${JSON.stringify(pageErrors)})`);
  console.log(`console browser test passed; screenshots in ${path.relative(ROOT, SHOTS)}/`);
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (upstream) upstream.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => { server.kill('SIGKILL'); r(); }, 10_000);
      server.once('exit', () => { clearTimeout(t); r(); });
    });
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
