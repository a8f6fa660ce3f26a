import { describe, expect, it } from 'vitest';
import { Dialog } from '../../src/sip/dialog.js';
import type { SipResponse } from '../../src/sip/sip-stack.js';

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
