import type { SrtpSuite } from './srtp.js';

/**
 * Types of the media plane (the MediaRelay contract of docs/interfaces.md) and the messages
 * between the main thread and the relay worker threads.
 */

export type MediaLeg = 'a' | 'b';
export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export type PayloadMap = Record<number, string>;

export interface LocalEndpoint {
  address: string;
  rtpPort: number;
  rtcpPort: number;
}
export interface RemoteEndpoint {
  address: string;
  rtpPort: number;
  rtcpPort?: number;
}

export interface MediaRelayStats {
  sessions: number;
  portsInUse: number;
  packetsRelayed: number;
  packetsDropped: number;
  forkFramesShed: number;
  /** Relayed packets replaced by injected audio (warn tone / announcement). */
  packetsReplaced: number;
  /** Packets from a source other than the latched one (checked in JS before the socket is connected). */
  sourceRejected: number;
  /** SRTP/SRTCP packets that failed authentication or were replays (dropped). */
  srtpAuthFailed: number;
  workers: number;
}

export interface LatchedEvent {
  leg: MediaLeg;
  kind: 'rtp' | 'rtcp';
  address: string;
  port: number;
  /** Where SDP said the peer was (null if setRemote was not called yet). */
  sdpAddress: string | null;
  sdpPort: number | null;
}
export interface SsrcChangeEvent {
  leg: MediaLeg;
  oldSsrc: number;
  newSsrc: number;
}
export interface RtpTimeoutEvent {
  silentMs: number;
}
export interface SourceRejectedEvent {
  leg: MediaLeg;
  address: string;
  port: number;
  count: number;
}

/** Typed errors at the media boundary. */
export class MediaError extends Error {
  constructor(
    readonly code:
      | 'MEDIA_PORTS_EXHAUSTED'
      | 'MEDIA_SESSION_CLOSED'
      | 'MEDIA_RELAY_CLOSED'
      | 'MEDIA_NO_REMOTE'
      | 'MEDIA_WORKER_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'MediaError';
  }
}
export class PortPoolExhaustedError extends MediaError {
  constructor(portMin: number, portMax: number) {
    super('MEDIA_PORTS_EXHAUSTED', `no free RTP port pair in ${portMin}..${portMax}`);
    this.name = 'PortPoolExhaustedError';
  }
}

export interface LegPorts {
  rtp: number;
  rtcp: number;
}

/** main thread -> worker */
export type ToWorker =
  | { t: 'open'; id: number; bindHost: string; ports: Record<MediaLeg, LegPorts> }
  | { t: 'remote'; id: number; leg: MediaLeg; remote: RemoteEndpoint }
  | { t: 'pmap'; id: number; leg: MediaLeg; map: PayloadMap }
  | { t: 'dir'; id: number; leg: MediaLeg; dir: MediaDirection }
  | { t: 'fork'; id: number; on: boolean }
  | { t: 'fork-ack'; id: number }
  | { t: 'inject'; id: number; req: number; toward: MediaLeg; pcm: Float32Array }
  | { t: 'srtp'; id: number; leg: MediaLeg; keys: SrtpLegKeys | null }
  | { t: 'close'; id: number };

/** SDES keys of one leg (RFC 4568): `remote` decrypts what the peer sends, `local` encrypts what we send it. */
export interface SrtpLegKeys {
  remote: { suite: SrtpSuite; keySalt: Uint8Array };
  local: { suite: SrtpSuite; keySalt: Uint8Array };
}

export interface WorkerCounters {
  /** SRTP/SRTCP packets dropped because they failed authentication or were replays. */
  srtpAuthFailed: number;
  packetsRelayed: number;
  packetsDropped: number;
  forkFramesShed: number;
  packetsReplaced: number;
  sourceRejected: number;
}

/** worker -> main thread */
export type FromWorker =
  | { t: 'opened'; id: number }
  | { t: 'open-failed'; id: number; port: number; message: string }
  | { t: 'closed'; id: number; counters: WorkerCounters }
  | { t: 'latched'; id: number; ev: LatchedEvent }
  | { t: 'ssrc-change'; id: number; ev: SsrcChangeEvent }
  | { t: 'rtp-timeout'; id: number; ev: RtpTimeoutEvent }
  | { t: 'source-rejected'; id: number; ev: SourceRejectedEvent }
  | { t: 'audio'; id: number; pcm: Float32Array }
  | { t: 'inject-done'; id: number; req: number; error: string | null }
  | { t: 'stats'; counters: WorkerCounters };
