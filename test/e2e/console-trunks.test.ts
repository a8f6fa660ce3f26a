import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TrunkRegistration } from '../../src/api/live-calls.js';
import { ADMIN_TOKEN } from '../api/api-harness.js';
import { login, SCREENSHOTS, startConsole, type ConsoleHarness } from './console-harness.js';

/** The live view shows the trunk registrations (/health), in real Chromium. */
describe('console: trunk registrations', () => {
  let c: ConsoleHarness;
  const expiresAtMs = Date.now() + 3_600_000;
  let regs: TrunkRegistration[] = [
    { trunk: 'carrier-a', state: 'registered', expiresAtMs },
    { trunk: 'carrier-b', state: 'failed', expiresAtMs: null },
  ];
  beforeAll(async () => {
    c = await startConsole({ registrations: () => regs });
  });
  afterAll(() => c.shutdown());
  afterEach(() => {
    expect(c.pageErrors).toEqual([]);
  });

  it('lists each registering trunk with its state, and the expiry while registered', async () => {
    const page = await c.newPage();
    await login(page, ADMIN_TOKEN);
    await page.waitForSelector('#trunk-registrations .trunk-reg');
    const a = page.locator('.trunk-reg[data-trunk="carrier-a"]');
    const b = page.locator('.trunk-reg[data-trunk="carrier-b"]');
    expect(await a.locator('.badge').textContent()).toBe('registered');
    expect(await a.textContent()).toContain('until ');
    expect(await b.locator('.badge').textContent()).toBe('failed');
    expect(await b.textContent()).not.toContain('until ');
    await page.screenshot({ path: join(SCREENSHOTS, 'live-trunks.png') });
  });

  it('shows nothing when no trunk registers', async () => {
    regs = [];
    const page = await c.newPage();
    await login(page, ADMIN_TOKEN);
    expect(await page.locator('#trunk-registrations').isHidden()).toBe(true);
    expect(await page.locator('.trunk-reg').count()).toBe(0);
  });
});
