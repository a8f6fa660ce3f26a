import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callThrough, expectBothPassed, startGateway, type TestGateway } from './sipp-harness.js';

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
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
  });

  it('logs the caller as its keyed pseudonym; a p: allow entry lets the call through, logged by entry id', async () => {
    const pseudonym = gw.server.pseudonym('+4930123456');
    expect(pseudonym).toMatch(/^p:[0-9a-f]{16}$/);
    const from = gw.logs.length;
    expectBothPassed(
      await callThrough(gw, { scenario: 'pbx-answer.xml' }, { scenario: 'caller-bye.xml', pauseMs: 200 }),
    );
    const started = gw.logs.slice(from).filter((l) => l.event === 'call.started');
    expect(started.map((l) => [l.from, l.treatment])).toEqual([[pseudonym, 'analyse']]);
    expect(JSON.stringify(gw.logs.slice(from))).not.toContain('4930123456');

    const entry = gw.server.policy.addListEntry('allow', { pattern: pseudonym, note: 'test' }, 'test');
    try {
      const next = gw.logs.length;
      expectBothPassed(
        await callThrough(gw, { scenario: 'pbx-answer.xml' }, { scenario: 'caller-bye.xml', pauseMs: 200 }),
      );
      const allowed = gw.logs.slice(next).filter((l) => l.event === 'call.started');
      expect(allowed.map((l) => [l.treatment, l.rule])).toEqual([['allow', `allow list entry ${entry.id}`]]);
      expect(JSON.stringify(gw.logs.slice(next))).not.toContain('4930123456');
    } finally {
      gw.server.policy.removeListEntry('allow', entry.id, 'test');
    }
  });

  it('the PBX hangs up', async () => {
    const before = ended().length;
    const r = await callThrough(gw, { scenario: 'pbx-hangup.xml' }, { scenario: 'caller-wait-bye.xml' });
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-callee', sipStatus: null }]);
  });

  it('relays 486 Busy Here', async () => {
    const before = ended().length;
    const r = await callThrough(gw, { scenario: 'pbx-busy.xml' }, { scenario: 'caller-busy.xml' });
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'rejected', sipStatus: 486 }]);
  });

  it('drops a response of another SIP version with a log line: a SIP/3.0 486 before the real 200 does not end the call', async () => {
    const before = ended().length;
    const beforeDropped = gw.events('sip.parse_error').length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-wrong-version.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
    expect(
      gw
        .events('sip.parse_error')
        .slice(beforeDropped)
        .map((e) => [e.transport, e.reason, e.replied]),
    ).toEqual([['UDP', 'response of unsupported SIP version 3.0', null]]);
  });

  it('CANCEL while ringing: 487 to the caller, CANCEL to the PBX', async () => {
    const before = ended().length;
    const r = await callThrough(gw, { scenario: 'pbx-cancelled.xml' }, { scenario: 'caller-cancel.xml' });
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'cancel', sipStatus: 487 }]);
  });

  it('re-INVITE hold and resume pass both ways', async () => {
    const r = await callThrough(
      gw,
      { scenario: 'pbx-hold-resume.xml' },
      { scenario: 'caller-hold-resume.xml' },
    );
    expectBothPassed(r);
  });

  it('RFC 4028: a session that is not refreshed within Session-Expires is ended, BYE both legs with Reason 408', async () => {
    const before = ended().length;
    const t0 = Date.now();
    const r = await callThrough(
      gw,
      { scenario: 'pbx-session-expires.xml' },
      { scenario: 'caller-session-expires.xml' },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'session-expired', sipStatus: null }]);
    expect(gw.events('sip.session_expired').at(-1)?.intervalS).toBe(2);
    // Not before the 2 s interval, and not much after it.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
  });

  it('RFC 4028: refreshes (UPDATE) restart the session interval, so the call outlives it', async () => {
    const before = ended().length;
    const expiredBefore = gw.events('sip.session_expired').length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-session-refresh.xml' },
      { scenario: 'caller-session-refresh.xml' },
    );
    expectBothPassed(r);
    // 3.6 s after the answer, well past the first 2 s interval, the caller hangs up itself.
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
    expect(gw.events('sip.session_expired').length).toBe(expiredBefore);
  });

  it('digest authentication passes end to end (401 relayed, credentials verified by the PBX)', async () => {
    const r = await callThrough(gw, { scenario: 'pbx-auth.xml' }, { scenario: 'caller-auth.xml' });
    expectBothPassed(r);
  });

  it('a re-INVITE with a delayed offer: the offer in the 200 reaches the caller, the answer in its ACK reaches the PBX', async () => {
    const r = await callThrough(
      gw,
      { scenario: 'pbx-reinvite-delayed-offer.xml' },
      { scenario: 'caller-reinvite-delayed-offer.xml' },
    );
    expectBothPassed(r);
  });

  it('re-INVITEs that the PBX answers with a 2xx without SDP (to an offer, and to none): ACK to the PBX, 502 with Reason to the caller, the call goes on', async () => {
    const before = ended().length;
    const answers = gw.events('sip.no_answer_in_2xx').length;
    const offers = gw.events('sip.no_offer_in_2xx').length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-reinvite-no-sdp-200.xml' },
      { scenario: 'caller-reinvite-502.xml' },
    );
    expectBothPassed(r);
    // The caller's own BYE ended it, after both refused re-INVITEs.
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
    expect(gw.events('sip.no_answer_in_2xx').slice(answers)).toMatchObject([
      { method: 'INVITE', leg: 'b', inDialog: true, status: 200 },
    ]);
    expect(gw.events('sip.no_offer_in_2xx').slice(offers)).toMatchObject([
      { method: 'INVITE', leg: 'b', inDialog: true, status: 200 },
    ]);
  });

  it('delayed offer whose ACK carries no answer: ACK to the PBX, then BYE both legs with Reason 488', async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-delayed-offer-no-answer.xml' },
      { scenario: 'caller-delayed-offer-no-answer.xml' },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'error', sipStatus: null }]);
    expect(gw.events('sip.ack_without_answer').map((e) => e.leg)).toEqual(['a']);
  });

  it('a delayed offer that the PBX answers with a 2xx without an offer: ACK and BYE (Reason 502) to the PBX, 502 to the caller', async () => {
    const before = ended().length;
    const beforeEvents = gw.events('sip.no_offer_in_2xx').length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-delayed-offer-no-sdp-200.xml' },
      { scenario: 'caller-delayed-offer-502.xml' },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'error', sipStatus: 502 }]);
    expect(
      gw
        .events('sip.no_offer_in_2xx')
        .slice(beforeEvents)
        .map((e) => [e.status, e.inDialog ?? false]),
    ).toEqual([[200, false]]);
  });

  it('an offer that the PBX answers with a 2xx without SDP (none before it either): ACK and BYE (Reason 502) to the PBX, 502 to the caller', async () => {
    const before = ended().length;
    const beforeEvents = gw.events('sip.no_answer_in_2xx').length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-offer-no-sdp-200.xml' },
      { scenario: 'caller-offer-502.xml' },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'error', sipStatus: 502 }]);
    expect(
      gw
        .events('sip.no_answer_in_2xx')
        .slice(beforeEvents)
        .map((e) => e.status),
    ).toEqual([200]);
  });

  it("an offer answered only in an unreliable 183, then a 2xx without SDP: the caller's 200 carries that answer", async () => {
    const before = ended().length;
    const beforeEvents = gw.events('sip.answer_from_provisional').length;
    // caller-bye.xml requires the answer (m=audio ... 0 101) in the 200's body.
    const r = await callThrough(
      gw,
      { scenario: 'pbx-early-answer-no-sdp-200.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
    expect(gw.events('sip.answer_from_provisional').length - beforeEvents).toBe(1);
  });

  it('a caller that Requires 100rel gets reliable provisionals and PRACK from voiceguard; the PBX leg is offered 100rel but not required to use it', async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-answer-no-100rel.xml' },
      { scenario: 'caller-100rel.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
    expect(gw.events('sip.prack_unmatched')).toHaveLength(1); // the scenario's PRACK naming no response
  });

  it('a PBX that uses 100rel gets one PRACK per reliable provisional from voiceguard; its retransmission is neither PRACKed nor relayed', async () => {
    const before = ended().length;
    const outOfOrder = gw.events('sip.rseq_out_of_order').length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-100rel.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
    expect(
      gw
        .events('sip.rseq_out_of_order')
        .slice(outOfOrder)
        .map((e) => [e.rseq, e.last]),
    ).toEqual([[3, 1]]);
  });

  it('a reliable provisional from the PBX without a valid RSeq is logged and not PRACKed, and the call goes on', async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-100rel-bad-rseq.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
    expect(gw.events('sip.rseq_invalid').map((e) => e.rseq)).toEqual(['one']);
  });

  it("100rel on both legs: each leg keeps its own RSeq and PRACKs; the caller sees the PBX's 180 once", async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-100rel.xml' },
      { scenario: 'caller-100rel.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
  });

  it('100rel and a delayed offer: the reliable 183 carries the offer, the PRACK the answer, which the held ACK to the PBX then carries', async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-early-offer.xml' },
      { scenario: 'caller-100rel-delayed-offer.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
  });

  it("100rel and a delayed offer whose PRACK brings no answer: after the caller's ACK, BYE both legs with Reason 488", async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-early-offer-no-answer.xml' },
      { scenario: 'caller-100rel-delayed-offer-no-answer.xml' },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'error', sipStatus: null }]);
    expect(gw.events('sip.prack_without_answer')).toHaveLength(1);
  });

  it("100rel on both legs and a delayed offer: the PBX's reliable 183 carries the offer, and voiceguard's PRACK to it the caller's answer; the ACK then has no SDP", async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-100rel-early-offer.xml' },
      { scenario: 'caller-100rel-delayed-offer.xml', pauseMs: 200 },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'bye-caller', sipStatus: null }]);
  });

  it('100rel on both legs and a delayed offer whose PRACK brings no answer: the PBX gets a CANCEL, the caller 488 with Reason', async () => {
    const before = ended().length;
    const r = await callThrough(
      gw,
      { scenario: 'pbx-100rel-early-offer-no-answer.xml' },
      { scenario: 'caller-100rel-delayed-offer-prack-no-answer.xml' },
    );
    expectBothPassed(r);
    expect(ended().slice(before)).toEqual([{ reason: 'error', sipStatus: 488 }]);
  });

  it('works over TCP from the trunk', async () => {
    const r = await callThrough(
      gw,
      { scenario: 'pbx-answer.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 100, transport: 't1' },
    );
    expectBothPassed(r);
  });
});

describe('delayed offer, no ACK from the caller', () => {
  let short: TestGateway;
  beforeAll(async () => {
    short = await startGateway({ 'sip.ackTimeoutMs': 1000 });
  });
  afterAll(async () => {
    await short?.stop();
  });

  it('after sip.ackTimeoutMs the PBX gets its ACK and both legs a BYE with Reason 488', async () => {
    const r = await callThrough(
      short,
      { scenario: 'pbx-delayed-offer-no-answer.xml' },
      { scenario: 'caller-delayed-offer-no-ack.xml' },
    );
    expectBothPassed(r);
    expect(short.events('sip.ack_timeout').map((e) => e.leg)).toEqual(['a']);
    const endedAt = Number(short.events('call.ended')[0]!.time);
    // The PBX answers at once, so the call lasts about the ACK timeout.
    expect(endedAt - Number(short.events('call.started')[0]!.time)).toBeGreaterThanOrEqual(900);
  });
});

describe('a caller that never ACKs its 200', () => {
  let noAck: TestGateway;
  beforeAll(async () => {
    noAck = await startGateway({ 'sip.ackTimeoutMs': 2000, 'sip.timerT1Ms': 100 });
  });
  afterAll(async () => {
    await noAck?.stop();
  });

  it('the 200 is retransmitted from T1 (RFC 3261 13.3.1.4); after sip.ackTimeoutMs both legs get a BYE with Reason 408', async () => {
    const r = await callThrough(
      noAck,
      { scenario: 'pbx-answer-no-ack-bye.xml' },
      { scenario: 'caller-no-ack.xml' },
    );
    expectBothPassed(r);
    // T1 doubling from 100 ms: copies at 0.1, 0.3, 0.7 and 1.5 s within the 2 s wait.
    const retrans = Number(/200 <-+\s+\d+\s+(\d+)/.exec(r.caller.output)?.[1]);
    expect(retrans).toBeGreaterThanOrEqual(3);
    expect(noAck.events('sip.ack_timeout').map((e) => [e.leg, e.cseq])).toEqual([['a', 1]]);
    const ended = noAck.events('call.ended');
    expect(ended.map((e) => [e.reason, e.sipStatus])).toEqual([['ack-timeout', null]]);
    expect(Number(ended[0]!.time) - Number(noAck.events('call.started')[0]!.time)).toBeGreaterThanOrEqual(
      1900,
    );
  });
});

describe('sip.enforceSessionExpiry false', () => {
  let lax: TestGateway;
  beforeAll(async () => {
    lax = await startGateway({ 'sip.enforceSessionExpiry': false });
  });
  afterAll(async () => {
    await lax?.stop();
  });

  it('a session that is not refreshed is left to the endpoints: the caller hangs up after the interval', async () => {
    const r = await callThrough(
      lax,
      { scenario: 'pbx-session-no-refresh.xml' },
      { scenario: 'caller-session-no-refresh.xml' },
    );
    expectBothPassed(r);
    expect(lax.events('call.ended').map((e) => e.reason)).toEqual(['bye-caller']);
    expect(lax.events('sip.session_expired')).toHaveLength(0);
  });
});

describe('100rel, the caller never PRACKs', () => {
  let fast: TestGateway;
  beforeAll(async () => {
    fast = await startGateway({ 'sip.timerT1Ms': 50 });
  });
  afterAll(async () => {
    await fast?.stop();
  });

  it('the reliable 180 is retransmitted from T1, then after 64*T1 the caller gets 504 and the PBX a CANCEL', async () => {
    const r = await callThrough(
      fast,
      { scenario: 'pbx-cancelled.xml' },
      { scenario: 'caller-100rel-no-prack.xml' },
    );
    expectBothPassed(r);
    expect(fast.events('sip.prack_timeout')).toHaveLength(1);
    // sipp counts the copies of the same 180 as retransmissions: T1 doubling from 50 ms gives 6 in 3.2 s.
    const retrans = Number(/180 <-+\s+\d+\s+(\d+)/.exec(r.caller.output)?.[1]);
    expect(retrans).toBeGreaterThanOrEqual(5);
    const ended = fast.events('call.ended');
    expect(ended.map((e) => [e.reason, e.sipStatus])).toEqual([['error', 504]]);
    // 64*T1 = 3.2 s after the call started.
    expect(Number(ended[0]!.time) - Number(fast.events('call.started')[0]!.time)).toBeGreaterThanOrEqual(
      3100,
    );
  });

  it('when the PBX answered meanwhile, the caller still gets 504 and the PBX its ACK and a BYE with Reason 504', async () => {
    const before = fast.events('call.ended').length;
    const r = await callThrough(
      fast,
      { scenario: 'pbx-answer-then-bye.xml' },
      { scenario: 'caller-100rel-no-prack.xml' },
    );
    expectBothPassed(r);
    expect(
      fast
        .events('call.ended')
        .slice(before)
        .map((e) => [e.reason, e.sipStatus]),
    ).toEqual([['error', 504]]);
  });
});
