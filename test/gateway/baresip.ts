import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { loadAudioFile } from '../../src/audio/load-audio.js';
import { encodeWav16 } from '../../src/audio/wav.js';

/**
 * baresip (Debian's baresip-core) as a real SIP over TLS peer: sipp from Debian is built without
 * TLS, baresip with it. One instance is a caller that dials at start and plays a WAV file, or a
 * PBX that answers every call and records what it hears. It listens UDP/TCP on `port` and TLS on
 * `port + 1`; it quits after `quitAfterS`, or when its WAV file ends during a call (it hangs up).
 */
export const TLS_FIXTURES = resolve('test/fixtures/tls');

export interface BaresipOptions {
  /** User part of its account (a PBX answers calls to this user). */
  user: string;
  port: number;
  /** Certificate it presents (fixture name in test/fixtures/tls, without .pem/.key). */
  cert: string;
  /** WAV (8 kHz mono 16-bit) it sends in a call; null = silence. */
  source: string | null;
  answer?: boolean;
  /** SIP transport of its account (its Contact); default tls. */
  transport?: 'udp' | 'tls';
  /** Media encryption: srtp = best effort (a=crypto on RTP/AVP), srtp-mand = RTP/SAVP required. */
  mediaenc?: 'srtp' | 'srtp-mand';
  /** URI to call once started. */
  dial?: string;
  quitAfterS: number;
}

export interface BaresipPeer {
  /** The WAV file of the audio it heard in its first call (complete once it has quit), or null. */
  heard(): string | null;
  /** Its output so far (with the SIP trace). */
  output(): string;
  /** Resolves once it printed "baresip is ready." */
  ready: Promise<void>;
  done: Promise<{ code: number | null; output: string }>;
  kill(): void;
  /** Quit cleanly (SIGTERM): it hangs up and closes its files. */
  stop(): void;
}

export function startBaresip(o: BaresipOptions): BaresipPeer {
  const dir = mkdtempSync(join(tmpdir(), 'vg-baresip-'));
  writeFileSync(
    join(dir, 'cert.pem'),
    readFileSync(join(TLS_FIXTURES, `${o.cert}.pem`), 'utf8') +
      readFileSync(join(TLS_FIXTURES, `${o.cert}.key`), 'utf8'),
  );
  let source = o.source;
  if (!source) {
    source = join(dir, 'silence.wav');
    writeFileSync(source, encodeWav16(new Float32Array(8000 * (o.quitAfterS + 5)), 8000));
  }
  const dump = join(dir, 'dump');
  mkdirSync(dump);
  /** The decoded (heard) audio of the first call: sndfile names it dump-<time>-dec.wav. */
  const heard = (): string | null => {
    const f = readdirSync(dump)
      .filter((n) => n.endsWith('-dec.wav'))
      .sort()[0];
    return f ? join(dump, f) : null;
  };
  writeFileSync(
    join(dir, 'config'),
    [
      'poll_method epoll',
      `sip_listen 127.0.0.1:${o.port}`,
      `sip_certificate ${join(dir, 'cert.pem')}`,
      `sip_cafile ${join(TLS_FIXTURES, 'ca.pem')}`,
      `audio_source aufile,${source}`,
      `audio_alert aufile,${join(dir, 'alert.wav')}`,
      'module_path /usr/lib/baresip/modules',
      'module aufile.so',
      'module g711.so',
      'module srtp.so',
      // Its aufile has no player in this version: sndfile writes what is sent and heard instead.
      'module sndfile.so',
      `snd_path ${dump}`,
      'module_app account.so',
      'module_app menu.so',
      'rtp_timeout 0',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'accounts'),
    `<sip:${o.user}@127.0.0.1;transport=${o.transport ?? 'tls'}>;regint=0;audio_codecs=PCMU` +
      `${o.answer ? ';answermode=auto' : ''}${o.mediaenc ? `;mediaenc=${o.mediaenc}` : ''}\n`,
  );
  const args = ['-s', '-f', dir, '-t', String(o.quitAfterS)];
  if (o.dial) args.push('-e', `/dial ${o.dial}`);
  const child = spawn('baresip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let onReady: () => void = () => {};
  const ready = new Promise<void>((res) => (onReady = res));
  const add = (d: Buffer) => {
    output = (output + d.toString('latin1')).slice(-200_000);
    if (output.includes('baresip is ready.')) onReady();
  };
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  const done = new Promise<{ code: number | null; output: string }>((res) =>
    child.on('close', (code) => res({ code, output })),
  );
  return {
    heard,
    output: () => output,
    ready,
    done,
    kill: () => child.kill('SIGKILL'),
    stop: () => child.kill('SIGTERM'),
  };
}

/** The SIP messages in a baresip trace: the start lines and headers it printed, one string per message. */
export function tracedMessages(output: string): string[] {
  return output
    .split(/\r?\n(?=(?:TLS|TCP|UDP) \S+ -> \S+)/)
    .filter((m) => /^(TLS|TCP|UDP) /.test(m))
    .map((m) => m.replace(/\r/g, ''));
}

function rms(samples: Float32Array): number {
  let sum = 0;
  for (const v of samples) sum += v * v;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

/** The peer heard speech in its call: more than 2 s of audio, not silence (`context` explains a failure). */
export async function expectHeardSpeech(peer: BaresipPeer, context: string, label?: string): Promise<void> {
  const file = peer.heard();
  expect(file, context).not.toBeNull();
  const heard = await loadAudioFile(file!);
  expect(heard.samples.length / heard.sampleRateHz, label ?? context).toBeGreaterThan(2);
  expect(rms(heard.samples), label).toBeGreaterThan(0.01);
}
