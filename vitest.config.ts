import { defineConfig } from 'vitest/config'

// scripts/test.sh sets VELO_TEST_REPORT to a folder and sums the JSON reports into one closing line.
const reportDir = process.env['VELO_TEST_REPORT']

export default defineConfig({
  test: {
    reporters: reportDir
      ? ['default', ['json', { outputFile: `${reportDir}/vitest-${process.pid}-${Date.now()}.json` }]]
      : ['default'],
    // Two cores: integration files each start real engines, so they run one after another.
    fileParallelism: false,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.{ts,tsx}'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.{ts,tsx}', 'test/e2e/**/*.test.{ts,tsx}'],
          globalSetup: ['test/helpers/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
})
