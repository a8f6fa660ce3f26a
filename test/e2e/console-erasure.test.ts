import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, emitCall } from '../api/api-harness.js';
import { login, SCREENSHOTS, startConsole, type ConsoleHarness } from './console-harness.js';

/**
 * Erasure from the console's call page (data subject requests), in real headless Chromium against
 * a real API server and SQLite file: one call, or every call of the caller's number, each after a
 * confirm step that can be cancelled.
 */
const text = (page: Page, sel: string) => page.locator(sel).innerText();

describe('console: erasing calls', () => {
  let c: ConsoleHarness;
  const mine: string[] = [];
  let other = '';

  beforeAll(async () => {
    c = await startConsole();
    for (let i = 0; i < 3; i++)
      mine.push(emitCall(c.bus, { from: '+4930555001', to: `+498900010${i}`, scores: [1, 1] }));
    other = emitCall(c.bus, { from: '+4930555002', to: '+4989000200', scores: [2] });
    c.store.flush();
  });
  afterAll(() => c.shutdown());
  afterEach(() => {
    expect(c.pageErrors).toEqual([]);
  });

  async function total(q: string): Promise<number> {
    const res = await fetch(`${c.baseUrl}/api/calls?q=${encodeURIComponent(q)}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    return ((await res.json()) as { total: number }).total;
  }

  it('erases every call of the caller after a confirm, and returns to the call history', async () => {
    const page = await c.newPage();
    await login(page, ADMIN_TOKEN);
    await page.goto(`${c.baseUrl}/#/calls/${mine[1]}`);
    await page.waitForSelector('#erase-number');
    await page.screenshot({ path: join(SCREENSHOTS, 'call-erasure.png'), fullPage: true });
    const dialogs: string[] = [];
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await page.click('#erase-number');
    await expect.poll(() => text(page, '#toast')).toBe('Erased 3 call(s)');
    expect(dialogs[0]).toContain('Erase every call from or to +4930555001');
    await page.waitForFunction("location.hash === '#/calls'");
    expect(await total('+4930555001')).toBe(0);
    expect(await total('+4930555002')).toBe(1);
  });

  it('a cancelled confirm erases nothing; "Erase this call" erases only that call', async () => {
    const page = await c.newPage();
    await login(page, ADMIN_TOKEN);
    await page.goto(`${c.baseUrl}/#/calls/${other}`);
    await page.waitForSelector('#erase-call');
    page.once('dialog', (d) => void d.dismiss());
    await page.click('#erase-call');
    await page.waitForTimeout(300);
    expect(await total('+4930555002')).toBe(1);
    expect(await page.evaluate('location.hash')).toBe(`#/calls/${other}`);
    page.once('dialog', (d) => void d.accept());
    await page.click('#erase-call');
    await expect.poll(() => text(page, '#toast')).toBe('Erased 1 call(s)');
    expect(await total('+4930555002')).toBe(0);
  });

  it('says so, as an error, when the erasure could not be recorded in the erasure ledger', async () => {
    // A real fault: a folder where the ledger file is, so appending to it fails (EISDIR).
    const ledger = c.store.ledger!;
    rmSync(ledger, { force: true });
    mkdirSync(ledger);
    const id = emitCall(c.bus, { from: '+4930555003', to: '+4989000300', scores: [1] });
    c.store.flush();
    const page = await c.newPage();
    await login(page, ADMIN_TOKEN);
    await page.goto(`${c.baseUrl}/#/calls/${id}`);
    await page.waitForSelector('#erase-call');
    page.once('dialog', (d) => void d.accept());
    await page.click('#erase-call');
    await expect
      .poll(() => text(page, '#toast'))
      .toBe(
        'Erased 1 call(s); not recorded in the erasure ledger: restoring a backup would bring it back (see the log)',
      );
    expect(await page.locator('#toast').getAttribute('class')).toContain('error');
    expect(await total('+4930555003')).toBe(0);
  });
});
