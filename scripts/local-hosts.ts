/**
 * Host names the local edge routes, the same scheme Traefik and Knative use in a cluster
 * (`{{.Name}}.{{.Domain}}` with domain `secretid`). LOCAL_DOMAIN overrides the domain.
 */
export const localDomain = process.env.LOCAL_DOMAIN?.trim() || 'secretid';

export const localHosts = {
  api: `api.${localDomain}`,
  web: `web.${localDomain}`,
} as const;
