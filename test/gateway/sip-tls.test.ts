import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BaresipPeer,
  expectHeardSpeech,
  startBaresip,
  TLS_FIXTURES,
  tracedMessages,
} from './baresip.js';
import {
  freeSipPort,
  freeUdpPort,
  runSipp,
  startGateway,
  makePcap,
  type LogLine,
  type TestGateway,
  waitUdpBound,
} from './sipp-harness.js';

/**
 * SIP over TLS through the real gateway with a real TLS peer on the other side (baresip; Debian's
 * sipp has no TLS): the caller over TLS, the PBX over TLS, certificate checks both ways, a
 * malformed message on a TLS connection, a plain-text client on the TLS port, a renewed certificate.
 */
const MODEL = 'models/voiceguard-detector.onnx';
const modelOverrides = {
  'detector.modelPath': MODEL,
  'detector.metadataPath': MODEL.replace(/\.onnx$/, '.json'),
};
const fx = (name: string) => join(TLS_FIXTURES, name);
const CA = readFileSync(fx('ca.pem'));

async function startTlsGateway(
  overrides: Record<string, unknown> = {},
): Promise<TestGateway & { tlsPort: number }> {
  const tlsPort = await freeSipPort();
  const gw = await startGateway({
    ...modelOverrides,
    'sip.listen.transports': ['udp', 'tcp', 'tls'],
    'sip.listen.tlsPort': tlsPort,
    'sip.tls': { certFile: fx('server.pem'), keyFile: fx('server.key'), caFile: fx('ca.pem') },
    ...overrides,
  });
  return Object.assign(gw, { tlsPort });
}

function since(gw: TestGateway, from: number, event: string): LogLine[] {
  return gw.logs.slice(from).filter((l) => l.event === event);
}

/** A TLS connection to the gateway that trusts the test CA; resolves once the handshake is done. */
function openTls(port: number, opts: { cert?: string; maxVersion?: 'TLSv1.2' } = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: CA,
      ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
      ...(opts.cert
        ? { cert: readFileSync(fx(`${opts.cert}.pem`)), key: readFileSync(fx(`${opts.cert}.key`)) }
        : {}),
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** What arrives on `s` until `until` matches it (or `ms` pass). */
function readUntil(s: TLSSocket, until: RegExp, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const done = () => {
      clearTimeout(timer);
      s.off('data', onData);
      resolve(got);
    };
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (until.test(got)) done();
    };
    const timer = setTimeout(done, ms);
    s.on('data', onData);
  });
}

/** An INVITE to a sips: URI with a minimal offer, as a TLS (or UDP) peer would send it. */
function sipsInvite(port: number, callId: string, transport: 'TLS' | 'UDP', viaPort = 5999): string {
  const sdp =
    'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n' +
    'm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
  return (
    `INVITE sips:1000@127.0.0.1:${port} SIP/2.0\r\nVia: SIP/2.0/${transport} 127.0.0.1:${viaPort};branch=z9hG4bK${callId}\r\n` +
    `From: <sips:caller@127.0.0.1>;tag=9\r\nTo: <sips:1000@127.0.0.1>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n` +
    `Contact: <sips:caller@127.0.0.1:${viaPort}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n` +
    `Content-Length: ${sdp.length}\r\n\r\n${sdp}`
  );
}

describe('SIP over TLS (baresip as the TLS peer)', () => {
  let gw: TestGateway & { tlsPort: number };
  beforeAll(async () => {
    gw = await startTlsGateway({ 'policy.defaults': { onSynthetic: 'drop' } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('logs the TLS listener with its certificate expiry', () => {
    expect(gw.events('sip.listening')[0]).toMatchObject({
      transports: ['udp', 'tcp', 'tls'],
      tlsPort: gw.tlsPort,
      tlsCertNotAfter: new Date(new X509Certificate(readFileSync(fx('server.pem'))).validTo).toISOString(),
    });
  });

  it('a TTS voice from a caller over TLS is analysed and dropped: the BYE reaches the caller over TLS', async () => {
    const from = gw.logs.length;
    const pbx = runSipp({ scenario: 'pbx-dropped.xml', port: gw.pbxPort, timeoutS: 30 });
    await waitUdpBound(gw.pbxPort);
    const callerPort = await freeUdpPort();
    const caller = startBaresip({
      user: 'robot',
      port: callerPort,
      cert: 'peer',
      source: 'test/fixtures/synthetic-mandarin-fastspeech2-vocgan-1.wav',
      dial: `sip:1000@127.0.0.1:${gw.tlsPort};transport=tls`,
      quitAfterS: 15,
    });
    const pbxResult = await pbx.done;
    expect(pbxResult.code, pbxResult.output + pbxResult.errors).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    caller.kill();
    const { output } = await caller.done;
    expect(since(gw, from, 'call.started')[0]).toMatchObject({ transport: 'tls', direction: 'inbound' });
    expect(since(gw, from, 'call.verdict').map((l) => l.verdict)).toEqual(['synthetic']);
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['dropped']);
    // The caller's side of the exchange, from baresip's trace: INVITE out over TLS, the gateway's
    // answer with a TLS Contact on its TLS port, and the gateway's BYE in over TLS.
    const messages = tracedMessages(output);
    const invite = messages.find((m) => /\nINVITE /.test(m));
    expect(invite, output.slice(-3000)).toMatch(/^TLS /);
    const ok = messages.find((m) => /\nSIP\/2\.0 200 OK/.test(m) && /CSeq: \d+ INVITE/i.test(m));
    expect(ok).toMatch(
      new RegExp(`Contact: *<sip:voiceguard@127\\.0\\.0\\.1:${gw.tlsPort};transport=tls>`, 'i'),
    );
    const bye = messages.find((m) => /\nBYE /.test(m));
    expect(bye).toMatch(/^TLS /);
    expect(bye).toMatch(/Reason: Q\.850;cause=21;text="synthetic voice detected"/);
    expect(bye).toMatch(new RegExp(`Via: SIP/2\\.0/TLS 127\\.0\\.0\\.1:${gw.tlsPort}`));
  });

  it('a caller whose certificate the gateway does not know can still call (requireClientCert off)', async () => {
    const s = await openTls(gw.tlsPort);
    expect(s.authorized).toBe(true);
    s.end();
  });

  it('a malformed request on a TLS connection is answered 400 on it, and the gateway keeps serving', async () => {
    const from = gw.logs.length;
    const s = await openTls(gw.tlsPort);
    s.write(
      'INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKbad1\r\n' +
        'From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: bad-tls-1\r\nCSeq: nonsense\r\n' +
        'Content-Length: 0\r\n\r\n',
    );
    const reply = await readUntil(s, /\r\n\r\n/);
    expect(reply).toMatch(/^SIP\/2\.0 400 Bad Request/);
    expect(reply).toContain('Call-ID: bad-tls-1');
    // The same connection still carries SIP: an OPTIONS keepalive gets its 200.
    s.write(
      'OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKopt1\r\n' +
        'From: <sip:x@127.0.0.1>;tag=2\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ok-tls-1\r\nCSeq: 1 OPTIONS\r\n' +
        'Content-Length: 0\r\n\r\n',
    );
    expect(await readUntil(s, /ok-tls-1[\s\S]*\r\n\r\n/)).toMatch(/SIP\/2\.0 200 OK[\s\S]*Call-ID: ok-tls-1/);
    s.end();
    expect(since(gw, from, 'sip.parse_error')[0]).toMatchObject({ transport: 'TLS', replied: 400 });
  });

  it('plain SIP sent to the TLS port is a logged handshake failure, nothing more', async () => {
    const from = gw.logs.length;
    const plain = netConnect(gw.tlsPort, '127.0.0.1');
    await new Promise((r) => plain.once('connect', r));
    plain.write('OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999\r\n\r\n');
    await new Promise((r) => plain.once('close', r));
    await expect.poll(() => since(gw, from, 'sip.tls_error').length).toBe(1);
    expect(since(gw, from, 'sip.tls_error')[0]).toMatchObject({ direction: 'in' });
    // Still serving TLS.
    (await openTls(gw.tlsPort)).end();
  });

  it('a sips: call is refused with 416 when the PBX leg is plain, over TLS and over UDP: no silent downgrade', async () => {
    const from = gw.logs.length;
    const s = await openTls(gw.tlsPort);
    s.write(sipsInvite(gw.tlsPort, 'sips-tls-1', 'TLS'));
    const overTls = await readUntil(s, /SIP\/2\.0 4\d\d[\s\S]*\r\n\r\n/);
    s.end();
    expect(overTls).toMatch(/^SIP\/2\.0 416 Unsupported URI Scheme\r\n/m);
    expect(overTls).toMatch(
      /^Warning: 399 voiceguard "sips needs TLS on both legs; this call would use tls in and udp out"/m,
    );

    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const answer = new Promise<string>((r) => udp.once('message', (m) => r(m.toString('latin1'))));
    const viaPort = (udp.address() as AddressInfo).port;
    udp.send(sipsInvite(gw.sipPort, 'sips-udp-1', 'UDP', viaPort), gw.sipPort, '127.0.0.1');
    let overUdp = await answer;
    while (/^SIP\/2\.0 100 /.test(overUdp))
      overUdp = await new Promise<string>((r) => udp.once('message', (m) => r(m.toString('latin1'))));
    udp.close();
    expect(overUdp).toMatch(/^SIP\/2\.0 416 /);

    expect(since(gw, from, 'sip.sips_refused')).toMatchObject([
      { arrivedOver: 'tls', nextHop: 'udp', direction: 'inbound' },
      { arrivedOver: 'udp', nextHop: 'udp', direction: 'inbound' },
    ]);
    expect(since(gw, from, 'call.started')).toEqual([]);
  });

  it('SIGHUP re-reads the certificate: new connections get the renewed one', async () => {
    const before = await openTls(gw.tlsPort);
    expect(before.getPeerCertificate().subject.CN).toBe('voiceguard test');
    before.end();
    const cfg = gw.server.config;
    const from = gw.logs.length;
    gw.server.gateway.setConfig({
      ...cfg,
      sip: {
        ...cfg.sip,
        tls: { ...cfg.sip.tls, certFile: fx('server-renewed.pem'), keyFile: fx('server-renewed.key') },
      },
    });
    expect(since(gw, from, 'sip.tls_reloaded')).toHaveLength(1);
    const renewedExpiry =
      Date.parse(new X509Certificate(readFileSync(fx('server-renewed.pem'))).validTo) / 1000;
    const metrics = await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^voiceguard_sip_tls_cert_not_after_seconds ${renewedExpiry}$`, 'm'));
    const after = await openTls(gw.tlsPort);
    expect(after.getPeerCertificate().subject.CN).toBe('voiceguard test renewed');
    after.end();
    // A key that does not match its certificate keeps the running one.
    const bad = gw.logs.length;
    gw.server.gateway.setConfig({
      ...cfg,
      sip: { ...cfg.sip, tls: { ...cfg.sip.tls, certFile: fx('server.pem'), keyFile: fx('peer.key') } },
    });
    expect(since(gw, bad, 'sip.tls_reload_error')[0]!.err).toMatch(/do not make a TLS context/);
    const still = await openTls(gw.tlsPort);
    expect(still.getPeerCertificate().subject.CN).toBe('voiceguard test renewed');
    still.end();
  });
});

describe('SIP over TLS settings at start', () => {
  it('requireClientCert: a peer without a certificate from caFile is refused, one with it is served', async () => {
    const gw = await startTlsGateway({
      'sip.tls': {
        certFile: fx('server.pem'),
        keyFile: fx('server.key'),
        caFile: fx('ca.pem'),
        requireClientCert: true,
      },
    });
    try {
      const from = gw.logs.length;
      // TLS 1.3 reports the refused client certificate after the handshake: the connection closes.
      const anonymous = await openTls(gw.tlsPort).catch((e: Error) => e);
      if (!(anonymous instanceof Error)) await new Promise((r) => anonymous.once('close', r));
      await expect.poll(() => since(gw, from, 'sip.tls_error').length).toBe(1);
      expect(String(since(gw, from, 'sip.tls_error')[0]!.reason)).toMatch(/certificate/i);
      const known = await openTls(gw.tlsPort, { cert: 'peer' });
      known.write(
        'OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKmtls\r\n' +
          'From: <sip:x@127.0.0.1>;tag=3\r\nTo: <sip:127.0.0.1>\r\nCall-ID: mtls-1\r\nCSeq: 1 OPTIONS\r\n' +
          'Content-Length: 0\r\n\r\n',
      );
      expect(await readUntil(known, /mtls-1[\s\S]*\r\n\r\n/)).toMatch(/^SIP\/2\.0 200 OK/);
      known.end();
    } finally {
      await gw.stop();
    }
  });

  it('an unreadable certificate or a key of another certificate stops the start with the setting named', async () => {
    await expect(
      startTlsGateway({ 'sip.tls': { certFile: '/nonexistent/vg.pem', keyFile: fx('server.key') } }),
    ).rejects.toThrow(/sip\.tls\.certFile: cannot read \/nonexistent\/vg\.pem/);
    await expect(
      startTlsGateway({ 'sip.tls': { certFile: fx('server.pem'), keyFile: fx('peer.key') } }),
    ).rejects.toThrow(/do not make a TLS context/);
  });
});

describe('SIP over TLS settings on reload (SIGHUP)', () => {
  /** Whether a client without a certificate is refused: TLS 1.3 reports it after the handshake. */
  async function anonymousRefused(gw: TestGateway & { tlsPort: number }): Promise<boolean> {
    const s = await openTls(gw.tlsPort).catch((e: Error) => e);
    if (s instanceof Error) return true;
    const closedEarly = await Promise.race([
      new Promise<boolean>((r) => s.once('close', () => r(true))),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
    ]);
    s.destroy();
    return closedEarly;
  }

  it('requireClientCert and minVersion apply to new connections without a restart; a bad file changes none of them', async () => {
    const gw = await startTlsGateway();
    try {
      const cfg = gw.server.config;
      const tlsWith = (over: Record<string, unknown>) => ({
        ...cfg,
        sip: { ...cfg.sip, tls: { ...cfg.sip.tls, ...over } },
      });
      expect(await anonymousRefused(gw)).toBe(false);
      const tls12 = await openTls(gw.tlsPort, { maxVersion: 'TLSv1.2' });
      expect(tls12.getProtocol()).toBe('TLSv1.2');
      tls12.end();

      // A reload whose key does not match changes nothing, the settings included.
      let from = gw.logs.length;
      gw.server.gateway.setConfig(tlsWith({ requireClientCert: true, keyFile: fx('peer.key') }));
      expect(since(gw, from, 'sip.tls_reload_error')).toHaveLength(1);
      expect(await anonymousRefused(gw)).toBe(false);

      from = gw.logs.length;
      gw.server.gateway.setConfig(tlsWith({ requireClientCert: true, minVersion: 'TLSv1.3' }));
      expect(since(gw, from, 'sip.tls_reloaded')[0]).toMatchObject({
        requireClientCert: true,
        minVersion: 'TLSv1.3',
        changed: ['requireClientCert', 'minVersion'],
      });
      expect(since(gw, from, 'config.restart_required')).toEqual([]);
      expect(await anonymousRefused(gw)).toBe(true);
      const known = await openTls(gw.tlsPort, { cert: 'peer' });
      expect(known.getProtocol()).toBe('TLSv1.3');
      known.write(
        'OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKreload\r\n' +
          'From: <sip:x@127.0.0.1>;tag=4\r\nTo: <sip:127.0.0.1>\r\nCall-ID: reload-1\r\nCSeq: 1 OPTIONS\r\n' +
          'Content-Length: 0\r\n\r\n',
      );
      expect(await readUntil(known, /reload-1[\s\S]*\r\n\r\n/)).toMatch(/^SIP\/2\.0 200 OK/);
      known.end();
      const old = await openTls(gw.tlsPort, { cert: 'peer', maxVersion: 'TLSv1.2' }).catch((e: Error) => e);
      expect(old).toBeInstanceOf(Error);
      expect(String(old)).toMatch(/protocol version/);

      // And back: the defaults again, for new connections.
      gw.server.gateway.setConfig(tlsWith({ requireClientCert: false, minVersion: 'TLSv1.2' }));
      expect(await anonymousRefused(gw)).toBe(false);
      const again = await openTls(gw.tlsPort, { maxVersion: 'TLSv1.2' });
      expect(again.getProtocol()).toBe('TLSv1.2');
      again.end();
    } finally {
      await gw.stop();
    }
  });
});

describe('trunk registration over TLS', () => {
  it('registers through a TLS connection with a Contact on the TLS port, verified against the CA', async () => {
    // No Debian tool is a TLS registrar: a TLS server that answers REGISTER 200 stands in for the carrier.
    const registers: string[] = [];
    const registrar = createTlsServer(
      { cert: readFileSync(fx('peer.pem')), key: readFileSync(fx('peer.key')) },
      (sock) => {
        let buf = '';
        sock.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          let end;
          while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
            const head = buf.slice(0, end);
            buf = buf.slice(end + 4);
            if (!head.startsWith('REGISTER ')) continue;
            registers.push(head);
            const keep = head.split('\r\n').filter((l) => /^(Via|From|To|Call-ID|CSeq|Contact):/i.test(l));
            sock.write(
              `SIP/2.0 200 OK\r\n${keep.map((l) => (/^To:/i.test(l) ? `${l};tag=reg1` : l)).join('\r\n')}\r\n` +
                'Expires: 3600\r\nContent-Length: 0\r\n\r\n',
            );
          }
        });
      },
    );
    await new Promise<void>((r) => registrar.listen(0, '127.0.0.1', r));
    const port = (registrar.address() as AddressInfo).port;
    const gw = await startTlsGateway({
      'sip.trunks': [
        {
          name: 'carrier',
          addresses: ['127.0.0.1'],
          register: {
            registrar: `127.0.0.1:${port}`,
            transport: 'tls',
            aor: 'sip:+4930555000@carrier.example',
            username: '4930555000',
            password: 's3cret',
          },
        },
      ],
    });
    try {
      await expect.poll(() => gw.events('sip.registered').length, { timeout: 5000 }).toBe(1);
      expect(registers[0]).toMatch(
        new RegExp(`^REGISTER sip:127\\.0\\.0\\.1:${port};transport=tls SIP/2\\.0`),
      );
      expect(registers[0]).toMatch(new RegExp(`Via: SIP/2\\.0/TLS 127\\.0\\.0\\.1:${gw.tlsPort}`));
      expect(registers[0]).toMatch(
        new RegExp(`Contact: *<sip:\\+4930555000@127\\.0\\.0\\.1:${gw.tlsPort};transport=tls>`),
      );
    } finally {
      await gw.stop();
      registrar.close();
    }
  });
});

describe('a PBX over TLS (baresip answering)', () => {
  let gw: TestGateway & { tlsPort: number };
  let pbxPort: number;
  beforeAll(async () => {
    pbxPort = await freeUdpPort();
    gw = await startTlsGateway({
      'sip.pbx': { host: '127.0.0.1', port: pbxPort + 1, transport: 'tls' },
      'policy.defaults': { onSynthetic: 'log', onUnsure: 'log' },
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  /**
   * A UDP caller plays `seconds` of human speech to the PBX (baresip over TLS, presenting `cert`), which
   * answers; returns where in the log the call starts and baresip's output once it has quit.
   */
  async function answeredPbxCall(
    cert: string,
    seconds: number,
  ): Promise<{ from: number; output: string; pbx: BaresipPeer }> {
    const pbx = startBaresip({
      user: '1000',
      port: pbxPort,
      cert,
      source: null,
      answer: true,
      quitAfterS: 20,
    });
    await pbx.ready;
    const from = gw.logs.length;
    const pcap = await makePcap('test/fixtures/human-librispeech-1.wav', seconds);
    const caller = runSipp({
      scenario: 'caller-pcap.xml',
      port: await freeUdpPort(),
      target: `127.0.0.1:${gw.sipPort}`,
      timeoutS: 30,
      pauseMs: pcap.durationMs + 300,
      cwd: pcap.dir,
    });
    const r = await caller.done;
    expect(r.code, r.output + r.errors).toBe(0);
    await new Promise((res) => setTimeout(res, 800)); // the last RTP reaches the PBX before it quits
    pbx.stop();
    return { from, output: (await pbx.done).output, pbx };
  }

  it('a UDP caller reaches the PBX over TLS; the PBX hears the caller and the BYE goes to it over TLS', async () => {
    const { from, output, pbx } = await answeredPbxCall('server', 4);
    expect(since(gw, from, 'call.started')[0]).toMatchObject({
      transport: 'udp',
      target: `127.0.0.1:${pbxPort + 1};transport=tls`,
    });
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    const messages = tracedMessages(output);
    const invite = messages.find((m) => /\nINVITE /.test(m));
    expect(invite, output.slice(-3000)).toMatch(/^TLS /);
    expect(invite).toMatch(new RegExp(`Via: SIP/2\\.0/TLS 127\\.0\\.0\\.1:${gw.tlsPort}`));
    expect(invite).toMatch(
      new RegExp(`Contact: *<sip:voiceguard@127\\.0\\.0\\.1:${gw.tlsPort};transport=tls>`),
    );
    expect(messages.find((m) => /\nBYE /.test(m))).toMatch(/^TLS /);
    // The caller's audio crossed the relay into the TLS-signalled PBX leg.
    await expectHeardSpeech(pbx, output.slice(-2000));
  });

  it('a sips: call over TLS goes on to the PBX over TLS', async () => {
    const from = gw.logs.length;
    const s = await openTls(gw.tlsPort);
    s.write(sipsInvite(gw.tlsPort, 'sips-tls-2', 'TLS'));
    await expect.poll(() => since(gw, from, 'call.started').length, { timeout: 5000 }).toBe(1);
    // No PBX listens now: the call ends at once, before the next test reads the log.
    await expect.poll(() => since(gw, from, 'call.ended').length, { timeout: 10_000 }).toBe(1);
    s.destroy();
    expect(since(gw, from, 'call.started')[0]).toMatchObject({
      transport: 'tls',
      target: `127.0.0.1:${pbxPort + 1};transport=tls`,
    });
    expect(since(gw, from, 'sip.sips_refused')).toEqual([]);
  });

  it('the PBX dials a sips: URI: the call goes out over TLS to port the URI names, without ;transport=tls, with sips: Contacts', async () => {
    // A TLS server with a certificate the gateway trusts stands in for the far end; it records the
    // INVITE and rings (a 180 with its dialog headers), so the PBX side sees the gateway's Contact too.
    let received = '';
    const far = createTlsServer(
      { cert: readFileSync(fx('server.pem')), key: readFileSync(fx('server.key')) },
      (sock) =>
        sock.on('data', (d: Buffer) => {
          received += d.toString('latin1');
          const invite = /^INVITE [\s\S]*?\r\n\r\n/m.exec(received)?.[0];
          if (!invite || received.includes('\u0000rang')) return;
          received += '\u0000rang';
          const copy = (name: string) =>
            invite
              .split('\r\n')
              .filter((l) => l.toLowerCase().startsWith(`${name}:`))
              .join('\r\n');
          sock.write(
            `SIP/2.0 180 Ringing\r\n${copy('via')}\r\n${copy('from')}\r\n${copy('to')};tag=far1\r\n` +
              `${copy('call-id')}\r\n${copy('cseq')}\r\nContact: <sips:far@127.0.0.1:${farPortOf()}>\r\nContent-Length: 0\r\n\r\n`,
          );
        }),
    );
    const farPortOf = () => (far.address() as AddressInfo).port;
    await new Promise<void>((r) => far.listen(0, '127.0.0.1', r));
    const farPort = (far.address() as AddressInfo).port;
    const cfg = gw.server.config;
    gw.server.gateway.setConfig({
      ...cfg,
      sip: { ...cfg.sip, outbound: { ...cfg.sip.outbound, enabled: true } },
    });
    const from = gw.logs.length;
    const s = await openTls(gw.tlsPort);
    let fromGateway = '';
    s.on('data', (d: Buffer) => (fromGateway += d.toString('latin1')));
    try {
      // From the PBX: its Via names the PBX's port, as a PBX over TLS does.
      s.write(
        sipsInvite(farPort, 'sips-out-1', 'TLS', pbxPort + 1).replace('sips:1000@', 'sips:4930777888@'),
      );
      await expect.poll(() => /^INVITE sips?:4930777888@/m.test(received), { timeout: 5000 }).toBe(true);
      expect(received).toMatch(
        new RegExp(`^Contact: *<sips:voiceguard@127\\.0\\.0\\.1:${gw.tlsPort}>\r$`, 'm'),
      );
      await expect.poll(() => /^SIP\/2\.0 180 /m.test(fromGateway), { timeout: 5000 }).toBe(true);
      expect(fromGateway).toMatch(
        new RegExp(`^Contact: *<sips:voiceguard@127\\.0\\.0\\.1:${gw.tlsPort}>\r$`, 'm'),
      );
      expect(since(gw, from, 'call.started')[0]).toMatchObject({
        direction: 'outbound',
        target: `127.0.0.1:${farPort};transport=tls`,
      });
      expect(since(gw, from, 'sip.sips_refused')).toEqual([]);
    } finally {
      s.destroy();
      far.close();
      gw.server.gateway.setConfig(cfg);
    }
  });

  /**
   * A call toward a PBX whose certificate names another host (192.0.2.1), which verifyPeers refuses:
   * the caller expects 503; checks the refusal and returns where in the log it starts and baresip's output.
   */
  async function callRefusedPbx(): Promise<{ from: number; output: string }> {
    const pbx = startBaresip({
      user: '1000',
      port: pbxPort,
      cert: 'other-host',
      source: null,
      answer: true,
      quitAfterS: 15,
    });
    await pbx.ready;
    const from = gw.logs.length;
    const caller = runSipp({
      scenario: 'caller-unavailable.xml',
      port: await freeUdpPort(),
      target: `127.0.0.1:${gw.sipPort}`,
      timeoutS: 20,
    });
    const r = await caller.done;
    pbx.kill();
    const { output } = await pbx.done;
    expect(r.code, r.output + r.errors).toBe(0);
    expect(since(gw, from, 'sip.tls_error')[0]).toMatchObject({ direction: 'out' });
    expect(String(since(gw, from, 'sip.tls_error')[0]!.reason)).toMatch(/192\.0\.2\.1/);
    expect(since(gw, from, 'call.ended')[0]).toMatchObject({ reason: 'rejected', sipStatus: 503 });
    return { from, output };
  }

  it('a PBX whose certificate names another host is not called (verifyPeers): the caller gets 503', async () => {
    const { from, output } = await callRefusedPbx();
    // The SIP package prints the failed connection with console.log; it arrives as one log line.
    expect(since(gw, from, 'sip.stack_error').map((l) => String(l.err))).toContainEqual(
      expect.stringMatching(/^sip package: err: Hostname\/IP does not match certificate's altnames/),
    );
    expect(output).not.toMatch(/\nINVITE /);
  });

  it('SIGHUP with verifyPeers off: the same PBX is called (a lab PBX), and on again: it is not', async () => {
    const cfg = gw.server.config;
    const withVerify = (verifyPeers: boolean) => ({
      ...cfg,
      sip: { ...cfg.sip, tls: { ...cfg.sip.tls, verifyPeers } },
    });
    gw.server.gateway.setConfig(withVerify(false));
    try {
      const { from, output } = await answeredPbxCall('other-host', 2);
      expect(since(gw, from, 'sip.tls_error')).toEqual([]);
      expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
      expect(tracedMessages(output).find((m) => /\nINVITE /.test(m))).toMatch(/^TLS /);
    } finally {
      gw.server.gateway.setConfig(withVerify(true));
    }
    // Verification is back on for new connections: the next call to that PBX fails its certificate check.
    await callRefusedPbx();
  });
});
