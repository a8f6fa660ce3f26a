import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { freeSipPort, freeTcpPort, retryTakenPort } from '../ports.js';
import {
  copyArgs,
  isIgnored,
  parseDockerfile,
  parseDockerignore,
  stageEnv,
  type Stage,
} from './dockerfile-parser.js';

/**
 * The image cannot be built here (no Docker engine), so this test reads the Dockerfile,
 * checks what the image must look like, and replays the build: the build stage's COPY and
 * RUN steps run in a clean temporary root with the files a `docker build .` would send
 * (git's view of the repo filtered by .dockerignore), the final stage is assembled from its
 * COPY --from lines, and the entrypoint runs `serve --check-config` there as the image's user.
 */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dockerfile = parseDockerfile(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
const ignore = parseDockerignore(readFileSync(join(repo, '.dockerignore'), 'utf8'));
const finalStage = dockerfile.stages[dockerfile.stages.length - 1]!;
const buildStageName = finalStage.instructions.find((i) => i.flags.from)?.flags.from;
const buildStage = dockerfile.stages.find((s) => s.name === buildStageName)!;

const all = (stage: Stage, kw: string) => stage.instructions.filter((i) => i.keyword === kw);
const runText = (stage: Stage) =>
  all(stage, 'RUN')
    .map((i) => i.args)
    .join('\n');

// Tools that must never be in the runtime image: compilers, build systems, package installs.
const BUILD_TOOLS =
  /\b(apt-get|apt|gcc|g\+\+|make|python3|build-essential|node-gyp|npm (ci|install|i|prune|run))\b/;

describe('Dockerfile structure', () => {
  it('is multi-stage, every stage on the Debian slim Node 20 base', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const s of dockerfile.stages) expect(s.from).toBe('node:20-bookworm-slim');
    expect(buildStage).toBeDefined();
    expect(buildStage).not.toBe(finalStage);
  });

  it('builds in the build stage: toolchain, npm ci, build, native addon step, prune', () => {
    const run = runText(buildStage);
    expect(run).toMatch(/apt-get install[^\n]*\bg\+\+/);
    expect(run).toMatch(/\bnpm ci\b/);
    expect(run).toMatch(/\bnpm run build\b/);
    expect(run).toMatch(/native\/binding\.gyp/);
    expect(run).toMatch(/npm prune --omit=dev/);
    // npm ci needs the onnxruntime-node-install=skip setting from .npmrc.
    const copied = all(buildStage, 'COPY').flatMap((i) => copyArgs(i).sources);
    expect(copied).toContain('.npmrc');
  });

  it('has no build tools, package installs or compilers in the final stage', () => {
    for (const ins of all(finalStage, 'RUN')) expect(ins.args).not.toMatch(BUILD_TOOLS);
    for (const ins of all(finalStage, 'COPY')) expect(ins.flags.from ?? buildStageName).toBe(buildStageName);
  });

  it('runs as a non-root user, set before the entrypoint', () => {
    const users = all(finalStage, 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users[users.length - 1]!.args.split(':')[0]!;
    expect(['root', '0']).not.toContain(user);
    const entry = all(finalStage, 'ENTRYPOINT')[0]!;
    expect(users[users.length - 1]!.line).toBeLessThan(entry.line);
  });

  it('exposes SIP over UDP and TCP, the admin port and the default RTP range of the config', () => {
    const defaults = ConfigSchema.parse({});
    const exposed = all(finalStage, 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    expect(exposed).toEqual(
      expect.arrayContaining([
        `${defaults.sip.listen.port}/udp`,
        `${defaults.sip.listen.port}/tcp`,
        `${defaults.api.port}/tcp`,
        `${defaults.media.portMin}-${defaults.media.portMax}/udp`,
      ]),
    );
  });

  it('keeps config and data on volumes, pointed at by the environment', () => {
    const volumes = all(finalStage, 'VOLUME').flatMap((i) => i.json ?? i.args.split(/\s+/));
    expect(volumes).toEqual(expect.arrayContaining(['/etc/voiceguard', '/var/lib/voiceguard']));
    const env = stageEnv(finalStage);
    expect(env.VOICEGUARD_CONFIG).toBe('/etc/voiceguard/voiceguard.yaml');
    expect(env.VOICEGUARD_STORE_PATH).toBe('/var/lib/voiceguard/voiceguard.sqlite');
    // Inside a container the API must listen on all interfaces to be reachable at all.
    expect(env.VOICEGUARD_API_HOST).toBe('0.0.0.0');
  });

  it('has a HEALTHCHECK that asks /health with node itself', () => {
    const hc = all(finalStage, 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    const cmd = hc[0]!.args.replace(/^CMD\s+/, '');
    const argv = JSON.parse(cmd) as string[];
    expect(argv[0]).toBe('node');
    expect(argv).not.toContain('curl');
    const script = readFileSync(join(repo, argv[1]!), 'utf8');
    expect(script).toContain("path: '/health'");
  });

  it('starts the CLI with serve by default', () => {
    expect(all(finalStage, 'ENTRYPOINT')[0]!.json).toEqual(['node', 'dist/src/cli/main.js']);
    expect(all(finalStage, 'CMD')[0]!.json).toEqual(['serve']);
  });

  it('.dockerignore sends sources and the model, never local state', () => {
    for (const p of [
      'package.json',
      'package-lock.json',
      '.npmrc',
      'src/cli/main.ts',
      'models/voiceguard-detector.onnx',
      'deploy/healthcheck.mjs',
    ]) {
      expect(isIgnored(ignore, p), p).toBe(false);
    }
    for (const p of [
      'node_modules/fastify/package.json',
      'dist/src/cli/main.js',
      'data/voiceguard.sqlite',
      'models/.venv/bin/python',
      '.git/HEAD',
      'test/config/load-config.test.ts',
      'src/x.sqlite',
    ]) {
      expect(isIgnored(ignore, p), p).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'vg-docker-'));
chmodSync(work, 0o755); // the image's user must be able to walk into the final root
afterAll(() => rmSync(work, { recursive: true, force: true }));

function contextFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: repo,
    maxBuffer: 64 << 20,
  })
    .toString()
    .split('\0')
    .filter(Boolean);
  return [...new Set(out)].filter(
    (f) => existsSync(join(repo, f)) && statSync(join(repo, f)).isFile() && !isIgnored(ignore, f),
  );
}

interface Root {
  dir: string;
  cwd: string;
  env: Record<string, string>;
}
const inRoot = (root: Root, p: string) => join(root.dir, posix.resolve(root.cwd, p));

function copyFromContext(root: Root, files: string[], sources: string[], dest: string): void {
  const destAbs = posix.resolve(root.cwd, dest);
  for (const src of sources) {
    if (/[*?[]/.test(src)) throw new Error(`replay does not handle COPY wildcards: ${src}`);
    const s = posix.normalize(src).replace(/\/$/, '');
    const matched = s === '.' ? files : files.filter((f) => f === s || f.startsWith(s + '/'));
    if (matched.length === 0)
      throw new Error(`COPY ${src}: not in the build context (missing, or excluded by .dockerignore)`);
    for (const f of matched) {
      let target: string;
      if (s === '.') target = posix.join(destAbs, f);
      else if (f === s)
        target = dest.endsWith('/') || sources.length > 1 ? posix.join(destAbs, basename(f)) : destAbs;
      else target = posix.join(destAbs, f.slice(s.length + 1));
      mkdirSync(dirname(join(root.dir, target)), { recursive: true });
      cpSync(join(repo, f), join(root.dir, target));
    }
  }
}

/** Like spawnSync, but keeps the test worker's event loop free (vitest's RPC times out otherwise). */
function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number; timeoutMs: number },
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20_000)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ status, stdout, stderr });
    });
  });
}

function aptPackages(cmd: string): string[] {
  const m = /apt-get install ([^&]*)/.exec(cmd);
  return m ? m[1]!.split(/\s+/).filter((w) => w && !w.startsWith('-')) : [];
}

async function replayBuild(stage: Stage, files: string[]): Promise<Root> {
  const root: Root = { dir: join(work, 'build-root'), cwd: '/', env: {} };
  mkdirSync(root.dir, { recursive: true });
  for (const ins of stage.instructions) {
    switch (ins.keyword) {
      case 'WORKDIR':
        root.cwd = posix.resolve(root.cwd, ins.args);
        mkdirSync(join(root.dir, root.cwd), { recursive: true });
        break;
      case 'ENV':
        Object.assign(root.env, stageEnv({ ...stage, instructions: [ins] }));
        break;
      case 'COPY': {
        const { sources, dest } = copyArgs(ins);
        copyFromContext(root, files, sources, dest);
        break;
      }
      case 'RUN': {
        if (/apt-get/.test(ins.args)) {
          // System packages cannot be installed into a temp dir; the replay host must have
          // the same toolchain, which is what the step would give the image.
          for (const pkg of aptPackages(ins.args)) {
            const r = spawnSync('dpkg', ['-s', pkg], { encoding: 'utf8' });
            expect(r.status, `build stage needs apt package ${pkg} (line ${ins.line})`).toBe(0);
          }
          break;
        }
        const r = await run('sh', ['-c', ins.args], {
          cwd: join(root.dir, root.cwd),
          env: { ...process.env, ...root.env, CI: 'true' },
          timeoutMs: 10 * 60_000,
        });
        expect(
          r.status,
          `RUN (line ${ins.line}) failed:\n${ins.args}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`,
        ).toBe(0);
        break;
      }
      case 'ARG':
      case 'LABEL':
        break;
      default:
        throw new Error(`replay does not handle ${ins.keyword} in the build stage (line ${ins.line})`);
    }
  }
  return root;
}

function assembleFinal(
  stage: Stage,
  build: Root,
): Root & { uid: number | null; gid: number | null; entry: string[] } {
  const root = {
    dir: join(work, 'final-root'),
    cwd: '/',
    env: {} as Record<string, string>,
    uid: null as number | null,
    gid: null as number | null,
    entry: [] as string[],
  };
  mkdirSync(root.dir, { recursive: true });
  chmodSync(root.dir, 0o755);
  for (const ins of stage.instructions) {
    switch (ins.keyword) {
      case 'WORKDIR':
        root.cwd = posix.resolve(root.cwd, ins.args);
        mkdirSync(join(root.dir, root.cwd), { recursive: true, mode: 0o755 });
        break;
      case 'ENV':
        Object.assign(root.env, stageEnv({ ...stage, instructions: [ins] }));
        break;
      case 'RUN':
        // The final stage may only create its user and folders; replay those on the temp root.
        for (const cmd of ins.args.split('&&').map((c) => c.trim())) {
          const words = cmd.split(/\s+/);
          if (words[0] === 'groupadd' || words[0] === 'useradd') continue;
          if (words[0] === 'mkdir') {
            for (const d of words.slice(1).filter((w) => !w.startsWith('-')))
              mkdirSync(inRoot(root, d), { recursive: true, mode: 0o755 });
            continue;
          }
          if (words[0] === 'chown') {
            const [u, g] = words[1]!.split(':').map(Number);
            expect(Number.isInteger(u), 'chown in the final stage uses the numeric uid').toBe(true);
            if (process.getuid?.() === 0)
              for (const p of words.slice(2)) chownSync(inRoot(root, p), u!, g ?? u!);
            continue;
          }
          throw new Error(`final stage RUN does something the replay does not know: ${cmd}`);
        }
        break;
      case 'COPY': {
        const { sources, dest } = copyArgs(ins);
        const destAbs = inRoot(root, dest);
        for (const src of sources) {
          const from = join(build.dir, src);
          expect(
            existsSync(from),
            `COPY --from=${ins.flags.from} ${src}: not produced by the build stage`,
          ).toBe(true);
          const target = dest.endsWith('/') || sources.length > 1 ? join(destAbs, basename(src)) : destAbs;
          mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
          cpSync(from, target, { recursive: true, verbatimSymlinks: true });
        }
        break;
      }
      case 'USER': {
        const [u, g] = ins.args.split(':').map(Number);
        root.uid = u!;
        root.gid = g ?? u!;
        break;
      }
      case 'ENTRYPOINT':
        root.entry = ins.json!;
        break;
      default:
        break; // VOLUME, EXPOSE, HEALTHCHECK, CMD: metadata, checked above
    }
  }
  return root;
}

/** Container paths in ENV values (volumes, config) point into the temp root. */
function mapEnv(root: Root): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(root.env))
    out[k] = v.startsWith('/') && existsSync(join(root.dir, v.split('/')[1]!)) ? join(root.dir, v) : v;
  return out;
}

describe('Dockerfile build replay', () => {
  it(
    'builds in a clean root, assembles the final layout, and the entrypoint passes serve --check-config as the image user',
    async () => {
      const files = contextFiles();
      const build = await replayBuild(buildStage, files);
      // Dev dependencies are gone after the prune, native binaries are there.
      const nm = join(build.dir, 'src/node_modules');
      expect(existsSync(join(nm, 'typescript')), 'dev dependency left after npm prune').toBe(false);
      expect(existsSync(join(nm, 'vitest'))).toBe(false);
      expect(existsSync(join(nm, 'better-sqlite3/build/Release/better_sqlite3.node'))).toBe(true);
      // npm ci's postinstall built the G.729 decoder (libbcg729-dev from the build stage's apt step).
      const g729 = 'native/g729/build/Release/g729.node';
      expect(existsSync(join(build.dir, 'src', g729)), 'G.729 decoder not built by npm ci').toBe(true);
      // onnxruntime-node carries the CPU binaries for both image platforms.
      const ortLinux = join(nm, 'onnxruntime-node/bin/napi-v6/linux');
      expect(readdirSync(ortLinux).sort()).toEqual(expect.arrayContaining(['arm64', 'x64']));
      expect(existsSync(join(ortLinux, 'arm64/onnxruntime_binding.node'))).toBe(true);

      const final = assembleFinal(finalStage, build);
      const app = join(final.dir, final.cwd);
      expect(existsSync(join(app, 'models/voiceguard-detector.onnx'))).toBe(true);
      expect(existsSync(join(app, 'dist/src/cli/main.js'))).toBe(true);
      expect(existsSync(join(app, 'node_modules/typescript'))).toBe(false);
      expect(existsSync(join(app, g729)), 'the image lacks the G.729 decoder').toBe(true);

      const env = mapEnv(final);
      const asUser =
        process.getuid?.() === 0 && final.uid !== null ? { uid: final.uid, gid: final.gid! } : {};
      const [cmd, ...args] = final.entry;
      expect(cmd).toBe('node');
      const r = await run(process.execPath, [...args, 'serve', '--check-config'], {
        cwd: app,
        // Only the image's environment: nothing from this repo's shell may help it start.
        env: { PATH: process.env.PATH!, HOME: join(final.dir, 'var/lib/voiceguard'), ...env },
        timeoutMs: 60_000,
        ...asUser,
      });
      expect(r.status, `serve --check-config failed:\n${r.stdout}\n${r.stderr}`).toBe(0);

      // Then the image's default command for real, on free loopback ports, until the
      // HEALTHCHECK command says healthy; SIGTERM (docker stop) must end it cleanly.
      // A port that a parallel test takes between pick and bind ends serve with one EADDRINUSE
      // line; the ports are then picked again (retryTakenPort).
      const cmdArgs = all(finalStage, 'CMD')[0]!.json!;
      const hc = JSON.parse(all(finalStage, 'HEALTHCHECK')[0]!.args.replace(/^CMD\s+/, '')) as string[];
      let log = '';
      const server = await retryTakenPort(async () => {
        const sipPort = await freeSipPort(); // SIP listens on UDP and TCP
        const apiPort = await freeTcpPort();
        const rtpMin = (await freeTcpPort()) & ~1;
        const runEnv = {
          PATH: process.env.PATH!,
          HOME: join(final.dir, 'var/lib/voiceguard'),
          ...env,
          VOICEGUARD_SIP_LISTEN_HOST: '127.0.0.1',
          VOICEGUARD_SIP_LISTEN_PORT: String(sipPort),
          VOICEGUARD_MEDIA_BIND_HOST: '127.0.0.1',
          VOICEGUARD_MEDIA_PORT_MIN: String(rtpMin),
          VOICEGUARD_MEDIA_PORT_MAX: String(rtpMin + 99),
          VOICEGUARD_API_PORT: String(apiPort),
        };
        const child = spawn(process.execPath, [...args, ...cmdArgs], {
          cwd: app,
          env: runEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
          ...asUser,
        });
        const closed = new Promise<void>((res) => child.once('close', () => res()));
        log = '';
        child.stdout.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
        child.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
        let healthy = false;
        for (let i = 0; i < 120 && !healthy && child.exitCode === null; i++) {
          const probe = await run(process.execPath, hc.slice(1), {
            cwd: app,
            env: runEnv,
            timeoutMs: 10_000,
            ...asUser,
          });
          healthy = probe.status === 0;
          if (!healthy) await new Promise((res) => setTimeout(res, 500));
        }
        if (!healthy) {
          if (child.exitCode === null) child.kill('SIGKILL');
          await closed; // all of its output, the one-line reason included
          throw new Error(`HEALTHCHECK never passed; serve log:\n${log}`);
        }
        return child;
      });
      try {
        // The store was created on the data volume, by the image's user.
        const db = join(final.dir, 'var/lib/voiceguard/voiceguard.sqlite');
        expect(existsSync(db), log).toBe(true);
        if (final.uid !== null && process.getuid?.() === 0) expect(statSync(db).uid).toBe(final.uid);
      } finally {
        const exited = new Promise<number | null>((res) => server.once('exit', (code) => res(code)));
        server.kill('SIGTERM');
        const code = await Promise.race([
          exited,
          new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 20_000)),
        ]);
        if (code === 'timeout') server.kill('SIGKILL');
        expect(code, `serve did not exit cleanly on SIGTERM:\n${log}`).toBe(0);
      }
    },
    15 * 60_000,
  );
});
