import { describe, expect, it } from 'vitest';
import { refreshDelayS, Registration } from '../../src/sip/registration.js';
import { captureLogger } from '../log-capture.js';
import type { SipRequest, SipResponse } from '../../src/sip/sip-stack.js';

/**
 * Registration's own logic with a scripted registrar standing in for the network (timeouts and
 * repeated challenges cannot be caused quickly with a real one; the sipp tests in
 * test/gateway/registration.test.ts cover the real exchange).
 */
interface Answer {
  status: number;
  headers?: Record<string, unknown>;
}
function harness(answer: (rq: SipRequest, n: number) => Answer) {
  const sent: SipRequest[] = [];
  const { logger, lines: logs } = captureLogger('debug');
  const states: string[] = [];
  const reg = new Registration(
    {
      trunk: 't',
      registrar: 'registrar.example:5060',
      transport: 'udp',
      aor: 'sip:+4930555000@carrier.example',
      username: 'u',
      password: 'p',
      expiresS: 300,
      contactUser: null,
    },
    {
      send: (rq, onResponse) => {
        sent.push(rq);
        const a = answer(rq, sent.length);
        queueMicrotask(() =>
          onResponse({ reason: '', ...a, headers: a.headers ?? {} } as unknown as SipResponse),
        );
      },
      contactHost: '192.0.2.10',
      contactPort: 5060,
      userAgent: 'voiceguard',
      logger,
      onState: (s) => states.push(s),
      retryDelaysMs: [20, 40],
    },
  );
  return { reg, sent, logs, states };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls `cond` until it holds (a deadline, not a timing: a loaded machine only makes it slower). */
async function until(cond: () => boolean, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${deadlineMs} ms`);
    await sleep(5);
  }
}
const challenge: Answer = {
  status: 401,
  headers: { 'www-authenticate': [{ scheme: 'Digest', realm: '"r"', nonce: '"n1"' }] },
};

describe('Registration', () => {
  it('refreshes 30 s before the granted expiry, or at half of a short one', () => {
    expect(refreshDelayS(3600)).toBe(3570);
    expect(refreshDelayS(60)).toBe(30);
    expect(refreshDelayS(2)).toBe(1);
  });

  it('a second challenge to a signed REGISTER is a failure (wrong password), retried with back-off', async () => {
    const { reg, sent, logs, states } = harness(() => challenge);
    reg.start();
    await sleep(5);
    expect(sent).toHaveLength(2);
    expect(sent[0]!.headers.authorization).toBeUndefined();
    expect(sent[1]!.headers.authorization).toBeDefined();
    expect(logs.filter((l) => l.event === 'sip.register_failed')).toMatchObject([
      { status: 401, retryInMs: 20 },
    ]);
    expect(states).toEqual(['failed']);
    // The retry after 20 ms, then the next after 40 ms, and 40 ms from then on. Waited for by count, not
    // by a fixed sleep: on a loaded machine the timers fire late and a fixed sleep sees fewer retries.
    const failed = () => logs.filter((l) => l.event === 'sip.register_failed');
    await until(() => failed().length >= 3);
    expect(
      failed()
        .slice(0, 3)
        .map((l) => l.retryInMs),
    ).toEqual([20, 40, 40]);
    await reg.stop();
  });

  it("a timeout (the stack's 408) is retried; Retry-After wins over the back-off", async () => {
    const { reg, logs } = harness(() => ({ status: 503, headers: { 'retry-after': '7' } }));
    reg.start();
    await sleep(5);
    expect(logs.find((l) => l.event === 'sip.register_failed')).toMatchObject({
      status: 503,
      retryInMs: 7000,
    });
    await reg.stop();
    const t = harness(() => ({ status: 408 }));
    t.reg.start();
    await sleep(5);
    expect(t.logs.find((l) => l.event === 'sip.register_failed')).toMatchObject({
      status: 408,
      retryInMs: 20,
    });
    await t.reg.stop();
  });

  it('takes the granted expiry from its own Contact, and stop() sends Expires 0 only when registered', async () => {
    const { reg, sent, logs, states } = harness((rq) =>
      rq.headers.expires === '0'
        ? { status: 200 }
        : {
            status: 200,
            headers: {
              contact: [
                { uri: 'sip:other@198.51.100.1:5060', params: { expires: '10' } },
                { uri: 'sip:+4930555000@192.0.2.10:5060', params: { expires: '120' } },
              ],
              expires: '999',
            },
          },
    );
    reg.start();
    await sleep(5);
    expect(logs.find((l) => l.event === 'sip.registered')).toMatchObject({ expiresS: 120 });
    expect(reg.expiresAtMs! - Date.now()).toBeGreaterThan(119_000);
    await reg.stop();
    expect(sent.at(-1)!.headers.expires).toBe('0');
    expect(states).toEqual(['registered', 'stopped']);
    expect(logs.some((l) => l.event === 'sip.unregistered')).toBe(true);
  });

  it('a removal that is refused or not answered is logged as such, and stop() still returns', async () => {
    const refused = harness((rq) => (rq.headers.expires === '0' ? { status: 500 } : { status: 200 }));
    refused.reg.start();
    await sleep(5);
    await refused.reg.stop();
    expect(refused.logs.filter((l) => String(l.event).startsWith('sip.unreg'))).toMatchObject([
      { event: 'sip.unregister_failed', status: 500 },
    ]);
    let answering = true;
    const silent = harness(() => (answering ? { status: 200 } : { status: 0 }));
    silent.reg.start();
    await sleep(5);
    answering = false; // status 0 stands for no answer: the scripted registrar never calls back with a final
    const t0 = Date.now();
    await silent.reg.stop(50);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(silent.logs.filter((l) => String(l.event).startsWith('sip.unreg'))).toMatchObject([
      { event: 'sip.unregister_failed', status: null },
    ]);
  });
});
