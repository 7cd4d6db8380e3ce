// The console's executions pages in the browser; called by run.mjs with a signed-in page.
// ctx: { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort }
//
// Filters the monitor (integration, trigger kind, search by id), bulk-replays the filtered
// set after its dry-run count and confirmation and sees the new executions appear, then
// opens an execution with a loop and sees its timeline (screenshot execution-timeline.png).

const INTEGRATION = `
integration: console-exec
flows:
  - flow: batch
    trigger: { webhook: { path: exec-e2e/batch } }
    steps:
      - { id: shape, transform: '{ items: $trigger.body.items }' }
      - id: each
        foreach:
          items: '.items'
          steps:
            - { id: wait, delay: { for: 50ms } }
            - { id: double, transform: '{ n: ($item * 2) }' }
      - { id: done, transform: '{ total: length }' }
`;

export async function run(ctx) {
  const { page, base, api, hook, check, eventually, SHOTS, path } = ctx;
  const applied = await api('PUT', '/v1/integrations/console-exec', INTEGRATION, 'application/yaml');
  check(applied.status === 201 || applied.status === 200, `executions: integration applied (${applied.status})`);
  const ids = [];
  for (let i = 1; i <= 3; i++) ids.push(await hook({ items: [i, i + 1, i + 2] }, 'exec-e2e/batch'));
  await eventually('the batch executions finish', async () => {
    const r = await api('GET', '/v1/executions?integration=console-exec&status=succeeded');
    return r.json.items.length === 3;
  });

  // Filter: integration and trigger kind, through the form.
  await page.goto(`${base}/console/executions`);
  await page.getByLabel('Integration').selectOption('console-exec');
  await page.getByLabel('Trigger kind').selectOption('webhook');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/integration=console-exec.*triggerKind=webhook/);
  const listed = await page.locator('#executions tbody tr[data-seq]').evaluateAll((rows) => rows.map((r) => r.id));
  check(listed.length === 3 && ids.every((id) => listed.includes(`ex-${id}`)),
    'the monitor filtered by integration and trigger kind lists the three batches');
  // Search by execution id.
  await page.getByLabel('Execution id or delivery identity').fill(ids[1]);
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/search=/);
  check(await page.locator('#executions tbody tr[data-seq]').count() === 1 &&
    await page.locator(`#ex-${ids[1]}`).count() === 1, 'the search by id finds just that execution');
  await page.getByLabel('Execution id or delivery identity').fill('');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL((u) => new URL(u).searchParams.get('search') === '');

  // Bulk replay of the filtered set: the dry-run count, then the confirmation.
  await page.getByRole('button', { name: 'Replay all…' }).click();
  await page.waitForURL(/\/console\/executions\/bulk\?/);
  const question = (await page.locator('#bulk-question').textContent()).trim();
  check(question === 'Replay 3 executions?', `the dry run counts the filtered set ("${question}")`);
  await page.getByRole('button', { name: 'Yes, replay 3 executions' }).click();
  await page.waitForURL(/\/console\/executions\/bulk\/bulk_/);
  await eventually('the bulk job finishes', async () =>
    (await page.locator('#job-done').textContent()).trim() === '3', 20_000);
  check((await page.locator('#job-status').textContent()).includes('succeeded'), 'the bulk job replayed all three');

  // The new executions appear in the monitor (live, as they are replays of this flow).
  await page.goto(`${base}/console/executions?integration=console-exec&triggerKind=replay`);
  await eventually('the replays are listed', async () =>
    (await page.locator('#executions tbody tr[data-seq]').count()) === 3);
  await eventually('the replays succeed', async () =>
    (await page.locator('#executions tbody tr[data-seq]', { hasText: 'succeeded' }).count()) === 3);
  check(true, 'the three replays appeared in the monitor and succeeded');
  await page.screenshot({ path: path.join(SHOTS, 'monitor-filtered.png'), fullPage: true });

  // An execution page: the timeline with the loop's items under their step.
  await page.locator('#executions tbody tr[data-seq] a.id').first().click();
  await page.waitForURL(/\/console\/executions\/[^/]+$/);
  const timeline = page.locator('#timeline');
  check(await timeline.isVisible(), 'the execution page shows a timeline');
  const bars = await timeline.locator('svg.tl-bar').count();
  check(bars >= 1 + 3 * 3 + 2, `a bar per step and loop item entry (${bars})`);
  const widths = await timeline.locator('rect.tl-fill').evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('width'))));
  check(widths.every((w) => w >= 3 && w <= 1000) && Math.max(...widths) > 100, 'bars are drawn to one scale');
  check(await timeline.locator('li.tl-row.item[data-step="each[0].double"]').count() === 1,
    'the loop items are grouped under their step');
  await page.locator('li.items[data-step="each"] > details > summary').click();
  check(await page.locator('li.step.item[data-step="each[2].double"]').isVisible(), 'the items list opens');
  await page.screenshot({ path: path.join(SHOTS, 'execution-timeline.png'), fullPage: true });

  // Replay with a choice of version, confirmed first (then back: nothing is done).
  await page.getByLabel('Replay on').selectOption('original');
  await page.getByRole('button', { name: 'Replay', exact: true }).click();
  check((await page.locator('#confirm-question').textContent()).includes('original version'),
    'a replay is confirmed first, naming the version');
  await page.getByRole('link', { name: 'Cancel' }).click();
  await page.waitForURL(/\/console\/executions\/[^/]+$/);
}
