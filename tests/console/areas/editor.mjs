// The console's editor pages in the browser; called by run.mjs with a signed-in page.
// ctx: { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort }
//
// A new integration typed into /console/integrations/new with an error: Validate (no reload)
// lists it at its line and marks the gutter, a click on it moves the caret there, Tab indents;
// fixed, Apply stores version 1 (the API sees it). Then Try it on its flow: the steps appear
// one by one with their outputs, without a reload; a body that is not JSON runs nothing.
// The flow calls a slow upstream of its own between two steps, so the first step is on the
// page (journaled before the call) while the run is still going.

import http from 'node:http';

const broken = (port) => `integration: editor-e2e
# typed in the browser <script>alert('editor')</script>
flows:
  - flow: echo
    trigger: { webhook: { path: editor-e2e/echo } }
    steps:
      - id: shape
        frobnicate: '{ name: $trigger.body.name }'
      - id: slow
        http: { method: POST, url: "http://127.0.0.1:${port}/slow", json: "{{ . }}" }
      - id: wrap
        transform: '{ wrapped: ., tag: $trigger.headers["x-tag"], q: $trigger.query.q }'
`;

export async function run(ctx) {
  const { page, base, api, check, eventually, SHOTS, path } = ctx;
  // An upstream that answers after 2 s.
  const slow = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"slow":true}');
    }, 2000));
  });
  await new Promise((r) => slow.listen(0, '127.0.0.1', r));
  try {
    await steps(ctx, slow.address().port);
  } finally {
    slow.close();
  }
}

async function steps(ctx, port) {
  const { page, base, api, check, eventually, SHOTS, path } = ctx;
  const BROKEN = broken(port);
  const FIXED = BROKEN.replace('frobnicate:', 'transform:');

  // The editor: type a definition with an error, Validate without a reload.
  await page.goto(`${base}/console/integrations/new`);
  const source = page.getByLabel('Definition (YAML)');
  await source.fill(BROKEN);
  await page.evaluate(() => { window.__editorNotReloaded = true; });
  await page.getByRole('button', { name: 'Validate' }).click();
  const problem = page.locator('#problem-list a.problem[data-line="8"]');
  await problem.waitFor({ timeout: 10_000 });
  const text = (await page.locator('#problem-list').textContent()).replace(/\s+/g, ' ');
  check(text.includes('line 8, column 9') && text.includes('unknown step kind or key `frobnicate`'),
    `Validate lists the problem at its line and column (${text.trim().slice(0, 90)}…)`);
  check(await page.locator('#gutter .ln.bad[data-line="8"] a.mark').count() === 1,
    'the gutter marks the line with a marker');
  check((await page.locator('#gutter .ln.bad a.mark').getAttribute('aria-label')).startsWith('Problem at line 8:'),
    "the marker carries the problem's message");
  check(await page.evaluate(() => window.__editorNotReloaded === true), 'Validate did not reload the page');
  check(await page.locator('#gutter .ln').count() === BROKEN.split('\n').length, 'one gutter row per line');
  await page.screenshot({ path: path.join(SHOTS, 'editor.png'), fullPage: true });

  // A click on the problem moves the caret to its line and column; Tab indents.
  await problem.click();
  const caret = await source.evaluate((t) => {
    const before = t.value.slice(0, t.selectionStart).split('\n');
    return { line: before.length, column: before[before.length - 1].length + 1, focused: document.activeElement === t };
  });
  check(caret.focused && caret.line === 8 && caret.column === 9, `the caret moved to line 8, column 9 (${JSON.stringify(caret)})`);
  await source.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
  await page.keyboard.press('Tab');
  check(await source.evaluate((t) => t.value.endsWith('\n  ') && document.activeElement === t),
    'Tab inserts two spaces and stays in the editor');

  // Fixed, the line count follows typing, and Apply stores version 1.
  await source.fill(FIXED + '# one more line\n');
  check(await page.locator('#gutter .ln').count() === FIXED.split('\n').length + 1, 'the gutter follows the typing');
  await page.getByRole('button', { name: 'Validate' }).click();
  await eventually('the fixed text validates', async () =>
    (await page.locator('#editor-status').textContent()).startsWith('Valid:'));
  check(await page.locator('#gutter .ln.bad').count() === 0, 'the markers are gone once it is valid');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('#applied-version').waitFor({ timeout: 10_000 });
  check((await page.locator('#applied-version').textContent()) === 'version 1', 'Apply shows the new version');
  check(await page.getByRole('link', { name: 'Open the integration' }).getAttribute('href') === '/console/integrations/editor-e2e',
    'with a link to the integration page');
  const applied = await api('GET', '/v1/integrations/editor-e2e');
  check(applied.status === 200 && applied.json.version === 1, 'the API sees version 1');
  check((await source.inputValue()).includes("<script>alert('editor')</script>"), 'the comment stays text in the editor');

  // Try it: a payload with a body, a header and a query; the steps appear as they finish.
  await page.goto(`${base}/console/integrations/editor-e2e/flows/echo/try`);
  await page.evaluate(() => { window.__tryNotReloaded = true; });
  const before = (await api('GET', '/v1/executions?integration=editor-e2e')).json.items.length;
  await page.getByLabel('Body').fill('{ "name": not json');
  await page.getByRole('button', { name: 'Run' }).click();
  await page.locator('#try-body-error').waitFor({ timeout: 10_000 });
  check((await page.locator('#try-body-error').textContent()).includes('not valid JSON'), 'a body that is not JSON is refused inline');
  check((await api('GET', '/v1/executions?integration=editor-e2e')).json.items.length === before, 'and nothing ran');

  await page.getByLabel('Body').fill('{ "name": "<img src=x onerror=alert(\'try\')>" }');
  await page.getByLabel(/^Headers/).fill('X-Tag: blue');
  await page.getByLabel(/^Query/).fill('q=hello');
  await page.getByRole('button', { name: 'Run' }).click();
  await page.locator('#try-steps li.step[data-step="shape"]').waitFor({ timeout: 10_000 });
  const early = await page.locator('#try-steps li.step').count();
  const earlyStatus = await page.locator('#try-status').textContent();
  check(early < 3 && !earlyStatus.includes('succeeded'), `the first step appears while the run goes on (${early} step(s), ${earlyStatus.trim()})`);
  await page.locator('#try-steps li.step[data-step="wrap"][data-status="succeeded"]').waitFor({ timeout: 15_000 });
  await eventually('the run ends', async () => (await page.locator('#try-status').textContent()).includes('succeeded'));
  const output = await page.locator('li.step[data-step="wrap"] details.step-output pre').textContent();
  check(output.includes('"tag": "blue"') && output.includes('"q": "hello"') && output.includes('"slow": true'),
    "the last step's output shows the header, the query and the upstream's answer");
  const shape = await page.locator('li.step[data-step="shape"] details.step-output pre').textContent();
  check(shape.includes("<img src=x onerror=alert('try')>"), 'the body shows as text in the step output');
  check(await page.locator('#try-result img').count() === 0, 'no element was injected');
  check(await page.evaluate(() => window.__tryNotReloaded === true), 'Try it did not reload the page');
  check((await page.locator('#try-state').textContent()).includes('Finished: succeeded'), 'the page says the run finished');
  await page.screenshot({ path: path.join(SHOTS, 'try.png'), fullPage: true });
}
