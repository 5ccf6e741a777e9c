import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Forks, not threads: NODE_EXTRA_CA_CERTS only takes effect in a freshly started process.
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
