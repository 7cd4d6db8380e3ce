// The console's admin pages in the browser; called by run.mjs with a signed-in page.
// ctx: { page, context, browser, base, api, hook, check, eventually, SHOTS, TOKEN, path, upstreamPort }

export async function run(ctx) {
  void ctx;
}
