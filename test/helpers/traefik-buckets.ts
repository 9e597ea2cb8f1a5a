/**
 * Traefik's latency buckets: ansible's k3s_server defaults hold the one list (the test cluster
 * reads it too); docs/install.md and chart/README.md repeat it for people installing by hand.
 */
import { roleDefault } from '../../e2e/lib/settings.ts';

export const traefikLatencyBuckets = () =>
  roleDefault('k3s_server', 'k3s_server_traefik_latency_buckets');

/** The bounds as numbers; throws on anything but a comma-separated list of ascending numbers. */
export const bucketBounds = (list: string) => {
  const bounds = list.split(',').map((item) => {
    const value = Number(item.trim());
    if (item.trim() === '' || !Number.isFinite(value) || value <= 0)
      throw new Error(`${JSON.stringify(item)} in ${JSON.stringify(list)} is no bucket bound`);
    return value;
  });
  bounds.forEach((value, index) => {
    if (index > 0 && value <= (bounds[index - 1] as number))
      throw new Error(`${list}: bounds must ascend`);
  });
  return bounds;
};
