import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { TrunkRegistration } from '../../src/api/live-calls.js';
import { emitCall, MODEL_DECISION, startHarness, type Harness } from '../api/api-harness.js';
import { mulberry32 as rng } from '../prng.js';

/**
 * The web console end to end: a real API server listening on 127.0.0.1 over a real SQLite
 * file, calls seeded through the bus and the store's own write path, and real headless
 * Chromium driving the pages.
 */
export const CHROMIUM = process.env.VOICEGUARD_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(import.meta.dirname, '..', '.artifacts', 'screenshots');

export interface ConsoleHarness extends Harness {
  baseUrl: string;
  browser: Browser;
  /** Script errors and failed console requests seen by any page; tests assert it stays empty. */
  pageErrors: string[];
  /** A fresh browser tab (own sessionStorage) at the console's login page. */
  newPage(): Promise<Page>;
  shutdown(): Promise<void>;
}

export async function startConsole(
  extra: { registrations?: () => TrunkRegistration[] } = {},
): Promise<ConsoleHarness> {
  const h = await startHarness(
    {
      // Every test logs in through the form; the limit itself is covered in test/api.
      api: { loginRateLimit: { max: 1000, windowMs: 60_000 } },
      store: { flushIntervalMs: 60_000, flushMaxRows: 1_000_000, maxQueuedRows: 1_000_000 },
    },
    extra,
  );
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = h.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('API server has no TCP address');
  const baseUrl = `http://127.0.0.1:${addr.port}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  mkdirSync(SCREENSHOTS, { recursive: true });
  const pages: Page[] = [];
  const pageErrors: string[] = [];
  return {
    ...h,
    baseUrl,
    browser,
    pageErrors,
    async newPage() {
      const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
      page.on('pageerror', (err) => pageErrors.push(`script error: ${err.message}`));
      page.on('response', (res) => {
        // A missing asset or module (404) breaks a page quietly; API 4xx are expected in tests.
        if (res.status() >= 400 && !new URL(res.url()).pathname.startsWith('/api/'))
          pageErrors.push(`${res.status()} ${res.url()}`);
      });
      pages.push(page);
      await page.goto(baseUrl + '/');
      return page;
    },
    async shutdown() {
      for (const p of pages) await p.close().catch(() => undefined);
      await browser.close();
      await h.close();
    },
  };
}

/** Logs in through the form and waits for the live view. */
export async function login(page: Page, token: string): Promise<void> {
  await page.fill('#token', token);
  await page.click('#login-btn');
  await page.waitForSelector('#live-table');
}

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export interface SeededCall {
  callId: string;
  truth: 'human' | 'robot';
}

/**
 * Seeds `n` finished calls whose windows behave like the detector's: each window LLR is drawn
 * around a positive mean for robots and a negative one for humans, and the call stops where a
 * sequential test would (drop/human bound, or max listen). Crossing warnLlr records a warn
 * action, crossing dropLlr a synthetic verdict and a drop.
 */
export function seedCalls(
  h: Harness,
  n: number,
  o: { seed?: number; robotShare?: number; startMs?: number; spacingMs?: number; codec?: string } = {},
): SeededCall[] {
  const r = rng(o.seed ?? 1);
  const { dropLlr, warnLlr, humanLlr, maxListenMs } = MODEL_DECISION;
  const startMs = o.startMs ?? Date.now() - n * (o.spacingMs ?? 60_000);
  const out: SeededCall[] = [];
  for (let i = 0; i < n; i++) {
    const truth = r() < (o.robotShare ?? 0.25) ? 'robot' : 'human';
    // Some robots are hard (good TTS over a bad line), some humans look odd: the curves overlap.
    const hard = r() < 0.2;
    const mean = truth === 'robot' ? (hard ? 0.25 : 1.1) : hard ? 0.1 : -0.7;
    const scores: number[] = [];
    let cum = 0;
    let verdict: 'synthetic' | 'human' | 'unsure' = 'unsure';
    const actions: ('drop' | 'warn' | 'log')[] = [];
    for (let tMs = 1500; tMs <= maxListenMs; tMs += 500) {
      const llr = mean + gaussian(r) * 1.1;
      scores.push(llr);
      const before = cum;
      cum += llr;
      if (before < warnLlr && cum >= warnLlr && !actions.includes('warn')) actions.push('warn');
      if (cum >= dropLlr) {
        verdict = 'synthetic';
        actions.push('drop');
        break;
      }
      if (cum <= humanLlr) {
        verdict = 'human';
        break;
      }
    }
    if (verdict === 'unsure') actions.push('log');
    const callId = emitCall(h.bus, {
      atMs: startMs + i * (o.spacingMs ?? 60_000),
      from: `+4930${String(1_000_000 + Math.floor(r() * 8_999_999))}`,
      to: `+49891234${String(i % 100).padStart(2, '0')}`,
      scores,
      verdict,
      actions,
      decisionMs: 1500 + (scores.length - 1) * 500,
      codec: o.codec,
    });
    out.push({ callId, truth });
    if (i % 1000 === 999) h.store.flush();
  }
  h.store.flush();
  return out;
}

/** Labels every `every`-th seeded call with its truth through the store (as POST /labels does). */
export function labelSome(h: Harness, calls: SeededCall[], every: number): void {
  calls.forEach((c, i) => {
    if (i % every === 0) h.store.addLabel(c.callId, c.truth, 'seeded', 'seed');
  });
}
