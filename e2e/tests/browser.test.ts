/**
 * The page in a real browser through the edge, as a person opens it: Debian's Chromium,
 * https://web.<domain>/ resolved to the edge address, the edge's certificate trusted by its
 * public key (a fresh profile has no way to add the chart's CA), no console errors.
 */
import { createHash, X509Certificate } from 'node:crypto';
import test from 'ava';
import type { Browser } from 'playwright-core';
import { consoleProblems, launchChromium } from '../../test/helpers/chromium.ts';
import {
  edgeAddress,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  namespace,
  release,
  secretData,
} from './helpers/cluster.ts';

let browser: Browser;
let caCommonName = '';

test.before(async () => {
  ensureRelease(release, namespace);
  ensureKnativeServices();
  // The SHA-256 of the edge certificate's public key: Chromium accepts that certificate
  // (and no other) for these hosts; curl checks the full chain against the CA elsewhere.
  const tls = secretData(namespace, `${release}-tls`);
  const certificate = new X509Certificate(tls['tls.crt'] ?? '');
  caCommonName = /CN=([^\n,]+)/.exec(new X509Certificate(tls['ca.crt'] ?? '').subject)?.[1] ?? '';
  const spki = createHash('sha256')
    .update(certificate.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  const hosts = (['web', 'api'] as const).map((name) => `MAP ${edgeHost(name)} ${edgeAddress()}`);
  browser = await launchChromium([
    `--host-resolver-rules=${hosts.join(', ')}, EXCLUDE localhost`,
    `--ignore-certificate-errors-spki-list=${spki}`,
  ]);
});

test.after.always(async () => {
  await browser?.close();
});

test.serial(
  'the page loads in Chromium through the edge with TLS, shows an identity and logs no console errors (cluster)',
  async (t) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = consoleProblems(page);
    const response = await page.goto(`https://${edgeHost('web')}/`, { timeout: 60_000 });
    t.is(response?.status(), 200);
    t.is(await page.title(), 'Your secret identity');
    t.regex(
      (await page.locator('.full-name').textContent())?.trim() ?? '',
      /^\p{L}[\p{L}' -]* \p{L}[\p{L}' -]*$/u,
    );
    const security = await response?.securityDetails();
    t.is(security?.issuer, caCommonName, "the edge served the chart's certificate");
    t.regex(security?.protocol ?? '', /^TLS 1\.[23]$/);
    await page.getByRole('button', { name: 'Give me another identity' }).click();
    await page.waitForLoadState('load');
    t.regex(page.url(), new RegExp(`^https://${edgeHost('web').replace('.', '\\.')}/`));
    t.deepEqual(problems, [], 'no console errors or CSP violations');
    await context.close();
  },
);
