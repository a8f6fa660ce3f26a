import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { waitUdpBound } from '../gateway/sipp-harness.js';

/**
 * The PBX integration guides, tested: each guide's voiceguard YAML is taken from the Markdown
 * as written, validated, and then run by the real gateway (`voiceguard serve` as a child
 * process, with env overrides that move the guide's example addresses onto loopback and free
 * ports) between real sipp peers shaped like the PBX the guide is about:
 *
 *   carrier (sipp, 127.0.0.3) ──▶ voiceguard (127.0.0.1) ──▶ PBX (sipp, 127.0.0.2)   inbound
 *   PBX (sipp, 127.0.0.2)     ──▶ voiceguard (127.0.0.1) ──▶ carrier (sipp, 127.0.0.3) outbound
 *
 * Three loopback addresses, so that voiceguard tells the PBX from the trunk by address (and the
 * PBX's SIP port, which a PBX also sends from), and an SDP address of 127.0.0.1 can only be
 * voiceguard's own.
 */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = join(repo, 'dist/src/cli/main.js');
const sippDir = join(repo, 'test/fixtures/sipp');
const CARRIER_IP = '127.0.0.3';
const PBX_IP = '127.0.0.2';
const GATEWAY_IP = '127.0.0.1';
const ADMIN_TOKEN = 'pbx-integration-admin-token-0123456789';

interface Guide {
  doc: string;
  /** sipp scenario answering like this PBX (inbound calls). */
  pbxUas: string;
  /** sipp scenario calling like this PBX (outbound calls). */
  pbxUac: string;
  /** The guide's PBX SIP port, as the YAML says. */
  pbxPort: number;
}

const GUIDES: Guide[] = [
  {
    doc: 'docs/integration-asterisk.md',
    pbxUas: 'pbx-asterisk-uas.xml',
    pbxUac: 'pbx-asterisk-uac.xml',
    pbxPort: 5060,
  },
  {
    doc: 'docs/integration-freeswitch.md',
    pbxUas: 'pbx-freeswitch-uas.xml',
    pbxUac: 'pbx-freeswitch-uac.xml',
    pbxPort: 5080,
  },
  // FreePBX is Asterisk with chan_pjsip: the same SIP shapes.
  {
    doc: 'docs/integration-freepbx.md',
    pbxUas: 'pbx-asterisk-uas.xml',
    pbxUac: 'pbx-asterisk-uac.xml',
    pbxPort: 5060,
  },
];

/** The one YAML block of a guide that is marked as voiceguard's configuration. */
function guideYaml(doc: string): string {
  const md = readFileSync(join(repo, doc), 'utf8');
  const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .filter((b) => b.startsWith('# voiceguard.yaml for'));
  expect(blocks, `${doc} must have exactly one "# voiceguard.yaml for" YAML block`).toHaveLength(1);
  return blocks[0]!;
}

const work = mkdtempSync(join(tmpdir(), 'vg-pbx-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('integration guides: the voiceguard YAML as written', () => {
  for (const g of GUIDES) {
    it(`${g.doc}: valid, points at the PBX and the carrier, analyses inbound only`, () => {
      const file = join(work, `${g.doc.replace(/\W/g, '_')}.yaml`);
      writeFileSync(file, guideYaml(g.doc));
      const { config } = loadConfig(file, {});
      expect(config.sip.pbx.port).toBe(g.pbxPort);
      expect(config.sip.trunks.length).toBeGreaterThan(0);
      expect(config.sip.trunks.flatMap((t) => t.addresses)).not.toContain('0.0.0.0/0');
      expect(config.sip.publicAddress).not.toBeNull();
      expect(config.sip.outbound.trunk).not.toBeNull();
      expect(config.sip.outbound.analyse).toBe(false);
      // The PBX must be told to offer only what voiceguard keeps.
      expect(config.media.codecs).toEqual(['PCMU', 'PCMA']);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Live calls through the real gateway
// ---------------------------------------------------------------------------------------

async function freePort(host: string): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runProc(
  cmd: string,
  args: string[],
  opts: { cwd: string; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<Proc> {
  return new Promise((done, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-50_000)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-50_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** sipp run in its own folder, with the messages it saw traced to a file. */
async function sipp(
  name: string,
  scenario: string,
  args: string[],
  timeoutMs = 40_000,
): Promise<{ proc: Proc; messages: string }> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const messageFile = join(dir, 'messages.log');
  const proc = await runProc(
    'sipp',
    [
      '-sf',
      join(sippDir, scenario),
      ...args,
      '-m',
      '1',
      '-nostdin',
      '-trace_msg',
      '-message_file',
      messageFile,
      '-trace_err',
    ],
    {
      cwd: dir,
      timeoutMs,
    },
  );
  const errors = readdirSync(dir)
    .filter((f) => f.endsWith('_errors.log'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
  proc.stderr += errors;
  return { proc, messages: existsSync(messageFile) ? readFileSync(messageFile, 'utf8') : '' };
}

/** The first SIP message in a sipp -trace_msg log, sent or received, whose start line matches. */
function traced(messages: string, startLine: RegExp, direction: 'received' | 'sent'): string {
  for (const chunk of messages.replace(/\r/g, '').split(/^-{10,}.*$/m)) {
    const m = /^\s*(?:UDP|TCP) message (sent|received)[^\n]*\n\n?([\s\S]*)$/.exec(chunk);
    if (!m || m[1] !== direction) continue;
    const msg = m[2]!.trim();
    if (startLine.test(msg.split('\n')[0]!)) return msg;
  }
  throw new Error(`no ${direction} message matching ${startLine} in:\n${messages.slice(0, 4000)}`);
}

function sdpMedia(msg: string): { address: string; port: number; rtpmaps: string[] } {
  const c = /^c=IN IP4 (\S+)/m.exec(msg);
  const m = /^m=audio (\d+) /m.exec(msg);
  expect(c && m, `no SDP in:\n${msg}`).toBeTruthy();
  return {
    address: c![1]!,
    port: Number(m![1]),
    rtpmaps: [...msg.matchAll(/^a=rtpmap:(.+)$/gm)].map((x) => x[1]!.trim()),
  };
}

describe('integration guides: calls through the real gateway', () => {
  for (const g of GUIDES) {
    describe(g.doc, () => {
      let gateway: ChildProcess | null = null;
      let gatewayLog = '';
      let sipPort = 0;
      let pbxPort = 0;
      let carrierUasPort = 0;
      let apiPort = 0;
      let rtpMin = 0;
      const rtpCount = 200;

      beforeAll(async () => {
        const dir = join(work, `gw-${g.doc.replace(/\W/g, '_')}`);
        mkdirSync(dir, { recursive: true });
        const configFile = join(dir, 'voiceguard.yaml');
        writeFileSync(configFile, guideYaml(g.doc));
        sipPort = await freePort(GATEWAY_IP);
        pbxPort = await freePort(PBX_IP);
        carrierUasPort = await freePort(CARRIER_IP);
        apiPort = await freePort('127.0.0.1');
        rtpMin = ((await freePort(GATEWAY_IP)) & ~1) - 0;
        // Only the guide's file plus these overrides: the example addresses become loopback ones.
        const env: NodeJS.ProcessEnv = {
          ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VOICEGUARD_'))),
          VOICEGUARD_CONFIG: configFile,
          VOICEGUARD_SIP_LISTEN_HOST: GATEWAY_IP,
          VOICEGUARD_SIP_LISTEN_PORT: String(sipPort),
          VOICEGUARD_SIP_PUBLIC_ADDRESS: GATEWAY_IP,
          VOICEGUARD_SIP_TRUNKS: JSON.stringify([{ name: 'carrier', addresses: [`${CARRIER_IP}/32`] }]),
          VOICEGUARD_SIP_PBX_HOST: PBX_IP,
          VOICEGUARD_SIP_PBX_PORT: String(pbxPort),
          VOICEGUARD_SIP_OUTBOUND_TRUNK: JSON.stringify({ host: CARRIER_IP, port: carrierUasPort }),
          VOICEGUARD_MEDIA_BIND_HOST: GATEWAY_IP,
          VOICEGUARD_MEDIA_PUBLIC_ADDRESS: GATEWAY_IP,
          VOICEGUARD_MEDIA_PORT_MIN: String(rtpMin),
          VOICEGUARD_MEDIA_PORT_MAX: String(rtpMin + rtpCount - 1),
          VOICEGUARD_STORE_PATH: join(dir, 'voiceguard.sqlite'),
          VOICEGUARD_API_HOST: '127.0.0.1',
          VOICEGUARD_API_PORT: String(apiPort),
          VOICEGUARD_API_BOOTSTRAP_ADMIN_TOKEN: ADMIN_TOKEN,
        };
        gateway = spawn(process.execPath, [cli, 'serve'], {
          cwd: repo,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        gateway.stdout!.on('data', (d: Buffer) => (gatewayLog = (gatewayLog + d.toString()).slice(-200_000)));
        gateway.stderr!.on('data', (d: Buffer) => (gatewayLog = (gatewayLog + d.toString()).slice(-200_000)));
        const deadline = Date.now() + 60_000;
        for (;;) {
          if (gateway.exitCode !== null)
            throw new Error(`voiceguard serve exited ${gateway.exitCode}:\n${gatewayLog}`);
          try {
            const r = await fetch(`http://127.0.0.1:${apiPort}/health`);
            if (r.ok) break;
          } catch {
            // not listening yet
          }
          if (Date.now() > deadline)
            throw new Error(`voiceguard serve not healthy after 60 s:\n${gatewayLog}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      }, 90_000);

      afterAll(async () => {
        if (!gateway || gateway.exitCode !== null) return;
        const exited = new Promise((r) => gateway!.once('exit', r));
        gateway.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (gateway.exitCode === null) gateway.kill('SIGKILL');
      });

      async function calls(): Promise<Record<string, unknown>[]> {
        const r = await fetch(`http://127.0.0.1:${apiPort}/api/calls?limit=50`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        expect(r.status).toBe(200);
        return ((await r.json()) as { items: Record<string, unknown>[] }).items;
      }

      it('inbound: the carrier call reaches the PBX with anchored media, and the PBX answer reaches the carrier', async () => {
        const tag = `in-${g.pbxUas}`;
        const pbx = sipp(`${g.doc}-${tag}-pbx`.replace(/\W/g, '_'), g.pbxUas, [
          '-i',
          PBX_IP,
          '-mi',
          PBX_IP,
          '-p',
          String(pbxPort),
          '-mp',
          String(await freePort(PBX_IP)),
        ]);
        await waitUdpBound(pbxPort); // the PBX listens before the carrier dials
        const carrier = await sipp(`${g.doc}-${tag}-carrier`.replace(/\W/g, '_'), 'pbx-carrier-uac.xml', [
          `${GATEWAY_IP}:${sipPort}`,
          '-s',
          '+4930555123',
          '-i',
          CARRIER_IP,
          '-mi',
          CARRIER_IP,
          '-p',
          String(await freePort(CARRIER_IP)),
          '-mp',
          String(await freePort(CARRIER_IP)),
          '-timeout',
          '35s',
        ]);
        const pbxRun = await pbx;
        const why = `carrier:\n${carrier.proc.stdout.slice(-1500)}${carrier.proc.stderr}\npbx:\n${pbxRun.proc.stdout.slice(-1500)}${pbxRun.proc.stderr}\ngateway:\n${gatewayLog.slice(-6000)}`;
        expect(carrier.proc.code, why).toBe(0);
        expect(pbxRun.proc.code, why).toBe(0);

        // What the PBX got: an offer whose media points at voiceguard's range, DTMF kept, the number kept.
        const invite = traced(pbxRun.messages, /^INVITE sip:\+4930555123@/, 'received');
        const offer = sdpMedia(invite);
        expect(offer.address).toBe(GATEWAY_IP);
        expect(offer.port).toBeGreaterThanOrEqual(rtpMin);
        expect(offer.port).toBeLessThan(rtpMin + rtpCount);
        expect(offer.rtpmaps.some((r) => /telephone-event\/8000/.test(r))).toBe(true);
        expect(offer.rtpmaps.every((r) => /PCMU|PCMA|telephone-event/.test(r))).toBe(true);
        expect(invite).toMatch(/^From:.*\+49305550100/m);

        // What the carrier got back: the PBX's answer, with media on voiceguard, and the PBX's session timer.
        const ok = traced(carrier.messages, /^SIP\/2\.0 200 OK/, 'received');
        const answer = sdpMedia(ok);
        expect(answer.address).toBe(GATEWAY_IP);
        expect(answer.port).toBeGreaterThanOrEqual(rtpMin);
        expect(answer.port).toBeLessThan(rtpMin + rtpCount);
        expect(answer.rtpmaps.some((r) => /PCMA\/8000/.test(r))).toBe(true);
        expect(ok).toMatch(/^Session-Expires:\s*1800/im);

        // The store has it: inbound from the carrier trunk, analysed, ended.
        let call: Record<string, unknown> | undefined;
        for (let i = 0; i < 20 && !call?.endedAtMs; i++) {
          call = (await calls()).find(
            (c) => c.direction === 'inbound' && String(c.toNumber).includes('4930555123'),
          );
          if (!call?.endedAtMs) await new Promise((r) => setTimeout(r, 250));
        }
        expect(call, why).toBeDefined();
        expect(call!.trunk).toBe('carrier');
        expect(call!.treatment).toBe('analyse');
        expect(call!.endedAtMs).not.toBeNull();
        expect(call!.answeredAtMs).not.toBeNull();
        // 7 s of speech were relayed: the detector scored windows of it.
        expect(call!.scoreCount as number).toBeGreaterThan(0);
      }, 60_000);

      it('outbound: a call shaped like this PBX reaches the carrier untouched except for media and routing', async () => {
        const carrier = sipp(`${g.doc}-out-carrier`.replace(/\W/g, '_'), 'pbx-carrier-uas.xml', [
          '-i',
          CARRIER_IP,
          '-mi',
          CARRIER_IP,
          '-p',
          String(carrierUasPort),
          '-mp',
          String(await freePort(CARRIER_IP)),
        ]);
        await waitUdpBound(carrierUasPort); // the carrier listens before the PBX dials
        const pbx = await sipp(`${g.doc}-out-pbx`.replace(/\W/g, '_'), g.pbxUac, [
          `${GATEWAY_IP}:${sipPort}`,
          '-s',
          '004930777888',
          '-i',
          PBX_IP,
          '-mi',
          PBX_IP,
          // A PBX sends from its SIP port (Asterisk, FreeSWITCH and FreePBX all do).
          '-p',
          String(pbxPort),
          '-mp',
          String(await freePort(PBX_IP)),
          '-timeout',
          '30s',
        ]);
        const carrierRun = await carrier;
        const why = `pbx:\n${pbx.proc.stdout.slice(-1500)}${pbx.proc.stderr}\ncarrier:\n${carrierRun.proc.stdout.slice(-1500)}${carrierRun.proc.stderr}\ngateway:\n${gatewayLog.slice(-6000)}`;
        expect(pbx.proc.code, why).toBe(0);
        expect(carrierRun.proc.code, why).toBe(0);

        const invite = traced(carrierRun.messages, /^INVITE sip:004930777888@/, 'received');
        const sent = traced(pbx.messages, /^INVITE /, 'sent');
        const mf = (m: string) => Number(/^Max-Forwards:\s*(\d+)/im.exec(m)![1]);
        expect(mf(invite)).toBe(mf(sent) - 1);
        const offer = sdpMedia(invite);
        expect(offer.address).toBe(GATEWAY_IP);
        expect(offer.rtpmaps.some((r) => /telephone-event\/8000/.test(r))).toBe(true);

        const ok = traced(pbx.messages, /^SIP\/2\.0 200 OK/, 'received');
        expect(sdpMedia(ok).address).toBe(GATEWAY_IP);

        let call: Record<string, unknown> | undefined;
        for (let i = 0; i < 20 && !call?.endedAtMs; i++) {
          call = (await calls()).find(
            (c) => c.direction === 'outbound' && String(c.toNumber).includes('4930777888'),
          );
          if (!call?.endedAtMs) await new Promise((r) => setTimeout(r, 250));
        }
        expect(call, why).toBeDefined();
        expect(call!.endedAtMs).not.toBeNull();
      }, 60_000);
    });
  }
});
