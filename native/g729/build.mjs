#!/usr/bin/env node
// Builds the optional G.729 decoder (native/g729, bcg729 linked statically) during `npm ci`.
// It needs libbcg729-dev (Debian/Ubuntu) and a C toolchain; without them voiceguard still installs
// and runs, and calls that offer only G.729 are relayed unanalysed (media.undecodable), as the
// startup log says. Never fails the install: it prints why it did not build and exits 0.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const skip = (why) => {
  console.log(
    `voiceguard: G.729 decoder not built (${why}); G.729-only calls will be relayed, not analysed.`,
  );
  process.exit(0);
};

if (process.env.VOICEGUARD_SKIP_G729 === '1') skip('VOICEGUARD_SKIP_G729=1');
const headers = ['/usr/include', '/usr/local/include'].map((d) => join(d, 'bcg729', 'decoder.h'));
if (!headers.some((h) => existsSync(h)))
  skip('no bcg729 headers: install libbcg729-dev, then run npm run build:g729');
const prefix = resolve(dirname(process.execPath), '..');
const gyp =
  process.env.npm_config_node_gyp ??
  join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
if (!existsSync(gyp)) skip(`node-gyp not found at ${gyp}`);
const args = [gyp, 'rebuild', '--release', '--loglevel=warn'];
// Headers next to this node (official builds, Debian's nodejs) mean no download is needed.
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h')))
  args.push(`--nodedir=${prefix}`);
const r = spawnSync(process.execPath, args, { cwd: here, stdio: ['ignore', 'inherit', 'inherit'] });
if (r.status !== 0) skip(`node-gyp exited with ${r.status ?? r.signal}`);
rmSync(join(here, 'build', 'Release', 'obj.target'), { recursive: true, force: true });
rmSync(join(here, 'build', 'Release', '.deps'), { recursive: true, force: true });
console.log('voiceguard: G.729 decoder built (native/g729/build/Release/g729.node).');
