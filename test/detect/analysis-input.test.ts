import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildUdpFrame, writeRtpPcap } from '../../src/audio/pcap-writer.js';
import { encodeWav16 } from '../../src/audio/wav.js';
import { InputError, loadAnalysisInputs } from '../../src/detect/analysis-input.js';
import { pcapRecords, testSignal, throughG711, writePcap } from '../audio/capture-helpers.js';

/** What `voiceguard analyze` feeds the detector for each kind of file (no model needed). */

let dir: string;
const a = testSignal(8000, 1);
const b = testSignal(8000, 4);
let two: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-input-'));
  const caller = writeRtpPcap({
    samples: a,
    codec: 'pcmu',
    src: '10.0.0.1:40000',
    dst: '10.0.0.2:20000',
    ssrc: 0x1111,
    startTimeMs: 20,
  });
  const callee = writeRtpPcap({
    samples: b,
    codec: 'pcma',
    src: '10.0.0.2:20000',
    dst: '10.0.0.1:40000',
    ssrc: 0x2222,
  });
  two = writePcap([...pcapRecords(callee), ...pcapRecords(caller)], 1);
});

describe('loadAnalysisInputs', () => {
  // Regression: while the capture readers were missing, WAV analysis failed too.
  it('reads a WAV without involving the capture readers', async () => {
    const wav = join(dir, 'a.wav');
    writeFileSync(wav, encodeWav16(a, 8000));
    const r = await loadAnalysisInputs(wav, { allStreams: false });
    expect(r.warnings).toEqual([]);
    expect(r.inputs).toHaveLength(1);
    expect(r.inputs[0].stream).toBeNull();
    expect(r.inputs[0].codec).toBeNull();
    expect(r.inputs[0].samples8k.length).toBe(8000);
  });

  it('takes the caller stream of a capture, or every stream labelled with --all-streams', async () => {
    const f = join(dir, 'two.pcap');
    writeFileSync(f, two);
    const one = await loadAnalysisInputs(f, { allStreams: false });
    expect(one.inputs).toHaveLength(1);
    expect(one.inputs[0]).toEqual({ stream: null, samples8k: throughG711('pcma', b), codec: 'pcma' });
    const all = await loadAnalysisInputs(f, { allStreams: true });
    expect(all.inputs.map((i) => i.stream)).toEqual([
      'ssrc=0x00002222 10.0.0.2:20000->10.0.0.1:40000 pcma caller',
      'ssrc=0x00001111 10.0.0.1:40000->10.0.0.2:20000 pcmu',
    ]);
    expect(all.inputs[1].samples8k).toEqual(throughG711('pcmu', a));
    expect(all.inputs.map((i) => i.codec)).toEqual(['pcma', 'pcmu']);
  });

  it('passes on truncation and loss as warnings', async () => {
    const recs = pcapRecords(two);
    const f = join(dir, 'cut.pcap');
    const full = writePcap([...recs.slice(0, 20), ...recs.slice(22, 60)], 1);
    writeFileSync(f, full.subarray(0, full.length - 10));
    const r = await loadAnalysisInputs(f, { allStreams: false });
    expect(r.warnings).toEqual([
      'capture ends mid-packet (truncated file); read the 57 packets before the cut',
      'ssrc=0x00002222 10.0.0.2:20000->10.0.0.1:40000 pcma caller: 2 RTP packets lost, filled with silence',
    ]);
  });

  it('a capture without G.711 RTP is an InputError', async () => {
    const f = join(dir, 'sip-only.pcap');
    const frame = buildUdpFrame(
      { address: '10.0.0.1', port: 5060 },
      { address: '10.0.0.2', port: 5060 },
      Buffer.from('OPTIONS sip:x SIP/2.0\r\n\r\n'),
    );
    writeFileSync(f, writePcap([{ timeMs: 0, frame }], 1));
    await expect(loadAnalysisInputs(f, { allStreams: false })).rejects.toThrow(InputError);
    await expect(loadAnalysisInputs(f, { allStreams: false })).rejects.toThrow(
      'no PCMU/PCMA RTP stream (nor G.729, where its codec is built) in the capture',
    );
  });
});
