// The console's settings page in the browser; called by run.mjs with a signed-in page.
// ctx: { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort }
//
// Create an API token and see it once (the API takes it; a reload does not show it), revoke
// it after the confirmation (the API refuses it); save SMTP settings with a password and
// check the password is never displayed; a hostile token name stays text.

export async function run(ctx) {
  const { page, base, check, eventually, SHOTS, path } = ctx;
  const apiWith = async (token) =>
    (await fetch(`${base}/v1/tokens`, { headers: { authorization: `Bearer ${token}` } })).status;

  await page.getByRole('link', { name: 'Settings' }).click();
  await page.waitForURL(`${base}/console/settings`);
  check(await page.getByRole('heading', { name: 'API tokens' }).isVisible(), 'the settings page shows API tokens');

  // Create: shown once, with a copy button.
  const name = `browser <img src=x onerror=alert('token-name')> ${Date.now()}`;
  await page.getByLabel('Name (what the token is for)').fill(name);
  await page.getByRole('button', { name: 'Create token' }).click();
  const shown = page.locator('#new-token');
  await shown.waitFor();
  const token = await shown.inputValue();
  check(/^fgt_[A-Za-z0-9_-]{40,}$/.test(token), 'the new token is shown');
  await page.getByRole('button', { name: 'Copy' }).click();
  await eventually('the copy button answers', async () =>
    (await page.locator('#new-token-box .copied').textContent()).trim().length > 0);
  check(true, 'the copy button copies (or says how)');
  check(await apiWith(token) === 200, 'the API accepts the new token');
  const row = page.locator('#token-list tr', { hasText: name });
  check(await row.count() === 1, 'the token is listed with its name as text');
  check(await page.locator('main img').count() === 0, 'the hostile token name injected nothing');

  // Never again.
  await page.goto(`${base}/console/settings`);
  check(!(await page.content()).includes(token), 'a reload does not show the token');
  check(await page.locator('#new-token').count() === 0, 'no token field after a reload');
  check((await row.textContent()).includes(token.slice(0, 12)), 'its prefix is listed');

  // Revoke, after the confirmation.
  await row.getByRole('button', { name: /Revoke/ }).click();
  await page.getByRole('heading', { name: /Revoke token/ }).waitFor();
  check(await apiWith(token) === 200, 'nothing revoked before the confirmation');
  await page.getByRole('button', { name: 'Revoke', exact: true }).click();
  await page.waitForURL(/\/console\/settings\?done=token-revoked/);
  check((await page.getByRole('status').first().textContent()).includes('Token revoked'), 'the page says revoked');
  check((await row.textContent()).includes('revoked'), 'the token is listed as revoked');
  check(await apiWith(token) === 401, 'the API refuses the revoked token');

  // SMTP: the password is write-only.
  const password = 'browser-smtp-secret-4711';
  await page.getByLabel('Host').fill('127.0.0.1');
  await page.getByLabel('Port').fill('2525');
  await page.getByLabel('Security (TLS)').selectOption('none');
  await page.getByLabel('User name').fill('flows@acme.example');
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('From (the sender)').fill('Acme Flows <flows@acme.example>');
  await page.getByRole('button', { name: 'Save SMTP settings' }).click();
  await page.waitForURL(/\/console\/settings\?done=smtp-saved/);
  check((await page.locator('#smtp').textContent()).includes('SMTP settings saved.'), 'SMTP settings saved');
  check(!(await page.content()).includes(password), 'the SMTP password is not in the page');
  check(await page.getByLabel('Password', { exact: true }).inputValue() === '', 'the password field is empty');
  check((await page.locator('#smtp-password-state').textContent()).includes('set'), 'the password shows as set');
  check(await page.getByLabel('Host').inputValue() === '127.0.0.1', 'the host is shown');
  const smtp = await ctx.api('GET', '/v1/smtp');
  check(smtp.json.passwordSet === true && smtp.json.port === 2525, 'the API sees the saved settings');

  await page.screenshot({ path: path.join(SHOTS, 'settings.png'), fullPage: true });
}
