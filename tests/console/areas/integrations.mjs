// The console's integrations pages in the browser; called by run.mjs with a signed-in page.
// ctx: { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort }
//
// Opens an integration's page, fills the deployment form (with a secret) and saves it,
// checks the secret is shown nowhere (markup, text, field values), views a side-by-side
// diff of two versions, and runs the integration's tests.

const SECRET = 'browser-s3cret-7c2e-never-shown';

const V1 = `
integration: e2e-shop
name: "E2E shop <img src=x onerror=alert('shop-name')>"
description: Orders from the e2e shop.
config:
  apiUrl: { type: string, required: true, description: "Where the orders go" }
  pageSize: { type: number, default: 50 }
  region: { type: string, allowed: [eu, us], default: eu }
  apiKey: { type: secret, required: true }
flows:
  - flow: orders
    trigger: { manual: {} }
    steps:
      - { id: out, transform: '{ n: .body.n }' }
tests:
  - name: passes n through
    flow: orders
    trigger: { body: { n: 2 } }
    expect: { output: { n: 2 } }
  - name: expects the wrong n
    flow: orders
    trigger: { body: { n: 2 } }
    expect: { output: { n: 3 } }
`;

export async function run(ctx) {
  const { page, base, api, check, SHOTS, path } = ctx;
  let r = await api('PUT', '/v1/integrations/e2e-shop', V1, 'application/yaml');
  check(r.status === 201, `e2e-shop applied (${r.status})`);
  r = await api('PUT', '/v1/integrations/e2e-shop',
    V1.replace("'{ n: .body.n }'", "'{ n: .body.n, doubled: (.body.n * 2) }'"), 'application/yaml');
  check(r.status === 201, `e2e-shop version 2 applied (${r.status})`);

  // From the list to the integration's page.
  await page.goto(`${base}/console/integrations`);
  await page.locator('a[href="/console/integrations/e2e-shop"]').click();
  await page.waitForURL(`${base}/console/integrations/e2e-shop`);
  check((await page.locator('h1').textContent()).includes("<img src=x onerror=alert('shop-name')>"),
    'the integration name is shown as text');
  check(await page.locator('#cfg-2 option').count() === 3, '`allowed` is a select (default + 2 values)');

  // The deployment form, with a secret.
  await page.getByLabel('apiUrl').fill('https://orders.example');
  await page.getByLabel('pageSize').fill('25');
  await page.getByLabel('region').selectOption({ label: 'us' });
  await page.getByLabel('apiKey').fill(SECRET);
  await page.getByRole('button', { name: 'Save and deploy' }).click();
  await page.waitForURL(/\/console\/integrations\/e2e-shop\?saved=1/);
  check((await page.locator('#notice').textContent()).includes('Deployment saved.'), 'the deployment is saved');
  check((await page.locator('#deployment-state').textContent()).trim().startsWith('● live'), 'the integration is live');
  const secretState = await page.locator('[data-var="apiKey"] [data-secret-state]').textContent();
  check(secretState.includes('set') && !secretState.includes('not set'), 'the secret shows as "set"');
  const html = await page.content();
  const text = await page.locator('body').innerText();
  const values = await page.$$eval('input, textarea, select', (els) => els.map((e) => e.value).join('\n'));
  check(!html.includes(SECRET) && !text.includes(SECRET) && !values.includes(SECRET),
    'the secret is never displayed (markup, text, field values)');
  check(await page.getByLabel('pageSize').inputValue() === '25', 'saved values are shown again');
  const deployment = await api('GET', '/v1/integrations/e2e-shop/deployment');
  check(deployment.json.config.apiKey.set === true, 'the API sees the secret set');
  await page.screenshot({ path: path.join(SHOTS, 'integration.png'), fullPage: true });

  // A wrong value is refused beside its field.
  await page.getByLabel('pageSize').fill('lots');
  await page.getByRole('button', { name: 'Save and deploy' }).click();
  await page.locator('#cfg-1-error').waitFor();
  check((await page.locator('#cfg-1-error').textContent()).includes('expected a number'),
    'a wrong-type value shows its error beside the field');
  check(!(await page.content()).includes(SECRET), 'the refused form does not echo the secret');

  // The diff of the two versions.
  await page.goto(`${base}/console/integrations/e2e-shop`);
  await page.getByRole('button', { name: 'Show diff' }).click();
  await page.waitForURL(/\/console\/integrations\/e2e-shop\/diff\?from=1&to=2/);
  check((await page.locator('#diff-counts').textContent()).includes('+1 added'), 'the diff counts the added line');
  check(await page.locator('#diff td.mark.del').count() === 1 && await page.locator('#diff td.mark.ins').count() === 1,
    'the diff marks the removed and the added line side by side');
  check((await page.locator('#diff td.text.ins').textContent()).includes('doubled'), 'the added line is on the right');
  await page.screenshot({ path: path.join(SHOTS, 'diff.png'), fullPage: true });

  // Run the tests.
  await page.goto(`${base}/console/integrations/e2e-shop`);
  await page.getByRole('button', { name: 'Run tests' }).click();
  await page.locator('#test-results').waitFor();
  check((await page.locator('#test-results .summary').textContent()).includes('1 passed, 1 failed'),
    'tests ran: one passed, one failed');
  check(await page.locator('li.test-result[data-passed="false"] .failure-message').count() === 1,
    'the failing test shows its failure message');
  await page.locator('#tests').scrollIntoViewIfNeeded();
}
