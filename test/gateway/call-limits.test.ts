import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  callThrough,
  expectBothPassed,
  freeUdpPort,
  runSipp,
  startGateway,
  type TestGateway,
} from './sipp-harness.js';

/** Calls the gateway ends or refuses by itself: ring timeout and the policy's deny list. */
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ 'sip.inviteTimeoutMs': 1000 });
});
afterAll(async () => {
  await gw?.stop();
});

describe('gateway-side call ends', () => {
  it('an unanswered INVITE is cancelled toward the PBX and answered 408 to the caller', async () => {
    const before = gw.events('call.ended').length;
    const r = await callThrough(gw, { scenario: 'pbx-cancelled.xml' }, { scenario: 'caller-timeout.xml' });
    expectBothPassed(r);
    expect(
      gw
        .events('call.ended')
        .slice(before)
        .map((e) => e.reason),
    ).toEqual(['timeout']);
  });

  it("a deny-listed caller is refused with the policy's 603", async () => {
    gw.server.policy.addListEntry('deny', { pattern: '+4930123456', sipStatus: 603 }, 'test');
    const port = await freeUdpPort();
    const uac = runSipp({ scenario: 'caller-declined.xml', port, target: `127.0.0.1:${gw.sipPort}` });
    const r = await uac.done;
    expect(r.code, r.output + r.errors).toBe(0);
    const started = gw.events('call.started').at(-1);
    expect(started?.treatment).toBe('deny');
  });
});
