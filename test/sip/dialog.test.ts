import { describe, expect, it } from 'vitest';
import { Dialog, targetProblem } from '../../src/sip/dialog.js';
import { SipStack, type SipRequest, type SipResponse } from '../../src/sip/sip-stack.js';

/** The UAC side of one leg: what a response to our INVITE teaches the dialog (RFC 3261 12.1.2). */
function dialog(): Dialog {
  return new Dialog({
    callId: 'c1',
    local: { uri: 'sip:caller@gw', params: { tag: 'ours' } },
    remote: { uri: 'sip:1000@pbx', params: {} },
    remoteTarget: 'sip:1000@pbx',
    routeSet: [],
    localSeq: 1,
    contact: 'sip:voiceguard@127.0.0.1:5060',
  });
}

function response(status: number, tag: string | undefined, rr: string[]): SipResponse {
  return {
    status,
    reason: 'x',
    headers: {
      via: [],
      to: { uri: 'sip:1000@pbx', params: tag ? { tag } : {} },
      from: { uri: 'sip:caller@gw', params: { tag: 'ours' } },
      'call-id': 'c1',
      cseq: { seq: 1, method: 'INVITE' },
      contact: [{ uri: 'sip:pbx@10.0.0.2', params: {} }],
      'record-route': rr.map((uri) => ({ uri, params: {} })),
    },
  } as unknown as SipResponse;
}

describe('Dialog route set', () => {
  it('a 1xx with a tag creates the early dialog: its Record-Route, reversed, routes the PRACK', () => {
    const d = dialog();
    d.updateFromResponse(response(180, 'pbx1', ['sip:p2;lr', 'sip:p1;lr']));
    const prack = d.makeRequest('PRACK', { RAck: '1 1 INVITE' });
    expect(prack.headers.route?.map((r: { uri: string }) => r.uri)).toEqual(['sip:p1;lr', 'sip:p2;lr']);
    expect(prack.headers.to.params.tag).toBe('pbx1');
    expect(prack.uri).toBe('sip:pbx@10.0.0.2');
  });

  it('a 1xx without a tag creates no dialog and leaves the route set alone; the 2xx sets it for good', () => {
    const d = dialog();
    d.updateFromResponse(response(180, undefined, ['sip:p1;lr']));
    expect(d.makeRequest('BYE').headers.route).toBeUndefined();
    d.updateFromResponse(response(200, 'pbx1', ['sip:p3;lr']));
    expect(d.makeRequest('BYE').headers.route?.map((r: { uri: string }) => r.uri)).toEqual(['sip:p3;lr']);
  });
});

describe('remote targets a request could never reach (found by test/gateway/sip-fuzz)', () => {
  it('targetProblem names a URI without a host or with an impossible port; accepts the rest', () => {
    expect(targetProblem('sip:pbx@10.0.0.2')).toBeNull();
    expect(targetProblem('sip:pbx@10.0.0.2:5060;transport=tcp')).toBeNull();
    expect(targetProblem('sip:pbx.example')).toBeNull();
    expect(targetProblem('sip:')).toBe('not a SIP URI with a host');
    expect(targetProblem('')).toBe('not a SIP URI with a host');
    expect(targetProblem(undefined)).toBe('not a SIP URI with a host');
    expect(targetProblem('tel:+4930111')).toBe('not a SIP URI with a host');
    expect(targetProblem('sip:u@[::1')).toBe('not a SIP URI with a host');
    expect(targetProblem('sip:u@10.0.0.2:99999')).toBe('port 99999 out of range');
    expect(targetProblem('sip:u@10.0.0.2:0')).toBe('port 0 out of range');
  });

  it("a response's or re-INVITE's unusable Contact or Record-Route does not become the dialog's target", () => {
    const d = dialog();
    const rs = response(200, 'pbx1', ['sip:;lr']);
    rs.headers.contact = [{ uri: 'sip:pbx@10.0.0.2:70000', params: {} }];
    d.updateFromResponse(rs);
    expect(d.remoteTarget).toBe('sip:1000@pbx');
    expect(d.routeSet).toEqual([]);
    d.updateTarget({ headers: { contact: [{ uri: '', params: {} }] } } as unknown as SipRequest);
    expect(d.makeRequest('BYE').uri).toBe('sip:1000@pbx');
    d.updateTarget({
      headers: { contact: [{ uri: 'sip:pbx@10.0.0.3', params: {} }] },
    } as unknown as SipRequest);
    expect(d.makeRequest('BYE').uri).toBe('sip:pbx@10.0.0.3');
  });

  it('SipStack.send reports a request it cannot send instead of throwing', async () => {
    const errors: string[] = [];
    const stack = new SipStack({
      host: '127.0.0.1',
      port: 0,
      publicAddress: '127.0.0.1',
      udp: true,
      tcp: false,
      onRequest: () => undefined,
      onError: (err) => errors.push((err as Error).message),
    });
    try {
      const bye = dialog().makeRequest('BYE');
      bye.uri = 'sip:'; // what a fuzzed Contact made of the target before the check at intake
      expect(() => stack.send(bye, () => undefined)).not.toThrow();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^could not send BYE to sip:: /);
    } finally {
      await stack.close();
    }
  });
});
