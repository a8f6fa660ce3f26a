import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  callThrough,
  expectBothPassed,
  freeUdpPort,
  runSipp,
  startGateway,
  type TestGateway,
} from './sipp-harness.js';

/**
 * The gateway faces the network: garbage, truncated and huge datagrams, junk on TCP, hop-count
 * exhaustion and keepalives must never take it down, and it must go on serving calls.
 */
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await gw?.stop();
});

function udpExchange(port: number, payloads: (string | Buffer)[], waitMs = 400): Promise<string[]> {
  const s = createSocket('udp4');
  const got: string[] = [];
  s.on('message', (m) => got.push(m.toString()));
  return new Promise((resolve) => {
    s.bind(0, '127.0.0.1', () => {
      for (const p of payloads) s.send(p, port, '127.0.0.1');
      setTimeout(() => {
        s.close();
        resolve(got);
      }, waitMs);
    });
  });
}

function request(method: string, extra: string[] = [], localPort = 5999): string {
  return [
    `${method} sip:voiceguard@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK-${Math.random().toString(36).slice(2)};rport`,
    'From: <sip:probe@127.0.0.1>;tag=probe1',
    'To: <sip:voiceguard@127.0.0.1>',
    `Call-ID: ${Math.random().toString(36).slice(2)}@probe`,
    `CSeq: 1 ${method}`,
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

describe('gateway robustness', () => {
  it('answers an out-of-dialog OPTIONS keepalive with 200', async () => {
    const replies = await udpExchange(gw.sipPort, [request('OPTIONS', ['Max-Forwards: 70'])]);
    expect(replies[0]).toMatch(/^SIP\/2\.0 200/);
    expect(replies[0]).toMatch(/Allow: .*INVITE/i);
  });

  it('answers an INVITE that requires an unsupported extension with 420 and names it', async () => {
    const replies = await udpExchange(gw.sipPort, [
      request('INVITE', ['Max-Forwards: 70', 'Require: timer, 100rel, Foo']),
    ]);
    const r = replies.find((m) => m.startsWith('SIP/2.0 420'));
    expect(r, replies.join('\n---\n')).toBeDefined();
    expect(r).toMatch(/^Unsupported: foo\r?$/m); // timer and 100rel are supported
    expect(replies.some((m) => m.startsWith('SIP/2.0 100'))).toBe(false);
    expect(gw.events('sip.bad_extension').at(-1)?.unsupported).toEqual(['foo']);
  });

  it('answers 400 to an INVITE whose Contact or Record-Route could never take a request (found by test/gateway/sip-fuzz)', async () => {
    const beforeBad = gw.events('sip.bad_request').length;
    const replies = await udpExchange(gw.sipPort, [
      request('INVITE', ['Max-Forwards: 70', 'Contact: <sip:fuzz@127.0.0.1:99999>']),
      request('INVITE', ['Max-Forwards: 70', 'Contact: <>']),
      request('INVITE', ['Max-Forwards: 70', 'Contact: <sip:fuzz@127.0.0.1:5999>', 'Record-Route: <sip:>']),
      request('INVITE', ['Max-Forwards: 70']).replace(
        /^From: .*$/m,
        'From: <sip:probe@127.0.0.1:0>;tag=probe1',
      ),
    ]);
    const four = replies.filter((r) => r.startsWith('SIP/2.0 400'));
    expect(four, replies.join('\n---\n')).toHaveLength(4);
    expect(
      gw
        .events('sip.bad_request')
        .slice(beforeBad)
        .map((l) => l.reason),
    ).toEqual([
      'bad Contact header (port 99999 out of range)',
      'bad Contact header (not a SIP URI with a host)',
      'bad Record-Route header (not a SIP URI with a host)',
      'no Contact, and the From URI cannot take in-dialog requests (port 0 out of range)',
    ]);
    // No call was started for any of them.
    expect(replies.some((r) => /^SIP\/2\.0 1\d\d/.test(r))).toBe(false);
  });

  it('answers a request of another SIP version with a SIP/2.0 505 and starts nothing (found by test/gateway/sip-fuzz: a BYE/3.0 ended a call)', async () => {
    const beforeBad = gw.events('sip.bad_request').length;
    const beforeCalls = gw.events('call.started').length;
    const replies = await udpExchange(gw.sipPort, [
      request('INVITE', ['Max-Forwards: 70']).replace(' SIP/2.0\r\n', ' SIP/3.0\r\n'),
      request('OPTIONS', ['Max-Forwards: 70']).replace(' SIP/2.0\r\n', ' SIP/1.0\r\n'),
    ]);
    expect(replies, replies.join('\n---\n')).toHaveLength(2);
    for (const r of replies) expect(r).toMatch(/^SIP\/2\.0 505 Version Not Supported\r\n/);
    expect(
      gw
        .events('sip.bad_request')
        .slice(beforeBad)
        .map((l) => l.reason),
    ).toEqual(['unsupported SIP version 3.0', 'unsupported SIP version 1.0']);
    expect(gw.events('call.started').length).toBe(beforeCalls);
  });

  it('answers Max-Forwards: 0 with 483', async () => {
    const replies = await udpExchange(gw.sipPort, [request('INVITE', ['Max-Forwards: 0'])]);
    expect(replies.some((r) => r.startsWith('SIP/2.0 483'))).toBe(true);
  });

  it('answers malformed requests 400 and logs every dropped datagram with its reason', async () => {
    const before = gw.events('sip.parse_error').length;
    const beforeBad = gw.events('sip.bad_request').length;
    const noCallId = request('INVITE', ['Max-Forwards: 70']).replace(/Call-ID: .*\r\n/, '');
    const badCseq = request('INVITE', ['Max-Forwards: 70']).replace(/CSeq: .*\r\n/, 'CSeq: abc INVITE\r\n');
    const wrongMethod = request('OPTIONS').replace(/CSeq: .*\r\n/, 'CSeq: 7 BYE\r\n');
    const replies = await udpExchange(gw.sipPort, [
      noCallId,
      badCseq,
      wrongMethod,
      'SIP/2.0 200 OK\r\n\r\n',
      'junk',
    ]);
    const four = replies.filter((r) => r.startsWith('SIP/2.0 400'));
    expect(four, replies.join('\n---\n')).toHaveLength(3);
    expect(four.some((r) => /missing or malformed call-id/i.test(r))).toBe(true);
    expect(four.some((r) => /missing or malformed cseq/.test(r))).toBe(true);
    expect(four.some((r) => /CSeq method does not match/.test(r))).toBe(true);
    // Each 400 carries the request's Via so it reaches the sender, and a To tag.
    for (const r of four) {
      expect(r).toMatch(/^Via: SIP\/2\.0\/UDP 127\.0\.0\.1:5999;branch=z9hG4bK-/m);
      expect(r).toMatch(/^To: .*;tag=/m);
    }
    // The response and the junk are not answered but are logged with a reason.
    const logged = gw.events('sip.parse_error').slice(before);
    expect(logged.map((l) => l.reason)).toEqual(
      expect.arrayContaining([
        'missing or malformed call-id header',
        'missing or malformed cseq header',
        'missing or malformed via header',
        'no end of headers (CRLF CRLF)',
      ]),
    );
    expect(
      gw
        .events('sip.bad_request')
        .map((l) => l.reason)
        .slice(beforeBad),
    ).toEqual(['CSeq method does not match the request']);
  });

  it('logs malformed messages on TCP too, answers a malformed request 400 and goes on reading the stream', async () => {
    const before = gw.events('sip.parse_error').filter((l) => l.transport === 'TCP').length;
    const got = await new Promise<string>((resolve) => {
      let text = '';
      const c = connect(gw.sipPort, '127.0.0.1', () => {
        const tcp = (m: string) => m.replace('SIP/2.0/UDP', 'SIP/2.0/TCP');
        const options = tcp(request('OPTIONS', ['Max-Forwards: 70']));
        // A request without Call-ID but with a 5-byte body: answered 400, and its body must be
        // skipped (not read as the start of the next message) for the OPTIONS after it to get 200.
        const noCallId = tcp(request('INVITE', ['Max-Forwards: 70']))
          .replace(/Call-ID: .*\r\n/, '')
          .replace('Content-Length: 0', 'Content-Length: 5');
        c.write('NOTSIP\r\nX: y\r\n\r\n' + noCallId + 'v=0\r\n' + options);
      });
      c.on('data', (d) => {
        text += d.toString();
        if (/^SIP\/2\.0 200/m.test(text)) {
          c.destroy();
          resolve(text);
        }
      });
      c.on('error', () => resolve(text));
      setTimeout(() => {
        c.destroy();
        resolve(text);
      }, 2000);
    });
    expect(got).toMatch(/^SIP\/2\.0 200/m);
    // The junk block has no Via: logged, not answered. The INVITE without Call-ID gets a 400 with its Via.
    expect(got).toMatch(/^SIP\/2\.0 400 Bad Request \(missing or malformed call-id header\)/m);
    expect(got).toMatch(/^Via: SIP\/2\.0\/TCP 127\.0\.0\.1:5999;branch=z9hG4bK-/m);
    expect(got.indexOf('SIP/2.0 400')).toBeLessThan(got.indexOf('SIP/2.0 200'));
    expect(got.match(/^SIP\/2\.0 /gm)).toHaveLength(2);
    const tcp = gw
      .events('sip.parse_error')
      .filter((l) => l.transport === 'TCP')
      .slice(before);
    expect(tcp.map((l) => [l.reason, l.replied])).toEqual([
      ['unparsable start line or headers', null],
      ['missing or malformed call-id header', 400],
    ]);
  });

  it('survives garbage, truncated and huge datagrams and TCP junk, then still relays a call', async () => {
    const valid = request('INVITE', ['Max-Forwards: 70']);
    await udpExchange(gw.sipPort, [
      Buffer.from([0, 1, 2, 3, 255, 254]),
      'INVITE',
      valid.slice(0, 60),
      'SIP/2.0 200 OK\r\n\r\n',
      'INVITE sip:x SIP/2.0\r\nVia: nonsense\r\nCSeq: abc\r\n\r\n',
      'OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort',
      Buffer.alloc(60000, 0x41),
    ]);
    await new Promise<void>((resolve) => {
      const c = connect(gw.sipPort, '127.0.0.1', () => {
        c.write(
          'GARBAGE\r\n\r\n' +
            'X'.repeat(100000) +
            '\r\n\r\nINVITE sip:x SIP/2.0\r\nContent-Length: -5\r\n\r\n',
        );
        setTimeout(() => {
          c.destroy();
          resolve();
        }, 300);
      });
      c.on('error', () => undefined);
    });
    const r = await callThrough(
      gw,
      { scenario: 'pbx-answer.xml' },
      { scenario: 'caller-bye.xml', pauseMs: 100 },
    );
    expectBothPassed(r);
  });

  it('relays 100 calls at 50 calls/s and ends every one of them', async () => {
    const before = gw.events('call.ended').length;
    const started = Date.now();
    const r = await callThrough(
      gw,
      { scenario: 'pbx-answer.xml', calls: 100, timeoutS: 30 },
      { scenario: 'caller-bye.xml', calls: 100, rate: 50, pauseMs: 500, timeoutS: 30, extra: ['-l', '100'] },
    );
    expect(r.caller.code, r.caller.output.slice(-3000) + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output.slice(-3000) + r.pbx.errors).toBe(0);
    expect(gw.events('call.ended').length - before).toBe(100);
    expect(gw.server.gateway.activeCalls).toBe(0);
    expect(Date.now() - started).toBeLessThan(20000);
  });
});

describe('malformed SIP on a TCP connection voiceguard opened', () => {
  let tcpGw: TestGateway;
  let pbx: Server;
  let pbxGot = '';
  beforeAll(async () => {
    // A PBX over TCP, written by hand so that it can misbehave: on the INVITE it sends a junk block,
    // a request without Call-ID and a SIP/3.0 200 on the connection voiceguard opened, then answers 486.
    pbx = createServer((sock) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString();
        pbxGot += d.toString();
        const end = buf.indexOf('\r\n\r\n');
        if (!buf.startsWith('INVITE ') || end < 0) return;
        const head = buf.slice(0, end);
        buf = '';
        const h = (name: string) => new RegExp(`^${name}:.*$`, 'im').exec(head)?.[0] ?? '';
        sock.write('NOTSIP\r\nX: y\r\n\r\n');
        sock.write(
          [
            'OPTIONS sip:voiceguard@127.0.0.1 SIP/2.0',
            `Via: SIP/2.0/TCP 127.0.0.1:${(pbx.address() as AddressInfo).port};branch=z9hG4bK-pbxprobe`,
            'From: <sip:pbx@127.0.0.1>;tag=pbx1',
            'To: <sip:voiceguard@127.0.0.1>',
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
        );
        const response = (statusLine: string, tag: string) =>
          [
            statusLine,
            h('Via'),
            h('From'),
            `${h('To')};tag=${tag}`,
            h('Call-ID'),
            h('CSeq'),
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n');
        // A 200 of another SIP version: dropped, so the caller still gets the 486 that follows.
        sock.write(response('SIP/3.0 200 OK', 'pbx300'));
        sock.write(response('SIP/2.0 486 Busy Here', 'pbx486'));
      });
    });
    await new Promise<void>((resolve) => pbx.listen(0, '127.0.0.1', resolve));
    tcpGw = await startGateway({
      'sip.pbx': { host: '127.0.0.1', port: (pbx.address() as AddressInfo).port, transport: 'tcp' },
    });
  });
  afterAll(async () => {
    await tcpGw?.stop();
    await new Promise((resolve) => pbx?.close(resolve));
  });

  it('logs the junk, answers the malformed request 400 on that connection, drops the SIP/3.0 200, and the call goes on (486 to the caller)', async () => {
    const uacPort = await freeUdpPort();
    const caller = await runSipp({
      scenario: 'caller-busy.xml',
      port: uacPort,
      target: `127.0.0.1:${tcpGw.sipPort}`,
    }).done;
    expect(caller.code, caller.output + caller.errors).toBe(0);
    expect(pbxGot).toMatch(/^SIP\/2\.0 400 Bad Request \(missing or malformed call-id header\)/m);
    expect(pbxGot).toMatch(/^Via: SIP\/2\.0\/TCP 127\.0\.0\.1:\d+;branch=z9hG4bK-pbxprobe/m);
    const tcp = tcpGw.events('sip.parse_error').filter((l) => l.transport === 'TCP');
    const pbxAt = `127.0.0.1:${(pbx.address() as AddressInfo).port}`;
    expect(tcp.map((l) => [l.reason, l.replied, l.remote])).toEqual([
      ['unparsable start line or headers', null, pbxAt],
      ['missing or malformed call-id header', 400, pbxAt],
      ['response of unsupported SIP version 3.0', null, pbxAt],
    ]);
    expect(tcpGw.events('call.ended').map((e) => [e.reason, e.sipStatus])).toEqual([['rejected', 486]]);
  });

  it('ends the connection it opened to the PBX when it stops, instead of leaving it idle', async () => {
    const open = () =>
      new Promise<number>((resolve, reject) => pbx.getConnections((e, n) => (e ? reject(e) : resolve(n))));
    expect(await open()).toBe(1);
    await tcpGw.stop();
    const deadline = Date.now() + 5000;
    while ((await open()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // The package's own idle timeout would have closed it after two minutes.
    expect(await open()).toBe(0);
  });
});
