// Headless-browser check of the FastAPI docs pages (Swagger UI at /docs, ReDoc at /redoc).
//
// - offline: every request the page makes must go to the app's own host; anything else is
//   recorded, aborted and fails the check;
// - Swagger UI renders, the Authorize button logs in through the OAuth2 password flow,
//   and "Try it out" on GET /users/me shows 200 with the user's email;
// - ReDoc renders.
//
// Usage (a manual check, not part of CI: it needs Debian's chromium and npm's playwright-core):
//   apt-get install chromium && npm install playwright-core   # in a scratch folder
//   make run &  # then register CHECK_EMAIL with CHECK_PASSWORD
//   BASE_URL=http://127.0.0.1:8000 node scripts/check_docs_in_browser.mjs
// Env: BASE_URL (default http://127.0.0.1:8765), CHECK_EMAIL, CHECK_PASSWORD (an existing user),
//      CHROMIUM (default /usr/bin/chromium), OUT_DIR (screenshots; default this directory).
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:8765';
const EMAIL = process.env.CHECK_EMAIL ?? 'ada@example.com';
const PASSWORD = process.env.CHECK_PASSWORD ?? 'correct horse battery staple';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const OUT = process.env.OUT_DIR ?? dirname(fileURLToPath(import.meta.url));
const ALLOWED_HOST = new URL(BASE).hostname;
// Swagger UI and ReDoc behave differently on loopback hosts (e.g. Swagger UI's validator badge is
// skipped when the spec URL contains "localhost"/"127.0.0.1"), so /docs is also loaded through
// this non-loopback name, mapped to the app's address inside Chromium only.
const ALIAS_HOST = process.env.ALIAS_HOST ?? 'docs.example.test';
const ALIAS_BASE = (() => { const u = new URL(BASE); u.hostname = ALIAS_HOST; return u.origin; })();

const failures = [];
const external = new Set();
const consoleErrors = [];
const cspBlocked = [];
const requests = [];
const fail = (msg) => { failures.push(msg); console.log(`FAIL: ${msg}`); };
const pass = (msg) => console.log(`PASS: ${msg}`);

const isLocal = (url) => {
  if (url.startsWith('data:') || url.startsWith('blob:') || url.startsWith('about:')) return true;
  try { return [ALLOWED_HOST, ALIAS_HOST].includes(new URL(url).hostname); } catch { return false; }
};

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--host-resolver-rules=MAP ${ALIAS_HOST} ${new URL(BASE).hostname}`,
  ],
  // playwright-core launches with a fresh temporary --user-data-dir for every launch().
});
console.log(`chromium ${browser.version()}, playwright-core ${
  createRequire(import.meta.url)('playwright-core/package.json').version}`);

async function newPage(label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Abort (and record) anything leaving the app's host, so the check is about the page, not the network.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isLocal(url)) return route.continue();
    external.add(`[${label}] ${route.request().method()} ${url}`);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('request', (r) => {
    requests.push(`[${label}] ${r.method()} ${r.url()}`);
    if (!isLocal(r.url())) external.add(`[${label}] ${r.method()} ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`[${label}] console.error: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`[${label}] pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    // Refused by the page's Content-Security-Policy: the browser never sent it.
    if (r.failure()?.errorText === 'csp') {
      external.delete(`[${label}] ${r.method()} ${r.url()}`);
      cspBlocked.push(`[${label}] ${r.url()}`);
      return;
    }
    consoleErrors.push(`[${label}] requestfailed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return { context, page };
}

async function step(name, fn) {
  try { await fn(); pass(name); return true; } catch (e) {
    fail(`${name}: ${e.message.split('\n')[0]}`); return false;
  }
}

// ---------------------------------------------------------------- Swagger UI
{
  const { page } = await newPage('docs');
  let tokenResponse = null;
  page.on('response', async (r) => {
    if (r.request().method() === 'POST' && r.url().includes('/auth/jwt/login')) {
      const req = r.request();
      tokenResponse = {
        url: r.url(), status: r.status(),
        contentType: req.headers()['content-type'],
        authorizationHeader: req.headers()['authorization'] ?? null,
        body: (req.postData() ?? '').replace(/password=[^&]*/, 'password=***'),
      };
    }
  });
  let meRequestAuth = null;
  page.on('request', (r) => {
    if (r.url().endsWith('/users/me')) meRequestAuth = r.headers()['authorization'] ?? null;
  });

  const ok = await step('docs: page loads and Swagger UI renders', async () => {
    const resp = await page.goto(`${BASE}/docs`, { waitUntil: 'networkidle' });
    if (resp.status() !== 200) throw new Error(`/docs returned ${resp.status()}`);
    await page.locator('.swagger-ui .info .title').waitFor({ timeout: 15000 });
    await page.locator('.opblock').first().waitFor({ timeout: 15000 });
    console.log(`  title: ${(await page.locator('.swagger-ui .info .title').innerText()).replace(/\s+/g, ' ')}`);
    console.log(`  operations rendered: ${await page.locator('.opblock').count()}`);
  });
  await page.screenshot({ path: `${OUT}/01-docs-loaded.png`, fullPage: false });

  if (ok) {
    await step('docs: Authorize dialog filled (OAuth2 password flow)', async () => {
      await page.locator('.auth-wrapper button.authorize').click();
      const dialog = page.locator('.dialog-ux .modal-ux');
      await dialog.waitFor();
      await dialog.locator('#oauth_username').fill(EMAIL);
      await dialog.locator('#oauth_password').fill(PASSWORD);
      // client id / secret are left empty
      for (const sel of ['#client_id', '#client_secret']) {
        if (await dialog.locator(sel).count()) {
          const v = await dialog.locator(sel).inputValue();
          if (v !== '') throw new Error(`${sel} is not empty: ${v}`);
        }
      }
    });
    await page.screenshot({ path: `${OUT}/02-authorize-dialog-filled.png` });

    await step('docs: dialog Authorize logs in', async () => {
      const dialog = page.locator('.dialog-ux .modal-ux');
      await dialog.locator('.auth-btn-wrapper button.authorize').click();
      // On success Swagger UI swaps the button for "Logout" and shows "Authorized".
      await dialog.locator('button:has-text("Logout")').waitFor({ timeout: 10000 });
      const errs = await dialog.locator('.errors').allInnerTexts();
      if (errs.join('').trim()) throw new Error(`dialog errors: ${errs.join(' | ')}`);
      console.log(`  token request: ${JSON.stringify(tokenResponse)}`);
      if (!tokenResponse || tokenResponse.status !== 200) {
        throw new Error(`token request did not succeed: ${JSON.stringify(tokenResponse)}`);
      }
      await page.screenshot({ path: `${OUT}/03-authorized.png` });
      await dialog.locator('button.btn-done').click();
      await dialog.waitFor({ state: 'detached' });
      const locked = await page.locator('.auth-wrapper button.authorize.locked').count();
      if (!locked) throw new Error('Authorize button does not show the locked state after closing');
    });

    await step('docs: GET /users/me via Try it out -> 200 with the email', async () => {
      const op = page.locator('.opblock.opblock-get', {
        has: page.locator('.opblock-summary-path[data-path="/users/me"]'),
      });
      await op.locator('.opblock-summary').first().click();
      await op.locator('button.try-out__btn').click();
      await op.locator('button.execute').click();
      const row = op.locator('.live-responses-table tbody .response').first();
      await row.waitFor({ timeout: 10000 });
      const code = (await row.locator('.response-col_status').innerText()).trim();
      const body = (await row.locator('.response-col_description .microlight, ' +
        '.response-col_description pre').first().innerText()).trim();
      const curl = (await op.locator('.curl-command').innerText().catch(() => '')).trim();
      console.log(`  UI response code: ${code}`);
      console.log(`  UI response body: ${body.replace(/\s+/g, ' ')}`);
      console.log(`  UI curl: ${curl.replace(/\s+/g, ' ').replace(/Bearer \S+/, 'Bearer <token>')}`);
      console.log(`  Authorization header sent: ${meRequestAuth ? meRequestAuth.slice(0, 14) + '…' : null}`);
      await row.scrollIntoViewIfNeeded();
      await page.screenshot({ path: `${OUT}/04-users-me-response.png` });
      if (code !== '200') throw new Error(`response code shown is ${code}`);
      if (!body.includes(EMAIL)) throw new Error(`body does not contain ${EMAIL}`);
    });
  }
  await page.context().close();
}

// ---------------------------------------------------------------- ReDoc
{
  const { page } = await newPage('redoc');
  await step('redoc: renders', async () => {
    const resp = await page.goto(`${BASE}/redoc`, { waitUntil: 'networkidle' });
    if (resp.status() !== 200) throw new Error(`/redoc returned ${resp.status()}`);
    await page.locator('.api-info h1, .api-content h1').first().waitFor({ timeout: 15000 });
    const h1 = (await page.locator('.api-content h1').first().innerText()).trim();
    const ops = await page.locator('.menu-content li[data-item-id^="tag/"], .menu-content label[role="menuitem"]').count();
    console.log(`  title: ${h1}; menu items: ${ops}`);
    if (!(await page.getByText('/users/me').count())) throw new Error('"/users/me" not found on the page');
  });
  await page.screenshot({ path: `${OUT}/05-redoc.png` });
  await page.context().close();
}

// ---------------------------------------------------------------- Swagger UI, non-loopback host
{
  const { page } = await newPage('docs@alias');
  await step(`docs via ${ALIAS_BASE} (non-loopback name): renders`, async () => {
    const resp = await page.goto(`${ALIAS_BASE}/docs`, { waitUntil: 'networkidle' });
    if (resp.status() !== 200) throw new Error(`/docs returned ${resp.status()}`);
    await page.locator('.opblock').first().waitFor({ timeout: 15000 });
    await page.waitForTimeout(1000);
  });
  await page.screenshot({ path: `${OUT}/06-docs-alias-host.png` });
  await page.context().close();
}

await browser.close();

const ext = [...external];
for (const label of ['docs', 'redoc', 'docs@alias']) {
  const mine = ext.filter((e) => e.startsWith(`[${label}]`));
  if (mine.length) fail(`offline [${label}]: external requests attempted:\n    ${mine.join('\n    ')}`);
  else pass(`offline [${label}]: no request left the app's host`);
}
console.log(cspBlocked.length ? `blocked by CSP (never sent):\n    ${cspBlocked.join('\n    ')}` : 'blocked by CSP: none');
console.log(`requests:\n    ${requests.join('\n    ')}`);
console.log(consoleErrors.length ? `console errors:\n    ${consoleErrors.join('\n    ')}` : 'console errors: none');
console.log(failures.length ? `RESULT: FAIL (${failures.length})` : 'RESULT: PASS');
process.exit(failures.length ? 1 : 0);
