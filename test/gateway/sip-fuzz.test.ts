import { createSocket, type RemoteInfo } from 'node:dgram';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  callThrough,
  expectBothPassed,
  freeUdpPort,
  startGateway,
  udpBound,
  type TestGateway,
} from './sipp-harness.js';
import { headerLines, headerValue } from '../../bench/sip-text.js';
import { TsPbx } from './ts-pbx.js';
import { mulberry32 as rng } from '../prng.js';

/**
 * Seeded mutation fuzzing of the SIP front door: thousands of valid requests and responses (INVITE
 * with and without SDP, with SRTP keys, re-INVITE, UPDATE, PRACK, BYE, CANCEL, OPTIONS, REGISTER,
 * INFO, responses) each mutated (bytes flipped, lines dropped or repeated, header values replaced by
 * hostile ones, SDP fields corrupted, Content-Length lied about, truncated) and sent over UDP and TCP
 * to a real gateway in this process, whose PBX is a real UDP peer that answers every INVITE.
 *
 * What must hold: nothing escapes as an uncaught exception (vitest fails the run on one), no request
 * handler fails (`sip.handler_error`: a 500 for an input the gateway should have refused with 4xx),
 * every call the fuzz set up ends and gives its media ports back, and a normal call then goes
 * through. The seed is printed with any failure; FUZZ_SEED and FUZZ_COUNT replay or extend a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const COUNT = Number(process.env.FUZZ_COUNT ?? 3000);

const HOSTILE = [
  '',
  ' ',
  '-1',
  '0',
  '4294967296',
  '99999999999999999999999',
  '1e309',
  'NaN',
  '<>',
  '<sip:>',
  'sip:',
  '"unterminated',
  ';;;;',
  ';tag=',
  ';branch=',
  '\u0000',
  '%00%ff',
  '\u202e\u00e9\u4f60\u597d',
  'SIP/2.0',
  '\t',
  'a'.repeat(4096),
  '<sip:a@b>;tag=x;tag=y',
  'sip:u@[::1',
  'sip:u@256.256.256.256:99999',
  '1 INVITE extra',
  'INVITE',
  'application/sdp; charset=',
];

const SDP_HOSTILE = [
  'm=audio 0 RTP/AVP 0',
  'm=audio 70000 RTP/AVP 0',
  'm=audio -5 RTP/AVP',
  'm=audio 4000 RTP/SAVP 0',
  'm=audio 4000/2 RTP/AVP 0 8 18 9 101',
  'm=video 4002 RTP/AVP 96',
  'm=audio 4000 UDP/TLS/RTP/SAVPF 111',
  'm=',
  'c=IN IP6 ::1',
  'c=IN IP4 999.1.1.1',
  'c=IN IP4',
  'c=',
  'a=rtpmap:0',
  'a=rtpmap:300 PCMU/8000',
  'a=rtpmap:96 opus/48000/2',
  'a=rtpmap:18 G729/0',
  'a=fmtp:18 annexb=maybe',
  'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:short',
  'a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:' + 'A'.repeat(200),
  'a=crypto:1 NO_SUCH_SUITE inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz',
  'a=ptime:0',
  'a=ptime:-20',
  'a=maxptime:100000',
  'a=sendonly',
  'a=inactive',
  'o=',
  'v=1',
  't=',
  'b=AS:-1',
];

const CODEC_SDP = (port: number, extra: string[] = []) =>
  [
    'v=0',
    'o=fuzz 1 1 IN IP4 127.0.0.1',
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0 8 18 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:18 G729/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    'a=ptime:20',
    ...extra,
    'a=sendrecv',
    '',
  ].join('\r\n');

/** The valid messages the mutations start from. */
function templates(gwPort: number, myPort: number, n: number): string[] {
  const id = `fz${n}`;
  const req = (
    method: string,
    opts: { toTag?: boolean; body?: string; extra?: string[]; cseq?: number } = {},
  ) => {
    const body = opts.body ?? '';
    return [
      `${method} sip:+4989000${n % 1000}@127.0.0.1:${gwPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${myPort};branch=z9hG4bK-${id}-${method};rport`,
      'Max-Forwards: 70',
      `From: "Fuzz" <sip:+4930${n}@127.0.0.1>;tag=from-${id}`,
      `To: <sip:+4989000${n % 1000}@127.0.0.1>${opts.toTag ? `;tag=to-${id}` : ''}`,
      `Call-ID: ${id}@fuzz`,
      `CSeq: ${opts.cseq ?? 1} ${method === 'ACK' || method === 'CANCEL' ? 'INVITE' : method}`,
      `Contact: <sip:fuzz@127.0.0.1:${myPort}>`,
      'User-Agent: fuzz',
      ...(opts.extra ?? []),
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
  };
  const sdp = CODEC_SDP(30000 + (n % 1000) * 2);
  return [
    req('INVITE', { body: sdp }),
    req('INVITE', { body: sdp, extra: ['Supported: 100rel, timer', 'Session-Expires: 90;refresher=uac'] }),
    req('INVITE', { body: sdp, extra: ['Require: 100rel'] }),
    req('INVITE', {
      body: CODEC_SDP(30000 + (n % 1000) * 2, [
        'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz',
      ]).replace('RTP/AVP', 'RTP/SAVP'),
    }),
    req('INVITE'), // delayed offer
    req('INVITE', { toTag: true, cseq: 2, body: sdp.replace('a=sendrecv', 'a=sendonly') }), // re-INVITE
    req('UPDATE', { toTag: true, cseq: 3, body: sdp }),
    req('PRACK', { toTag: true, cseq: 2, extra: ['RAck: 1 1 INVITE'] }),
    req('ACK', { toTag: true, body: sdp }),
    req('BYE', { toTag: true, cseq: 4 }),
    req('CANCEL'),
    req('OPTIONS'),
    req('REGISTER', { extra: ['Expires: 3600'] }),
    req('INFO', { toTag: true, cseq: 5, extra: ['Content-Type: application/dtmf-relay'] }),
    [
      'SIP/2.0 200 OK',
      `Via: SIP/2.0/UDP 127.0.0.1:${gwPort};branch=z9hG4bK-${id}`,
      `From: <sip:a@127.0.0.1>;tag=f-${id}`,
      `To: <sip:b@127.0.0.1>;tag=t-${id}`,
      `Call-ID: ${id}@fuzz`,
      'CSeq: 1 INVITE',
      'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(sdp)}`,
      '',
      sdp,
    ].join('\r\n'),
  ];
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

/** One to three mutations of a message, chosen by `r`. */
function mutate(r: () => number, msg: string): Buffer {
  let text = msg;
  const rounds = 1 + Math.floor(r() * 3);
  for (let k = 0; k < rounds; k++) {
    const lines = text.split('\r\n');
    const blank = lines.indexOf('');
    const head = blank < 0 ? lines.length : blank;
    const op = Math.floor(r() * 10);
    const at = Math.floor(r() * lines.length);
    if (op === 0) {
      // a header's value replaced by a hostile one
      const i = 1 + Math.floor(r() * Math.max(1, head - 1));
      const line = lines[i] ?? '';
      const colon = line.indexOf(':');
      if (colon > 0) lines[i] = `${line.slice(0, colon)}: ${pick(r, HOSTILE)}`;
    } else if (op === 1) lines.splice(at, 1);
    else if (op === 2) lines.splice(at, 0, lines[at] ?? '');
    else if (op === 3) {
      // an SDP line replaced or added
      const sdpAt = blank >= 0 ? blank + 1 + Math.floor(r() * Math.max(1, lines.length - blank - 1)) : at;
      if (r() < 0.5) lines[sdpAt] = pick(r, SDP_HOSTILE);
      else lines.splice(sdpAt, 0, pick(r, SDP_HOSTILE));
    } else if (op === 4) {
      // Content-Length lies
      const i = lines.findIndex((l) => /^content-length:/i.test(l));
      if (i >= 0)
        lines[i] = `Content-Length: ${pick(r, ['0', '1', '-1', '99999', '5000000000', 'x', ' 12 '])}`;
    } else if (op === 5) {
      // the start line damaged
      lines[0] = pick(r, [
        lines[0]!.replace('SIP/2.0', 'SIP/3.0'),
        lines[0]!.replace(/^\S+/, pick(r, ['INVITE', 'invite', 'FOO', '', 'SIP/2.0'])),
        lines[0]!.replace(/sip:[^ ]+/, pick(r, HOSTILE)),
        lines[0]!.replace(/^SIP\/2\.0 \d+/, `SIP/2.0 ${pick(r, ['0', '99', '1000', '-200', '183'])}`),
        `${lines[0]} trailing`,
      ]);
    } else if (op === 6) {
      // a header with a compact or odd name, or folded
      lines.splice(
        1 + Math.floor(r() * Math.max(1, head - 1)),
        0,
        pick(r, [
          'v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx',
          'i: other@fuzz',
          'l: 3',
          'Via: ',
          ' folded continuation',
          'Record-Route: <sip:10.0.0.9;lr>',
          'Route: <sip:127.0.0.1;lr>,<sip:bad',
          'Session-Expires: 1',
          'Min-SE: 999999',
          'Max-Forwards: 0',
          'Require: foo, 100rel',
          'P-Asserted-Identity: <tel:+;x>',
          'Diversion: <sip:+1@x>;reason=',
          ':novalue',
          'NoColonHere',
        ]),
      );
    } else if (op === 7) {
      // truncated
      return Buffer.from(text.slice(0, Math.floor(r() * text.length)));
    } else if (op === 8) {
      // bytes flipped
      const b = Buffer.from(lines.join('\r\n'));
      for (let j = 0, n = 1 + Math.floor(r() * 6); j < n; j++)
        b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b;
    } else {
      // line endings mixed
      text = lines.join(r() < 0.5 ? '\n' : '\r\n');
      continue;
    }
    text = lines.join('\r\n');
  }
  return Buffer.from(text);
}

let gw: TestGateway;
const pbx = new TsPbx();
beforeAll(async () => {
  gw = await startGateway({
    // Calls the fuzz leaves half-open end fast: no ACK, no RTP, no answer.
    'sip.ackTimeoutMs': 1000,
    'sip.inviteTimeoutMs': 1000,
    'media.rtpTimeoutMs': 1000,
  });
  await pbx.start(gw.pbxPort);
});
afterAll(async () => {
  pbx.close();
  await gw?.stop();
});

/**
 * Waits until `g` holds no call and no media port and `busy()` is false, or `ms` have passed; the
 * caller's expectations then say which of them was left.
 */
async function settle(g: TestGateway, ms: number, busy: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + ms;
  const relay = () => g.server.gateway.mediaStats();
  while (
    (g.server.gateway.activeCalls > 0 || (relay()?.portsInUse ?? 0) > 0 || busy()) &&
    Date.now() < deadline
  )
    await new Promise((done) => setTimeout(done, 200));
}

/** After a fuzz: a normal sipp call through `g` passes, once the fuzzing PBX has freed its port for sipp. */
async function expectNormalCall(g: TestGateway): Promise<void> {
  while (udpBound(g.pbxPort)) await new Promise((done) => setTimeout(done, 50));
  const call = await callThrough(
    g,
    { scenario: 'pbx-answer.xml', mediaPort: await freeUdpPort() },
    { scenario: 'caller-bye.xml', pauseMs: 100, mediaPort: await freeUdpPort() },
  );
  expectBothPassed(call);
}

describe(`SIP fuzzing (seed ${SEED}, ${COUNT} messages)`, () => {
  it('survives mutated SIP over UDP and TCP, ends every call it set up, and then relays a normal call', async () => {
    const r = rng(SEED);
    const sock = createSocket('udp4');
    await new Promise<void>((done) => sock.bind(0, '127.0.0.1', () => done()));
    const myPort = sock.address().port;
    let replies = 0;
    sock.on('message', () => replies++);
    const udpCount = Math.floor(COUNT * 0.8);
    for (let n = 0; n < udpCount; n++) {
      const msg = mutate(r, pick(r, templates(gw.sipPort, myPort, n)));
      sock.send(msg, gw.sipPort, '127.0.0.1');
      if (n % 50 === 49) await new Promise((done) => setTimeout(done, 20)); // ~2500 messages/s
    }
    // TCP: mutated messages back to back on a few connections, so the framing sees them too.
    for (let c = 0; c < 5; c++) {
      await new Promise<void>((done) => {
        const s = connect(gw.sipPort, '127.0.0.1', () => {
          for (let n = 0; n < (COUNT - udpCount) / 5; n++)
            s.write(mutate(r, pick(r, templates(gw.sipPort, myPort, udpCount + c * 1000 + n))));
          setTimeout(() => {
            s.destroy();
            done();
          }, 300);
        });
        s.on('error', () => undefined);
      });
    }
    await new Promise((done) => setTimeout(done, 500));
    expect(replies, 'the gateway answered some of them').toBeGreaterThan(100);

    // Every call the fuzz set up ends (no ACK, no RTP) and gives its ports back.
    await settle(gw, 20_000);
    const relay = () => gw.server.gateway.mediaStats();
    sock.close();
    const handlerErrors = gw.events('sip.handler_error');
    expect(handlerErrors, `seed ${SEED}: ${JSON.stringify(handlerErrors.slice(0, 3))}`).toEqual([]);
    expect(gw.server.gateway.activeCalls, `seed ${SEED}: calls left`).toBe(0);
    expect(relay()?.sessions, `seed ${SEED}: media sessions left`).toBe(0);
    expect(relay()?.portsInUse, `seed ${SEED}: ports left`).toBe(0);
    // It did see real calls, not only garbage: some INVITEs reached the PBX.
    expect(pbx.calls.length).toBeGreaterThan(10);
    expect(gw.events('sip.parse_error').length + gw.events('sip.bad_request').length).toBeGreaterThan(100);

    // And a normal call goes through afterwards.
    pbx.close();
    await expectNormalCall(gw);
  }, 120_000);
});

/** A valid RTP packet: version 2, `pt`, sequence and timestamp, 160 bytes of payload. */
function rtp(
  pt: number,
  seq: number,
  ts: number,
  ssrc: number,
  payload: Buffer = Buffer.alloc(160, 0xff),
): Buffer {
  const h = Buffer.alloc(12);
  h[0] = 0x80;
  h[1] = pt & 0x7f;
  h.writeUInt16BE(seq & 0xffff, 2);
  h.writeUInt32BE(ts >>> 0, 4);
  h.writeUInt32BE(ssrc >>> 0, 8);
  return Buffer.concat([h, payload]);
}

/** One hostile RTP packet: a valid one with its header or payload damaged. */
function badRtp(r: () => number, seq: number): Buffer {
  const pt = pick(r, [0, 8, 18, 101, 13, 9, 96, 127, Math.floor(r() * 128)]);
  const len = pick(r, [0, 1, 2, 10, 19, 20, 21, 40, 159, 160, 161, 320, 1400, Math.floor(r() * 1500)]);
  const payload = Buffer.alloc(len);
  for (let i = 0; i < len; i++) payload[i] = Math.floor(r() * 256);
  const p = rtp(
    pt,
    seq + Math.floor(r() * 3) * pick(r, [1, 1000, 30000]),
    Math.floor(r() * 2 ** 32),
    pick(r, [0x1234, Math.floor(r() * 2 ** 32)]),
    payload,
  );
  const op = Math.floor(r() * 8);
  if (op === 0)
    p[0] = (p[0]! & 0xc0) | 0x20; // padding bit, padding length from the payload's last byte
  else if (op === 1)
    p[0] = (p[0]! & 0xc0) | 0x10; // extension bit without (or with a random) extension
  else if (op === 2)
    p[0] = (p[0]! & 0xc0) | 0x0f; // 15 CSRCs, often longer than the packet
  else if (op === 3)
    p[0] = Math.floor(r() * 256); // any version
  else if (op === 4)
    return p.subarray(0, Math.floor(r() * 12)); // shorter than a header
  else if (op === 5) p[1] = 0x80 | pick(r, [72, 73, 200, 201]); // marker + an RTCP-like type
  return p;
}

describe(`RTP fuzzing (seed ${SEED})`, () => {
  // A gateway of its own, with the default RTP timeout: the test pauses the stream to read counters.
  let g: TestGateway;
  beforeAll(async () => {
    g = await startGateway();
  });
  afterAll(async () => {
    await g?.stop();
  });

  it('a live call survives hostile RTP toward the gateway, keeps relaying, and ends normally', async () => {
    const r = rng(SEED + 1);
    const tsPbx = new TsPbx();
    await tsPbx.start(g.pbxPort);
    const sig = createSocket('udp4');
    const media = createSocket('udp4');
    await new Promise<void>((done) => sig.bind(0, '127.0.0.1', () => done()));
    await new Promise<void>((done) => media.bind(0, '127.0.0.1', () => done()));
    const got: string[] = [];
    sig.on('message', (m) => got.push(m.toString()));
    const waitFor = async (re: RegExp) => {
      const end = Date.now() + 10_000;
      while (!got.some((m) => re.test(m)) && Date.now() < end) await new Promise((d) => setTimeout(d, 20));
      return got.find((m) => re.test(m));
    };
    const myPort = sig.address().port;
    const invite = templates(g.sipPort, myPort, 999_999)[0]!.replace(
      /m=audio \d+/,
      `m=audio ${media.address().port}`,
    );
    const sdpLen = Buffer.byteLength(invite.slice(invite.indexOf('\r\n\r\n') + 4));
    sig.send(invite.replace(/Content-Length: \d+/, `Content-Length: ${sdpLen}`), g.sipPort, '127.0.0.1');
    const ok = await waitFor(/^SIP\/2\.0 200/);
    expect(ok, got.join('\n---\n')).toBeDefined();
    const gwMedia = Number(/m=audio (\d+)/.exec(ok!)![1]);
    const toLine = /^To: .*$/m.exec(ok!)![0];
    const inDialog = (method: string, cseq: number) =>
      [
        `${method} sip:voiceguard@127.0.0.1:${g.sipPort} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${myPort};branch=z9hG4bK-rtpfuzz-${method};rport`,
        'Max-Forwards: 70',
        `From: "Fuzz" <sip:+4930999999@127.0.0.1>;tag=from-fz999999`,
        toLine,
        'Call-ID: fz999999@fuzz',
        `CSeq: ${cseq} ${method}`,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
    sig.send(inDialog('ACK', 1), g.sipPort, '127.0.0.1');

    let seq = 1;
    const ssrc = 0x1234;
    const valid = async (n: number) => {
      for (let i = 0; i < n; i++, seq++) {
        media.send(rtp(0, seq, seq * 160, ssrc), gwMedia, '127.0.0.1');
        if (i % 10 === 9) await new Promise((d) => setTimeout(d, 5));
      }
    };
    await valid(50); // the gateway latches onto this source
    for (let i = 0; i < 5000; i++) {
      media.send(i % 5 === 0 ? rtp(0, seq, seq * 160, ssrc) : badRtp(r, seq), gwMedia, '127.0.0.1');
      seq++;
      if (i % 100 === 99) await new Promise((d) => setTimeout(d, 5));
    }
    // Every valid packet after the fuzz is still taken: relayed to the PBX, or replaced there by
    // the warning tone when the fuzz's noise got a synthetic verdict (policy action warn).
    const taken = () => {
      const m = g.server.gateway.mediaStats()!;
      return m.packetsRelayed + m.packetsReplaced;
    };
    // The worker reports its counters every 250 ms: wait until the fuzz's packets are all counted.
    let before = -1;
    for (let stable = 0; stable < 3;) {
      await new Promise((d) => setTimeout(d, 300));
      const now = taken();
      stable = now === before ? stable + 1 : 0;
      before = now;
    }
    const pbxBefore = tsPbx.rtp.length;
    await valid(100);
    const end0 = Date.now() + 5000;
    while (taken() - before < 100 && Date.now() < end0) await new Promise((d) => setTimeout(d, 50));
    await new Promise((d) => setTimeout(d, 600)); // and no more than those 100
    // Still one live call, still relaying toward the PBX, no relay worker lost.
    expect(g.server.gateway.activeCalls).toBe(1);
    expect(taken() - before, 'valid packets relayed or replaced after the fuzz').toBe(100);
    expect(tsPbx.rtp.length, 'the PBX still receives RTP').toBeGreaterThan(pbxBefore);
    expect(g.events('media.worker_error')).toEqual([]);
    expect(g.events('media.session_lost')).toEqual([]);
    expect(g.events('media.fork_consumer_error')).toEqual([]);
    expect(g.events('sip.handler_error')).toEqual([]);

    sig.send(inDialog('BYE', 2), g.sipPort, '127.0.0.1');
    expect(await waitFor(/^SIP\/2\.0 200 .*\r\n(.|\r\n)*CSeq: 2 BYE/)).toBeDefined();
    const end = Date.now() + 10_000;
    while (g.server.gateway.activeCalls > 0 && Date.now() < end) await new Promise((d) => setTimeout(d, 50));
    expect(g.server.gateway.activeCalls).toBe(0);
    expect(g.server.gateway.mediaStats()?.portsInUse).toBe(0);
    sig.close();
    media.close();
    tsPbx.close();
  }, 60_000);
});

/**
 * The PBX side: a PBX that answers every INVITE with mutated provisional and final responses
 * (headers, SDP answer, status line), as a broken or hostile PBX might.
 */
function fuzzingPbx(r: () => number): {
  start(port: number): Promise<void>;
  close(): void;
  invites: number;
  lastMessageAt: number;
} {
  const sock = createSocket('udp4');
  const state = { invites: 0, lastMessageAt: 0 };
  const branches = new Set<string>();
  const respond = (rq: string, status: string, body = '') => {
    const pickLines = (names: string[]) =>
      rq
        .split('\r\n\r\n')[0]!
        .split('\r\n')
        .slice(1)
        .filter((l) => names.includes(l.slice(0, Math.max(0, l.indexOf(':'))).toLowerCase()));
    const to = pickLines(['to', 't'])[0] ?? 'To: <sip:pbx@127.0.0.1>';
    return [
      `SIP/2.0 ${status}`,
      ...pickLines(['via', 'v']),
      ...pickLines(['from', 'f']),
      /;tag=/i.test(to) ? to : `${to};tag=fuzzpbx`,
      ...pickLines(['call-id', 'i']),
      ...pickLines(['cseq']),
      `Contact: <sip:pbx@127.0.0.1:${sock.address().port}>`,
      'Record-Route: <sip:127.0.0.1:' + sock.address().port + ';lr>',
      'Require: 100rel',
      'RSeq: 1',
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
  };
  sock.on('message', (m, rinfo) => {
    const msg = m.toString();
    const method = msg.slice(0, msg.indexOf(' '));
    const send = (b: Buffer | string) => sock.send(b, rinfo.port, rinfo.address);
    state.lastMessageAt = Date.now();
    if (method === 'INVITE') {
      // A retransmitted INVITE (its transaction got no usable final response) is answered cleanly,
      // so that the gateway's client transactions end and none reaches the next test's PBX.
      const branch = /;branch=([^;\r\n]+)/i.exec(msg)?.[1] ?? '';
      if (branches.has(branch)) {
        send(respond(msg, '500 Server Internal Error'));
        return;
      }
      branches.add(branch);
      state.invites++;
      const sdp = CODEC_SDP(40000 + (state.invites % 1000) * 2);
      // Mutated provisionals and a mutated final answer; now and then a valid one too.
      send(mutate(r, respond(msg, '183 Session Progress', sdp)));
      send(
        r() < 0.3
          ? respond(msg, '200 OK', sdp)
          : mutate(
              r,
              respond(
                msg,
                pick(r, [
                  '200 OK',
                  '180 Ringing',
                  '486 Busy Here',
                  '302 Moved',
                  '401 Unauthorized',
                  '500 Oops',
                ]),
                sdp,
              ),
            ),
      );
    } else if (method === 'BYE' || method === 'CANCEL' || method === 'PRACK' || method === 'UPDATE') {
      send(respond(msg, '200 OK'));
    }
  });
  return {
    start: (port) => new Promise<void>((done) => sock.bind(port, '127.0.0.1', () => done())),
    close: () => sock.close(),
    get invites() {
      return state.invites;
    },
    get lastMessageAt() {
      return state.lastMessageAt;
    },
  };
}

describe(`SIP fuzzing from the PBX side (seed ${SEED})`, () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startGateway({
      'sip.ackTimeoutMs': 1000,
      'sip.inviteTimeoutMs': 1000,
      'media.rtpTimeoutMs': 1000,
    });
  });
  afterAll(async () => {
    await g?.stop();
  });

  it('survives mutated responses from the PBX, ends every call, and then relays a normal call', async () => {
    const r = rng(SEED + 2);
    const pbxFuzz = fuzzingPbx(r);
    await pbxFuzz.start(g.pbxPort);
    const sock = createSocket('udp4');
    await new Promise<void>((done) => sock.bind(0, '127.0.0.1', () => done()));
    const myPort = sock.address().port;
    // Answer the gateway's final responses with an ACK would need their tags; unacknowledged, the
    // gateway's ACK timeout ends them (sip.ackTimeoutMs), which is part of what is tested.
    const n = Math.max(50, Math.floor(COUNT / 10));
    for (let i = 0; i < n; i++) {
      const t = templates(g.sipPort, myPort, 500_000 + i);
      sock.send(pick(r, [t[0]!, t[1]!, t[4]!]), g.sipPort, '127.0.0.1');
      if (i % 20 === 19) await new Promise((d) => setTimeout(d, 30));
    }
    await new Promise((d) => setTimeout(d, 500));
    await settle(g, 20_000);
    const relay = () => g.server.gateway.mediaStats();
    // Until the gateway's transactions toward the PBX are done (retransmissions answered). INVITE
    // retransmissions come 0.5, 1, 2, 4 s apart; a clean answer lost under load means the next gap.
    const quietBy = Date.now() + 15_000;
    while (Date.now() - pbxFuzz.lastMessageAt < 4500 && Date.now() < quietBy)
      await new Promise((d) => setTimeout(d, 200));
    sock.close();
    expect(pbxFuzz.invites, 'INVITEs that reached the fuzzing PBX').toBeGreaterThan(n / 2);
    const handlerErrors = g.events('sip.handler_error');
    expect(handlerErrors, `seed ${SEED}: ${JSON.stringify(handlerErrors.slice(0, 3))}`).toEqual([]);
    expect(g.server.gateway.activeCalls, `seed ${SEED}: calls left`).toBe(0);
    expect(relay()?.portsInUse, `seed ${SEED}: ports left`).toBe(0);
    pbxFuzz.close();
    await expectNormalCall(g);
  }, 120_000);
});

/** A dialog the in-dialog fuzz set up, from one side: what its requests need. */
interface FuzzDialog {
  index: number;
  callId: string;
  /** The From and To header values of this side's requests (with the tags). */
  from: string;
  to: string;
  /** The Request-URI: the other side's Contact. */
  target: string;
  cseq: number;
}

function inDialogRequest(
  d: FuzzDialog,
  myPort: number,
  method: string,
  opts: { body?: string; extra?: string[]; cseq?: number } = {},
): string {
  const body = opts.body ?? '';
  const cseq = opts.cseq ?? ++d.cseq;
  return [
    `${method} ${d.target} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${myPort};branch=z9hG4bK-${d.callId}-${method}-${cseq};rport`,
    'Max-Forwards: 70',
    `From: ${d.from}`,
    `To: ${d.to}`,
    `Call-ID: ${d.callId}`,
    `CSeq: ${cseq} ${method === 'ACK' || method === 'CANCEL' ? 'INVITE' : method}`,
    `Contact: <sip:fuzz@127.0.0.1:${myPort}>`,
    ...(opts.extra ?? []),
    ...(body && !opts.extra?.some((l) => /^content-type:/i.test(l)) ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** One step of a burst, drawn before the burst runs so that a replay does not depend on timing. */
interface BurstStep {
  kind: number;
  mutated: boolean;
  seed: number;
  gapMs: number;
}

function drawBurst(r: () => number, n: number): BurstStep[] {
  return Array.from({ length: n }, () => ({
    kind: Math.floor(r() * 13),
    mutated: r() < 0.7,
    seed: Math.floor(r() * 2 ** 32),
    gapMs: Math.floor(r() * 40),
  }));
}

/**
 * Send a burst of in-dialog requests on `d`, mostly mutated: re-INVITE with and without an offer
 * and with Session-Expires, UPDATE, INFO, OPTIONS, PRACK, stray ACKs, BYE, CANCEL, and methods the
 * gateway does not relay (MESSAGE, REFER, NOTIFY).
 */
async function runBurst(
  d: FuzzDialog,
  myPort: number,
  sdpPort: number,
  steps: BurstStep[],
  send: (b: string | Buffer) => void,
): Promise<void> {
  for (const p of steps) {
    const pr = rng(p.seed);
    const sdp = CODEC_SDP(sdpPort);
    const text = [
      () => inDialogRequest(d, myPort, 'INVITE', { body: sdp.replace('a=sendrecv', 'a=sendonly') }),
      () => inDialogRequest(d, myPort, 'INVITE', { body: sdp }),
      () => inDialogRequest(d, myPort, 'INVITE'), // delayed offer
      () => inDialogRequest(d, myPort, 'INVITE', { body: sdp, extra: ['Session-Expires: 90;refresher=uac'] }),
      () => inDialogRequest(d, myPort, 'UPDATE', { body: sdp }),
      () => inDialogRequest(d, myPort, 'UPDATE', { extra: ['Session-Expires: 90'] }),
      () =>
        inDialogRequest(d, myPort, 'INFO', {
          body: 'Signal=5\r\nDuration=160\r\n',
          extra: ['Content-Type: application/dtmf-relay'],
        }),
      () => inDialogRequest(d, myPort, 'OPTIONS'),
      () => inDialogRequest(d, myPort, 'PRACK', { extra: ['RAck: 1 1 INVITE'] }),
      () => inDialogRequest(d, myPort, 'ACK', { cseq: d.cseq, body: pr() < 0.5 ? sdp : '' }),
      () => inDialogRequest(d, myPort, 'BYE'),
      () => inDialogRequest(d, myPort, 'CANCEL', { cseq: d.cseq }),
      () =>
        inDialogRequest(d, myPort, pick(pr, ['MESSAGE', 'REFER', 'NOTIFY']), {
          body: 'hello',
          extra: ['Content-Type: text/plain', 'Refer-To: <sip:elsewhere@127.0.0.1>', 'Event: refer'],
        }),
    ][p.kind]!();
    send(p.mutated ? mutate(pr, text) : text);
    await new Promise((done) => setTimeout(done, p.gapMs));
  }
}

/**
 * One side's handling of what the gateway sends on the fuzzed dialogs: a 2xx to an INVITE of this
 * side is ACKed every other time (by call and CSeq, so a replay is exact; the rest meet the 2xx
 * retransmission and sip.ackTimeoutMs), with an answer where it carried an offer; a request gets 200,
 * with SDP for every other INVITE (the rest answer an offer with nothing). A dialog is over for this
 * side once it got a BYE or its own BYE got a 2xx.
 */
function dialogPeer(
  sock: ReturnType<typeof createSocket>,
  gwPort: number,
  dialogs: Map<string, FuzzDialog>,
  onFinal2xx: (callId: string, msg: string) => boolean,
  onRequest: (msg: string, rinfo: RemoteInfo) => boolean = () => false,
): { responses: number; ended: Set<string>; retargeted: Set<string>; send: (b: string | Buffer) => void } {
  const myPort = () => sock.address().port;
  // The Contact of each request this side sent, by Call-ID, CSeq number and method as sent (mutated
  // or not): a 2xx to a re-INVITE or UPDATE makes it the dialog's new remote target (RFC 3261
  // 12.2.1.2), and one that is not this side's own address takes the dialog elsewhere.
  const sentContact = new Map<string, string>();
  const state = {
    responses: 0,
    ended: new Set<string>(),
    retargeted: new Set<string>(),
    send: (b: string | Buffer) => {
      const text = b.toString();
      const [seq, method] = (headerValue(text, ['cseq']) ?? '').split(/\s+/);
      const key = `${headerValue(text, ['call-id', 'i'])} ${seq} ${method?.toUpperCase()}`;
      sentContact.set(key, /<([^>]*)>/.exec(headerValue(text, ['contact', 'm']) ?? '')?.[1] ?? '');
      sock.send(b, gwPort, '127.0.0.1');
    },
  };
  sock.on('message', (m, rinfo) => {
    const msg = m.toString();
    const callId = headerValue(msg, ['call-id', 'i']) ?? '';
    const [seq, method] = (headerValue(msg, ['cseq']) ?? '').split(/\s+/);
    if (/^SIP\/\d/.test(msg)) {
      state.responses++;
      const status = Number(msg.slice(8, 11));
      // This side's BYE was taken: the dialog is over for it too.
      if (status >= 200 && status < 300 && method?.toUpperCase() === 'BYE') state.ended.add(callId);
      if (status >= 200 && status < 300 && /^(INVITE|UPDATE)$/i.test(method ?? '')) {
        const contact = sentContact.get(`${callId} ${seq} ${method?.toUpperCase()}`);
        if (contact && contact !== `sip:fuzz@127.0.0.1:${myPort()}`) state.retargeted.add(callId);
      }
      if (status >= 300 && method?.toUpperCase() === 'INVITE') {
        // The ACK of a non-2xx final response (the transaction's own, on the response's Via), so
        // that the gateway stops retransmitting it.
        const ack = [
          `ACK sip:${rinfo.address}:${rinfo.port} SIP/2.0`,
          ...headerLines(msg, ['via', 'v']).slice(0, 1),
          'Max-Forwards: 70',
          ...headerLines(msg, ['from', 'f', 'to', 't', 'call-id', 'i']),
          `CSeq: ${seq} ACK`,
          'Content-Length: 0',
          '',
          '',
        ];
        sock.send(ack.join('\r\n'), rinfo.port, rinfo.address);
        return;
      }
      if (status < 200 || status >= 300 || method?.toUpperCase() !== 'INVITE') return;
      if (onFinal2xx(callId, msg)) return;
      const d = dialogs.get(callId);
      if (d && (Number(seq) + d.index) % 2 === 0) {
        const offer = /\r\n\r\nv=0/.test(msg);
        sock.send(
          inDialogRequest(d, myPort(), 'ACK', { cseq: Number(seq), body: offer ? CODEC_SDP(31000) : '' }),
          rinfo.port,
          rinfo.address,
        );
      }
      return;
    }
    if (onRequest(msg, rinfo)) return;
    const rqMethod = msg.slice(0, msg.indexOf(' '));
    if (rqMethod === 'ACK') return;
    if (rqMethod === 'BYE') state.ended.add(callId);
    const body = rqMethod === 'INVITE' && Number(seq) % 2 === 0 ? CODEC_SDP(31002) : '';
    const lines = [
      'SIP/2.0 200 OK',
      ...headerLines(msg, ['via', 'v', 'from', 'f', 'call-id', 'i', 'cseq']),
      ...headerLines(msg, ['to', 't']).map((l) => (/;tag=/i.test(l) ? l : `${l};tag=peer${callId.length}`)),
      `Contact: <sip:fuzz@127.0.0.1:${myPort()}>`,
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ];
    sock.send(lines.join('\r\n'), rinfo.port, rinfo.address);
  });
  return state;
}

/**
 * Requests inside real dialogs, from both sides at once: a caller sets up answered calls (clean
 * INVITE, ACK to the gateway's 200) against a PBX that answers them, and then each side sends each
 * call a burst of in-dialog requests with the right tags, mostly mutated (runBurst). Each side
 * answers what the gateway relays to it (dialogPeer); the caller ends with a clean BYE per call.
 */
describe(`SIP fuzzing inside dialogs, from both sides (seed ${SEED})`, () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startGateway({
      'sip.ackTimeoutMs': 1000,
      'sip.inviteTimeoutMs': 2000,
      // Long enough for the bursts; the calls carry no RTP.
      'media.rtpTimeoutMs': 8000,
    });
  });
  afterAll(async () => {
    await g?.stop();
  });

  it('survives mutated requests on answered calls, ends every call on both legs, and then relays a normal call', async () => {
    const r = rng(SEED + 3);
    const bind = async (port: number) => {
      const s = createSocket('udp4');
      await new Promise<void>((done) => s.bind(port, '127.0.0.1', () => done()));
      return s;
    };
    const caller = await bind(0);
    const pbx = await bind(g.pbxPort);
    const callerPort = caller.address().port;

    const waiting = new Map<string, (rs: string) => void>();
    const callerDialogs = new Map<string, FuzzDialog>();
    const callerSide = dialogPeer(caller, g.sipPort, callerDialogs, (callId, msg) => {
      const w = waiting.get(callId);
      if (!w) return false;
      waiting.delete(callId);
      w(msg);
      return true;
    });

    // The PBX: answers each new INVITE at once (200 with SDP), and once ACKed, sends its burst.
    const pbxDialogs = new Map<string, FuzzDialog>();
    const pbxBursts: Promise<void>[] = [];
    const pbxAnswered = new Set<string>();
    const pbxSteps = new Map<string, BurstStep[]>();
    const pbxInviteSeq = new Map<string, number>();
    let pbxCalls = 0;
    const onPbxRequest = (msg: string, rinfo: RemoteInfo): boolean => {
      const callId = headerValue(msg, ['call-id', 'i']) ?? '';
      const seq = (headerValue(msg, ['cseq']) ?? '').split(/\s+/)[0];
      if (msg.startsWith('INVITE ') && !pbxDialogs.has(callId)) {
        const index = pbxCalls++;
        const to = `${headerValue(msg, ['to', 't'])};tag=fzpbx${index}`;
        pbxDialogs.set(callId, {
          index,
          callId,
          from: to,
          to: headerValue(msg, ['from', 'f'])!,
          target:
            /<([^>]+)>/.exec(headerValue(msg, ['contact', 'm']) ?? '')?.[1] ?? `sip:127.0.0.1:${g.sipPort}`,
          cseq: 100,
        });
        pbxSteps.set(callId, drawBurst(rng(SEED + 5 + index), 6));
        pbxInviteSeq.set(callId, Number(seq));
        const sdp = CODEC_SDP(33000 + (index % 500) * 2);
        const lines = [
          'SIP/2.0 200 OK',
          ...headerLines(msg, ['via', 'v', 'from', 'f', 'call-id', 'i', 'cseq']),
          `To: ${to}`,
          `Contact: <sip:pbx@127.0.0.1:${g.pbxPort}>`,
          'Content-Type: application/sdp',
          `Content-Length: ${Buffer.byteLength(sdp)}`,
          '',
          sdp,
        ];
        pbx.send(lines.join('\r\n'), rinfo.port, rinfo.address);
        pbxAnswered.add(callId);
        return true;
      }
      if (msg.startsWith('ACK ') && Number(seq) === pbxInviteSeq.get(callId) && pbxSteps.has(callId)) {
        const steps = pbxSteps.get(callId)!;
        pbxSteps.delete(callId);
        const d = pbxDialogs.get(callId)!;
        pbxBursts.push(runBurst(d, g.pbxPort, 34000 + (d.index % 500) * 2, steps, pbxSide.send));
        return true;
      }
      return false;
    };
    const pbxSide = dialogPeer(pbx, g.sipPort, pbxDialogs, () => false, onPbxRequest);

    const calls = Math.max(30, Math.floor(COUNT / 50));
    let set = 0;
    for (let batch = 0; batch < calls; batch += 10) {
      const bursts: Promise<void>[] = [];
      for (let i = batch; i < Math.min(calls, batch + 10); i++) {
        const invite = pick(r, templates(g.sipPort, callerPort, 900_000 + i).slice(0, 2));
        const callId = headerValue(invite, ['call-id', 'i'])!;
        const steps = drawBurst(r, 10);
        bursts.push(
          (async () => {
            const ok = await new Promise<string | null>((done) => {
              const t = setTimeout(() => done(null), 3000);
              waiting.set(callId, (rs) => {
                clearTimeout(t);
                done(rs);
              });
              callerSide.send(invite);
            });
            if (!ok) return;
            set++;
            const d: FuzzDialog = {
              index: i,
              callId,
              from: headerValue(invite, ['from', 'f'])!,
              to: headerValue(ok, ['to', 't'])!,
              target:
                /<([^>]+)>/.exec(headerValue(ok, ['contact', 'm']) ?? '')?.[1] ??
                `sip:127.0.0.1:${g.sipPort}`,
              cseq: 1,
            };
            callerDialogs.set(callId, d);
            callerSide.send(inDialogRequest(d, callerPort, 'ACK', { cseq: 1 }));
            await runBurst(d, callerPort, 32000 + (i % 500) * 2, steps, callerSide.send);
          })(),
        );
      }
      await Promise.all(bursts);
    }
    await Promise.all(pbxBursts);
    await new Promise((done) => setTimeout(done, 300));
    for (const d of callerDialogs.values()) callerSide.send(inDialogRequest(d, callerPort, 'BYE'));

    // A dialog the PBX itself moved elsewhere (a mutated Contact in a re-INVITE or UPDATE that the
    // gateway took) gets its BYE there, not here.
    const pbxOpen = () =>
      [...pbxAnswered].filter((id) => !pbxSide.ended.has(id) && !pbxSide.retargeted.has(id));
    await settle(g, 20_000, () => pbxOpen().length > 0);
    const relay = () => g.server.gateway.mediaStats();
    caller.close();
    pbx.close();
    expect(set, 'calls the fuzz set up').toBeGreaterThan(calls / 2);
    expect(callerSide.responses, 'responses to the caller').toBeGreaterThan(set * 2);
    expect(pbxBursts.length, 'calls the PBX fuzzed').toBeGreaterThan(set / 2);
    expect(pbxSide.responses, 'responses to the PBX').toBeGreaterThan(pbxBursts.length);
    const handlerErrors = g.events('sip.handler_error');
    expect(handlerErrors, `seed ${SEED}: ${JSON.stringify(handlerErrors.slice(0, 3))}`).toEqual([]);
    expect(g.server.gateway.activeCalls, `seed ${SEED}: calls left`).toBe(0);
    expect(relay()?.portsInUse, `seed ${SEED}: ports left`).toBe(0);
    // No half-open dialog on the PBX: every call it answered got a BYE, or took its own.
    expect(pbxSide.retargeted.size, 'PBX dialogs moved by a Contact').toBeLessThan(pbxBursts.length / 4);
    expect(pbxOpen(), `seed ${SEED}: PBX dialogs never ended`).toEqual([]);

    // Until the gateway's transactions toward the PBX are done, then a normal call.
    await new Promise((done) => setTimeout(done, 4500));
    await expectNormalCall(g);
  }, 180_000);
});
