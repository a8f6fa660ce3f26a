import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  callThrough,
  expectBothPassed,
  freeUdpPort,
  runSipp,
  startGateway,
  type TestGateway,
} from './sipp-harness.js';

/** Calls the gateway ends or refuses by itself: ring timeout, maximum duration and the policy's deny list. */
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ 'sip.inviteTimeoutMs': 1000, 'sip.maxCallSeconds': 1 });
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

  it('an answered call is ended after sip.maxCallSeconds: BYE both legs, Reason Q.850 cause 16', async () => {
    const before = gw.events('call.ended').length;
    const r = await callThrough(gw, { scenario: 'pbx-answer.xml' }, { scenario: 'caller-max-duration.xml' });
    expectBothPassed(r);
    expect(
      gw
        .events('call.ended')
        .slice(before)
        .map((e) => e.reason),
    ).toEqual(['max-duration']);
    expect(gw.events('sip.max_duration').at(-1)?.maxDurationMs).toBe(1000);
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
