// The cluster suite (e2e/suite.ts starts the cluster first): serial, long timeouts.
export default {
  files: ['e2e/tests/**/*.test.ts'],
  extensions: ['ts'],
  timeout: '15m',
  concurrency: 1,
  workerThreads: false,
};
