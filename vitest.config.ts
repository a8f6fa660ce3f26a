import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests bind real UDP/TCP ports and spawn sipp/chromium; on a 2-core box
    // running files in parallel makes timing-sensitive media tests flaky.
    fileParallelism: false,
    pool: 'forks',
    // Every temp folder of the run goes under one per-run TMPDIR that is removed at the end.
    globalSetup: ['test/global-tmp.ts'],
  },
});
