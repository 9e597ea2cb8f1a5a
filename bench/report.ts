/** Small statistics and the text table of the benchmark. */

/** One line of the results table. */
export interface Row {
  metric: string;
  measured: string;
  baseline: string;
  ratio: string;
  target: string;
  /** PASS / FAIL for rows with a target, `-` for information, `SKIP` when not measured. */
  status: 'PASS' | 'FAIL' | '-' | 'SKIP';
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

export const formatRps = (value: number) => `${Math.round(value).toLocaleString('en-US')} req/s`;
export const formatMs = (value: number) => `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
/** kB from /proc (1024 bytes) shown as decimal megabytes (10^6 bytes), the stricter reading. */
export const kbToMb = (kb: number) => (kb * 1024) / 1e6;
export const formatMb = (kb: number) => `${kbToMb(kb).toFixed(1)} MB`;
export const formatRatio = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : '-');

/** A markdown table whose columns line up in a terminal too. */
export const renderTable = (rows: Row[]) => {
  const header: Row = {
    metric: 'metric',
    measured: 'measured',
    baseline: 'baseline',
    ratio: 'ratio',
    target: 'target',
    status: '-',
  };
  const cells = (row: Row) => [
    row.metric,
    row.measured,
    row.baseline,
    row.ratio,
    row.target,
    row === header ? 'pass/fail' : row.status,
  ];
  const all = [header, ...rows].map(cells);
  const widths = (all[0] ?? []).map((_, column) =>
    Math.max(...all.map((line) => (line[column] ?? '').length)),
  );
  const line = (values: string[]) =>
    `| ${values.map((value, column) => value.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  const [first, ...rest] = all;
  return [
    line(first ?? []),
    `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`,
    ...rest.map(line),
  ].join('\n');
};

export const formatShare = (share: number) => `${Math.round(share * 100)}%`;
export const formatUs = (value: number) => `${value.toFixed(1)} µs`;
