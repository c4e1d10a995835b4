import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start servers on their own free ports; files may run in parallel,
    // but the machine has 2 cores, so keep the pool small.
    pool: 'forks',
    maxWorkers: 2,
  },
});
