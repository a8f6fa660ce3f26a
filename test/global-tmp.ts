import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// One temp directory for the whole run. Test files make their own folders with
// mkdtemp(os.tmpdir()) and many leave them (SQLite stores, sipp scenarios, captures), which
// piled up thousands of folders in /tmp over repeated runs. The forked test workers inherit
// TMPDIR, so everything they and their children (sipp, baresip, python, chromium) write under
// os.tmpdir() lands here, and the teardown removes it. VOICEGUARD_KEEP_TEST_TMP=1 keeps it for
// a post-mortem.
export default function setup(): () => void {
  const before = process.env.TMPDIR;
  const parent = before ?? tmpdir();
  const dir = mkdtempSync(join(parent, 'vg-test-'));
  // Sticky and world-writable like /tmp itself: some tests run a child as another user (the
  // Dockerfile replay's image user), which must be able to walk into its folder here.
  chmodSync(dir, 0o1777);
  process.env.TMPDIR = dir;
  return () => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    if (process.env.VOICEGUARD_KEEP_TEST_TMP === '1') {
      console.log(`test temp folder kept: ${dir} (${readdirSync(dir).length} entries)`);
      return;
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
