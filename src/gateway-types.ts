import type { EventEmitter } from 'node:events';
import type { SrtpLegKeys } from './media/media-types.js';

/**
 * What the gateway needs from src/media, as agreed in docs/interfaces.md (MediaRelay /
 * MediaSession). Declared structurally here so the call orchestration compiles and is tested
 * against the contract; the TypeScript relay in src/media (and a later native one) satisfy it.
 */
export type MediaLeg = 'a' | 'b';
export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface MediaSessionLike extends EventEmitter {
  readonly callId: string;
  readonly closed: boolean;
  local(leg: MediaLeg): { address: string; rtpPort: number; rtcpPort: number };
  setRemote(leg: MediaLeg, remote: { address: string; rtpPort: number; rtcpPort?: number }): void;
  setPayloadMap(leg: MediaLeg, map: Record<number, string>): void;
  setDirection(leg: MediaLeg, dir: MediaDirection): void;
  setSrtp(leg: MediaLeg, keys: SrtpLegKeys | null): void;
  startFork(onAudio: (pcm8k: Float32Array) => void): void;
  stopFork(): void;
  inject(toward: MediaLeg, pcm8k: Float32Array): Promise<void>;
  close(): Promise<void>;
}

export interface MediaRelayLike {
  allocate(callId: string): Promise<MediaSessionLike>;
  stats(): {
    sessions: number;
    portsInUse: number;
    packetsRelayed: number;
    packetsDropped: number;
    forkFramesShed: number;
    packetsReplaced: number;
    /** SRTP/SRTCP packets dropped for failed authentication or replay (SRTP terminated by voiceguard). */
    srtpAuthFailed: number;
  };
  close(): Promise<void>;
}
