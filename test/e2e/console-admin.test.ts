import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from '../api/api-harness.js';
import { login, SCREENSHOTS, startConsole, type ConsoleHarness } from './console-harness.js';

/**
 * The console's admin page in real headless Chromium against a real API server and SQLite
 * file: creating a token (its value shown once), signing in with it, revoking it (and the
 * last admin token refused), the audit trail with paging, and a viewer's read-only mode.
 */

interface TokenJson {
  id: string;
  name: string;
  role: 'viewer' | 'admin';
  createdBy: string;
  lastUsedAtMs: number | null;
  revokedAtMs: number | null;
}
interface AuditJson {
  id: number;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

const text = (page: Page, sel: string) => page.locator(sel).innerText();
const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

async function call(
  c: ConsoleHarness,
  method: string,
  path: string,
  token = ADMIN_TOKEN,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(c.baseUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: res.status === 204 ? null : await res.json() };
}

async function tokens(c: ConsoleHarness): Promise<TokenJson[]> {
  const res = await call(c, 'GET', '/api/tokens');
  expect(res.status).toBe(200);
  return (res.body as { items: TokenJson[] }).items;
}

async function allAudit(c: ConsoleHarness): Promise<AuditJson[]> {
  const res = await call(c, 'GET', '/api/audit?limit=500');
  expect(res.status).toBe(200);
  const page = res.body as { items: AuditJson[]; nextCursor: string | null };
  expect(page.nextCursor).toBeNull();
  return page.items;
}

async function openAdmin(c: ConsoleHarness): Promise<Page> {
  const page = await c.newPage();
  await login(page, ADMIN_TOKEN);
  await page.click('#nav a[data-route="admin"]');
  await page.waitForSelector('#tokens-table');
  await page.waitForSelector('#audit-table tbody tr[data-audit]');
  return page;
}

const row = (page: Page, tokenId: string) => page.locator(`#tokens-table tr[data-token="${tokenId}"]`);

describe('console admin page', () => {
  let c: ConsoleHarness;

  beforeAll(async () => {
    c = await startConsole();
  });
  afterAll(() => c.shutdown());
  afterEach(() => {
    expect(c.pageErrors).toEqual([]);
  });

  it('creates a token, shows its value once, and the new token signs in', async () => {
    const page = await openAdmin(c);
    const before = await tokens(c);
    await page.fill('#token-form input[name="name"]', 'pbx-monitor');
    await page.selectOption('#token-form select[name="role"]', 'viewer');
    await page.click('#create-token');
    await page.waitForSelector('#token-reveal');
    const value = await page.inputValue('#new-token-value');
    expect(await text(page, '#token-reveal')).toContain('Shown once');
    await shot(page, 'console-admin-token-created');

    const after = await tokens(c);
    expect(after).toHaveLength(before.length + 1);
    const created = after.find((t) => !before.some((b) => b.id === t.id))!;
    expect(created).toMatchObject({ name: 'pbx-monitor', role: 'viewer', createdBy: 'bootstrap-admin' });
    expect(value).toMatch(/^vg_/);
    // The list shows the new token, and the form is ready for the next one.
    await expect.poll(() => row(page, created.id).innerText()).toContain('pbx-monitor');
    expect(await row(page, created.id).innerText()).toContain('active');
    expect(await page.inputValue('#token-form input[name="name"]')).toBe('');

    // The value the page showed is a working token: through the API, then through the login form.
    const me = await call(c, 'POST', '/api/auth/login', '', { token: value });
    expect(me).toEqual({ status: 200, body: { name: 'pbx-monitor', role: 'viewer' } });
    const other = await c.newPage();
    await login(other, value);
    expect(await text(other, '#who-role')).toBe('viewer');
    expect(await text(other, '#who-name')).toBe('pbx-monitor');

    // Once: after a reload the value is nowhere on the page, though the token is listed (used now).
    await page.reload();
    await page.waitForSelector(`#tokens-table tr[data-token="${created.id}"]`);
    expect(await page.locator('#token-reveal').count()).toBe(0);
    expect(await page.content()).not.toContain(value);
    const used = (await tokens(c)).find((t) => t.id === created.id)!;
    expect(used.lastUsedAtMs).not.toBeNull();
    expect(await row(page, created.id).locator('td').nth(4).innerText()).not.toBe('—');
  });

  it('keeps the form and shows the error when creating fails', async () => {
    const page = await openAdmin(c);
    const before = await tokens(c);
    // Bad input: the API's message at the field, the chosen role still selected.
    await page.selectOption('#token-form select[name="role"]', 'admin');
    await page.click('#create-token');
    const nameError = page.locator('#token-form [data-field="name"] .field-error');
    await expect.poll(() => nameError.innerText()).toMatch(/fewer than 1 characters/);
    expect(await page.inputValue('#token-form select[name="role"]')).toBe('admin');

    // Any other failure: an error box, and nothing typed is lost.
    await page.route('**/api/tokens', (route) =>
      route.request().method() === 'POST'
        ? route.fulfill({
            status: 503,
            contentType: 'application/json',
            body: JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'store is busy' }),
          })
        : route.continue(),
    );
    await page.fill('#token-form input[name="name"]', 'backup-admin');
    await page.click('#create-token');
    await expect.poll(() => text(page, '#admin-page .error-box')).toContain('store is busy');
    expect(await page.inputValue('#token-form input[name="name"]')).toBe('backup-admin');
    expect(await page.inputValue('#token-form select[name="role"]')).toBe('admin');
    expect(await page.locator('#token-reveal').count()).toBe(0);
    expect(await tokens(c)).toHaveLength(before.length);

    // The same form, submitted again, goes through.
    await page.unroute('**/api/tokens');
    await page.click('#create-token');
    await page.waitForSelector('#token-reveal');
    expect(await page.locator('#admin-page .error-box').count()).toBe(0);
    const added = (await tokens(c)).filter((t) => !before.some((b) => b.id === t.id));
    expect(added).toEqual([expect.objectContaining({ name: 'backup-admin', role: 'admin' })]);
  });

  it('revokes a token after a confirm step, and the revoked token gets 401', async () => {
    const { body } = await call(c, 'POST', '/api/tokens', ADMIN_TOKEN, {
      name: 'old-dashboard',
      role: 'viewer',
    });
    const victim = body as TokenJson & { token: string };
    expect((await call(c, 'GET', '/api/auth/me', victim.token)).status).toBe(200);
    const page = await openAdmin(c);
    const revoke = row(page, victim.id).locator('button:has-text("Revoke")');

    // Cancelling the confirm changes nothing.
    const dialogs: string[] = [];
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await revoke.click();
    expect(dialogs).toHaveLength(1);
    expect(dialogs[0]).toContain('old-dashboard');
    expect((await tokens(c)).find((t) => t.id === victim.id)!.revokedAtMs).toBeNull();
    expect((await call(c, 'GET', '/api/auth/me', victim.token)).status).toBe(200);

    page.once('dialog', (d) => void d.accept());
    await revoke.click();
    await expect.poll(() => row(page, victim.id).locator('td.state').innerText()).toContain('revoked');
    expect(await row(page, victim.id).locator('button').count()).toBe(0);
    expect((await tokens(c)).find((t) => t.id === victim.id)!.revokedAtMs).not.toBeNull();
    expect((await call(c, 'GET', '/api/auth/me', victim.token)).status).toBe(401);
    expect((await call(c, 'POST', '/api/auth/login', '', { token: victim.token })).status).toBe(401);
  });

  it('refuses to revoke the last admin token and says why', async () => {
    // Leave the bootstrap token as the only admin.
    const me = (await tokens(c)).find((t) => t.name === 'bootstrap-admin' && t.revokedAtMs === null)!;
    for (const t of await tokens(c))
      if (t.role === 'admin' && t.revokedAtMs === null && t.id !== me.id)
        expect((await call(c, 'DELETE', `/api/tokens/${t.id}`)).status).toBe(204);
    const page = await openAdmin(c);
    page.once('dialog', (d) => void d.accept());
    await row(page, me.id).locator('button:has-text("Revoke")').click();
    await page.waitForSelector('#revoke-error');
    // The message is the API's own (asked the same question directly afterwards).
    const direct = await call(c, 'DELETE', `/api/tokens/${me.id}`);
    expect(direct.status).toBe(409);
    const message = (direct.body as { message: string }).message;
    expect(await text(page, '#revoke-error')).toContain(message);
    expect(await row(page, me.id).locator('td.state').innerText()).toContain('active');
    await shot(page, 'console-admin-last-admin');
    expect((await call(c, 'GET', '/api/auth/me')).status).toBe(200);
  });

  it('shows the audit trail newest first, token changes included, and pages with Load more', async () => {
    // Enough history for three pages.
    for (let i = 0; i < 120; i++) c.store.audit('seeder', 'seed.entry', `entry-${i}`, { i });
    const page = await openAdmin(c);
    await page.fill('#token-form input[name="name"]', 'audit-me');
    await page.click('#create-token');
    await page.waitForSelector('#token-reveal');
    const created = (await tokens(c)).find((t) => t.name === 'audit-me')!;
    page.once('dialog', (d) => void d.accept());
    await row(page, created.id).locator('button:has-text("Revoke")').click();
    await expect.poll(() => row(page, created.id).locator('td.state').innerText()).toContain('revoked');

    // The audit table followed without a reload: revoked above created, both naming the token.
    const first = page.locator('#audit-table tbody tr').first();
    await expect.poll(() => first.locator('td').nth(2).innerText()).toBe('token.revoked');
    const second = page.locator('#audit-table tbody tr').nth(1);
    expect(await second.locator('td').nth(2).innerText()).toBe('token.created');
    for (const r of [first, second]) {
      expect(await r.locator('td').nth(1).innerText()).toBe('bootstrap-admin');
      expect(await r.locator('td').nth(3).innerText()).toBe(created.id);
      expect(JSON.parse(await r.locator('td').nth(4).innerText())).toEqual({
        name: 'audit-me',
        role: 'viewer',
      });
    }

    // Every entry the API has, in the API's order, one page at a time.
    const expected = await allAudit(c);
    expect(expected.length).toBeGreaterThan(120);
    const shownIds = async () =>
      (
        await page
          .locator('#audit-table tbody tr')
          .evaluateAll((rs) => rs.map((r) => r.getAttribute('data-audit')))
      ).map(Number);
    const pageSize = (await shownIds()).length;
    expect(pageSize).toBeLessThan(expected.length);
    let clicks = 0;
    while (await page.locator('#audit-more').isVisible()) {
      const n = (await shownIds()).length;
      await page.click('#audit-more');
      await expect.poll(async () => (await shownIds()).length).toBeGreaterThan(n);
      clicks++;
    }
    expect(clicks).toBe(Math.ceil(expected.length / pageSize) - 1);
    const ids = await shownIds();
    expect(ids).toEqual(expected.map((a) => a.id));
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    expect(await text(page, '#audit-count')).toContain(String(expected.length));
  });
});

describe('console for a viewer', () => {
  let c: ConsoleHarness;

  beforeAll(async () => {
    c = await startConsole();
    // Something for the viewer to look at: a rule and a list entry.
    const rule = await call(c, 'POST', '/api/policy/rules', ADMIN_TOKEN, {
      name: 'Night shift',
      enabled: true,
      match: { fromNumbers: ['+4930*'] },
      thresholds: { dropLlr: 6 },
    });
    expect(rule.status).toBe(201);
    expect((await call(c, 'POST', '/api/lists/deny', ADMIN_TOKEN, { pattern: '_0900X.' })).status).toBe(201);
  });
  afterAll(() => c.shutdown());
  afterEach(() => {
    expect(c.pageErrors).toEqual([]);
  });

  /** Every form control in `scope` that a user could type into or pick from. */
  const editable = async (page: Page, scope: string) => {
    const controls = page.locator(`${scope} input, ${scope} select, ${scope} textarea`);
    const n = await controls.count();
    const open: string[] = [];
    for (let i = 0; i < n; i++)
      if (await controls.nth(i).isEditable()) open.push((await controls.nth(i).getAttribute('name')) ?? '?');
    return { n, open };
  };

  it('cannot type into the policy or list forms, and sees why', async () => {
    const page = await c.newPage();
    await login(page, c.viewerToken);
    await page.goto(c.baseUrl + '/#/policy');
    await page.waitForSelector('#defaults-form');
    const defaultsForm = await editable(page, '#defaults-form');
    expect(defaultsForm.n).toBeGreaterThanOrEqual(8);
    expect(defaultsForm.open).toEqual([]);
    expect(await page.locator('#save-defaults').isDisabled()).toBe(true);
    expect(await page.locator('#new-rule').isDisabled()).toBe(true);
    expect(await text(page, '.readonly-note')).toContain('Read-only: viewer token');

    // A viewer may open a rule to read it, but not change it; Cancel still closes it.
    await page.click('#rules-table tr[data-rule] button:has-text("View")');
    await page.waitForSelector('#rule-form');
    await shot(page, 'console-viewer-policy');
    const ruleForm = await editable(page, '#rule-form');
    expect(ruleForm.n).toBeGreaterThanOrEqual(15);
    expect(ruleForm.open).toEqual([]);
    expect(await page.inputValue('#rule-form input[name="name"]')).toBe('Night shift');
    expect(await page.locator('#save-rule').isDisabled()).toBe(true);
    await page.click('#rule-form button:has-text("Cancel")');
    await page.waitForSelector('#rule-form', { state: 'detached' });

    await page.goto(c.baseUrl + '/#/lists');
    await page.waitForSelector('#deny-table');
    for (const form of ['#allow-form', '#deny-form']) {
      const f = await editable(page, form);
      expect(f.n).toBeGreaterThanOrEqual(2);
      expect(f.open).toEqual([]);
    }
    expect(await page.locator('#deny-table button:has-text("Remove")').isDisabled()).toBe(true);
    expect(await text(page, '.readonly-note')).toContain('Read-only: viewer token');
    // The admin's view of the same page is editable: the difference is the role, not the page.
    const admin = await c.newPage();
    await login(admin, ADMIN_TOKEN);
    await admin.goto(c.baseUrl + '/#/lists');
    await admin.waitForSelector('#deny-table');
    expect((await editable(admin, '#deny-form')).open).toEqual(['pattern', 'sipStatus', 'note']);
    expect(await admin.locator('.readonly-note').count()).toBe(0);
  });

  it('has no admin link and gets an "admins only" page at #/admin', async () => {
    const page = await c.newPage();
    const apiCalls: string[] = [];
    page.on('request', (r) => {
      const path = new URL(r.url()).pathname;
      if (path === '/api/tokens' || path === '/api/audit') apiCalls.push(path);
    });
    await login(page, c.viewerToken);
    expect(await page.locator('#nav a[data-route="admin"]').isHidden()).toBe(true);
    await page.goto(c.baseUrl + '/#/admin');
    await expect.poll(() => text(page, '#admins-only')).toContain('Admins only');
    expect(await page.locator('#tokens-table, #audit-table, #token-form').count()).toBe(0);
    expect(apiCalls).toEqual([]);
    // And the API agrees.
    expect((await call(c, 'GET', '/api/tokens', c.viewerToken)).status).toBe(403);
    expect((await call(c, 'GET', '/api/audit', c.viewerToken)).status).toBe(403);

    // The link is there for an admin.
    const admin = await c.newPage();
    await login(admin, ADMIN_TOKEN);
    expect(await admin.locator('#nav a[data-route="admin"]').isVisible()).toBe(true);
  });
});
