#!/usr/bin/env node
import { Command } from 'commander';
import { registerAnalyze } from './analyze.js';
import { registerBench } from './bench.js';
import { registerConfig } from './config-command.js';
import { registerDoctor } from './doctor.js';
import { registerServe } from './serve.js';
import { registerWav2Pcap } from './wav2pcap.js';

/**
 * Entry point of the `voiceguard` command. Each subcommand lives in its own file and
 * registers itself here; this file only assembles them.
 */
const program = new Command();
program
  .name('voiceguard')
  .description(
    'Real-time AI-voice detector for SIP calls.\n' +
      'Sits between your SIP trunk and your PBX, listens to the first seconds of each caller,\n' +
      'and drops, warns about, or logs calls whose voice is synthetic (TTS robots).',
  )
  .version(process.env.npm_package_version ?? '0.1.0');

registerConfig(program);
registerAnalyze(program);
registerBench(program);
registerDoctor(program);
registerServe(program);
registerWav2Pcap(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`voiceguard: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
