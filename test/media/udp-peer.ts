import dgram from 'node:dgram';
import { serializeRtp } from '../../src/media/rtp-packet.js';

/** A real UDP endpoint on 127.0.0.1 that records what it receives. */
export interface Peer {
  sock: dgram.Socket;
  port: number;
  got: Buffer[];
  send(buf: Buffer, port: number): Promise<void>;
  close(): Promise<void>;
}

export async function peer(port = 0): Promise<Peer> {
  const sock = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  await new Promise<void>((resolve) => sock.bind(port, '127.0.0.1', () => resolve()));
  return {
    sock,
    port: sock.address().port,
    got,
    send: (buf, to) =>
      new Promise((resolve, reject) => sock.send(buf, to, '127.0.0.1', (e) => (e ? reject(e) : resolve()))),
    close: () => new Promise((resolve) => sock.close(() => resolve())),
  };
}

export function rtp(
  seq: number,
  ts: number,
  ssrc: number,
  payload: Uint8Array,
  payloadType = 0,
  marker = false,
): Buffer {
  return serializeRtp({
    version: 2,
    padding: false,
    extension: false,
    marker,
    payloadType,
    sequenceNumber: seq,
    timestamp: ts,
    ssrc,
    csrc: [],
    payload,
  });
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
