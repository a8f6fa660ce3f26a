import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callThrough, startGateway, type TestGateway } from './sipp-harness.js';

/**
 * The B2BUA with real sipp peers on 127.0.0.1: every call shape the trunk and the PBX can
 * produce, checked on both sides (both sipp instances must finish their scenario) and in the
 * gateway's own call events.
 */
let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await gw?.stop();
});

function ended(): { reason: unknown; sipStatus: unknown }[] {
  return gw.events('call.ended').map((e) => ({ reason: e.reason, sipStatus: e.sipStatus }));
}

describe('gateway signalling with sipp', () => {
  it('relays a call, rewrites codecs, and the caller hangs up', async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-answer.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 200 },
    );
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
  });

  it('the PBX hangs up', async () => {
    const before = ended().length;
    const r = await callThrough(gw, { scenario: 'pbx-hangup.xml' }, { scenario: 'caller-wait-bye.xml' });
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-callee', sipStatus: null }]);
  });

  it('relays 486 Busy Here', async () => {
    const before = ended().length;
    const r = await callThrough(gw, { scenario: 'pbx-busy.xml' }, { scenario: 'caller-busy.xml' });
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
    expect(ended().slice(before)).toEqual([{ reason: 'rejected', sipStatus: 486 }]);
  });

  it('CANCEL while ringing: 487 to the caller, CANCEL to the PBX', async () => {
    const before = ended().length;
    const r = await callThrough(gw, { scenario: 'pbx-cancelled.xml' }, { scenario: 'caller-cancel.xml' });
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
    expect(ended().slice(before)).toEqual([{ reason: 'cancel', sipStatus: 487 }]);
  });

  it('re-INVITE hold and resume pass both ways', async () => {
    const r = await callThrough(
      gw,
      { scenario: 'pbx-hold-resume.xml' },
      { scenario: 'caller-hold-resume.xml' },
    );
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
  });

  it('digest authentication passes end to end (401 relayed, credentials verified by the PBX)', async () => {
    const r = await callThrough(gw, { scenario: 'pbx-auth.xml' }, { scenario: 'caller-auth.xml' });
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
  });

  it('works over TCP from the trunk', async () => {
    const r = await callThrough(
      gw,
      { scenario: 'pbx-answer.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 100, transport: 't1' },
    );
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
  });
});
