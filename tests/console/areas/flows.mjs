// The console's flow page in the browser; called by run.mjs with a signed-in page.
// ctx: { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort }
//
// Opens a flow page from its URL, copies the webhook URL with the Copy button (the clipboard
// holds exactly the URL the webhook API serves), switches to the Steps panel with the
// keyboard, lays an execution over the diagram, and keeps screenshots (flow.png is the one
// the docs show).

const SLUG = 'flows-e2e';

const YAML = (upstreamPort) => `
integration: ${SLUG}
name: Shop orders
connections:
  erp: { bearer: { token: "erp-token-never-shown" } }
flows:
  - flow: orders
    name: Orders from the shop
    description: Takes each new order from the web shop, routes it by region and books its lines in the ERP.
    connection: erp
    orderBy: '$trigger.body.customer'
    notifyEmails: "ops@shop.example, oncall@shop.example"
    notifyOnRecovery: true
    trigger:
      webhook:
        path: shop/orders
        methods: [POST]
        auth: { apiKey: { header: X-Shop-Key, keys: [ { label: webshop, secret: "e2e-shop-key-123456" } ] } }
        query:
          region: { default: eu, description: Shop region }
        respond: { mode: sync, timeout: 20s }
    steps:
      - { id: shape, transform: '{ id: .body.id, region: $trigger.query.region, lines: .body.lines }' }
      - id: route
        switch:
          - when: '.region == "eu"'
            steps: [ { id: eu_vat, transform: '. + { vat: 0.25 }' } ]
          - default:
              - { id: other_vat, transform: '. + { vat: 0 }' }
      - id: lines
        foreach:
          items: '.lines'
          concurrency: 4
          steps:
            - { id: book, http: { method: POST, url: "http://127.0.0.1:${upstreamPort}/lines", json: "{{ . }}" }, retry: { attempts: 2 }, onError: continue }
      - id: notify
        parallel:
          crm: [ { id: crm_note, transform: '{ note: "order booked" }' } ]
          audit: [ { id: audit_log, log: "order booked" } ]
      - { id: enrich, call: { flow: customer } }
      - { id: answer, respond: { status: 200, body: { ok: true } } }
  - flow: customer
    name: Customer lookup
    trigger: { manual: {} }
    steps:
      - { id: lookup, transform: '{ customer: "c-1" }' }
`;

export async function run(ctx) {
  const { page, context, base, api, check, SHOTS, path } = ctx;
  const applied = await api('PUT', `/v1/integrations/${SLUG}`, YAML(ctx.upstreamPort), 'application/yaml');
  check(applied.status === 201, `flows: integration applied (${applied.status} ${JSON.stringify(applied.json)})`);
  const flow = (await api('GET', `/v1/integrations/${SLUG}/flows/orders`)).json;

  // One execution, for the last execution and the diagram's overlay.
  const res = await fetch(`${flow.webhookUrl}?region=eu`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-shop-key': 'e2e-shop-key-123456' },
    body: JSON.stringify({ id: 'A-1001', customer: 'c-1', lines: [{ sku: 'tea', qty: 2 }, { sku: 'mug', qty: 1 }] }),
  });
  check(res.status === 200, `flows: the webhook answered (${res.status})`);

  // Open the page from its URL: the General panel.
  const url = `${base}/console/integrations/${SLUG}/flows/orders`;
  await page.goto(url);
  check(await page.locator('h1').textContent() === 'Orders from the shop', 'flows: the flow page opens from its URL');
  check(await page.locator('#general').isVisible() && !(await page.locator('#steps').isVisible()),
    'flows: the General panel shows first');
  check(await page.locator('#webhook-url').textContent() === flow.webhookUrl, 'flows: the full webhook URL is shown');
  check(!(await page.content()).includes('e2e-shop-key-123456'), 'flows: the webhook key is never shown');
  // A sync caller is answered at the respond step; the execution ends just after.
  await ctx.eventually('the last execution has ended', async () => {
    if ((await page.locator('#last-execution').textContent()).includes('succeeded')) return true;
    await page.reload();
    return false;
  });
  check(true, 'flows: the last execution is shown');

  // Copy: the clipboard holds the URL, and the page says so.
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await page.getByRole('button', { name: 'Copy' }).first().click();
  await page.locator('#webhook-url-copied', { hasText: 'Copied' }).waitFor({ timeout: 5000 });
  check(true, 'flows: Copy confirms with "Copied"');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === flow.webhookUrl, `flows: the clipboard holds the webhook URL (${copied})`);
  await page.screenshot({ path: path.join(SHOTS, 'flow.png') });

  // The Steps panel, by keyboard: the diagram with its branches and the call linked.
  await page.locator('#tab-general').focus();
  await page.keyboard.press('ArrowRight');
  check(await page.locator('#steps').isVisible() && !(await page.locator('#general').isVisible()),
    'flows: the arrow key switches to the Steps panel');
  check(await page.locator('#diagram .branches.switch .branch').count() === 2, 'flows: the switch cases stand side by side');
  check(await page.locator('#diagram .branches.parallel .branch').count() === 2, 'flows: the parallel branches stand side by side');
  check(await page.locator('#diagram .body.loop li.node[data-step="lines[*].book"]').count() === 1,
    "flows: the loop's body is nested in it");
  const callHref = await page.locator('li.node[data-step="enrich"] .call-target a').getAttribute('href');
  check(callHref === `/console/integrations/${SLUG}/flows/customer`, 'flows: the call links to the called flow');

  // Lay the execution over the diagram.
  await page.getByLabel('Show an execution').selectOption({ index: 1 });
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForURL(/execution=/);
  check(await page.locator('#steps').isVisible(), 'flows: the Steps panel stays open with an execution');
  const statusOf = (step) => page.locator(`li.node[data-step="${step}"]`).getAttribute('data-status');
  check(await statusOf('shape') === 'succeeded' && await statusOf('eu_vat') === 'succeeded',
    'flows: the steps that ran show as succeeded');
  check(await statusOf('other_vat') === 'not run', 'flows: the case not taken shows as not run');
  check(await statusOf('lines[*].book') === 'succeeded', "flows: the loop's step shows its items' status");
  const shape = page.locator('li.node[data-step="shape"] > .card');
  await shape.locator('summary', { hasText: 'Output' }).click();
  check((await shape.locator('.step-data pre').last().textContent()).includes('A-1001'),
    "flows: a step's output opens from the diagram");
  await page.screenshot({ path: path.join(SHOTS, 'flow-steps.png'), fullPage: true });

  // Back to General, and the active switch round trip.
  await page.locator('#tab-general').click();
  await page.getByRole('button', { name: 'Deactivate' }).click();
  await page.waitForURL(url);
  check((await page.locator('#flow-active').textContent()).includes('inactive'), 'flows: Deactivate switches the flow off');
  await page.getByRole('button', { name: 'Activate' }).click();
  await page.waitForURL(url);
  check((await api('GET', `/v1/integrations/${SLUG}/flows/orders`)).json.active === true,
    'flows: Activate switches it back on');
}
