// The cluster suite (e2e/suite.ts starts the cluster first): serial, long timeouts, files in
// the order a person would go: install the chart (chart.test.ts starts from an empty
// namespace), the functions, look at them, then backups and restores, faults, rollouts and
// scaling. Files not named here run after these, by name.
const order = [
  'chart',
  'knative',
  'edge',
  'browser',
  'monitoring',
  'network-policy',
  'backups',
  'faults',
  'shutdown',
  'canary',
  'scale',
];
const rank = (file) => {
  const name = file
    .split('/')
    .pop()
    .replace(/\.test\.ts$/, '');
  const index = order.indexOf(name);
  return index === -1 ? order.length : index;
};

export default {
  files: ['e2e/tests/**/*.test.ts'],
  extensions: ['ts'],
  timeout: '15m',
  concurrency: 1,
  workerThreads: false,
  sortTestFiles: (a, b) => rank(a) - rank(b) || a.localeCompare(b),
};
