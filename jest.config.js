// ESM + TypeScript through ts-jest. Type checking is done once by `tsc --noEmit`
// (make typecheck), so ts-jest only transpiles: that keeps the suite fast.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, isolatedModules: true, diagnostics: false }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  // Real-storage tests share one zfs-fuse pool and loop devices: run files serially
  // rather than fight over them.
  maxWorkers: 1,
};
