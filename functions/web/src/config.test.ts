import { ConfigError } from '@secretid/lib/config';
import test, { type ExecutionContext } from 'ava';
import { readConfig } from './config.ts';

test('defaults apply when only API_URL is set', (t) => {
  const config = readConfig({ API_URL: 'http://api.secretid' });
  t.is(config.port, 8080);
  t.is(config.apiUrl.href, 'http://api.secretid/');
  t.is(config.apiTimeoutMs, 2000);
  t.is(config.apiConnections, 16);
  t.is(config.apiRetries, 2);
  t.is(config.logLevel, 'info');
  t.is(config.shutdownDrainSeconds, 20);
});

test('every variable is read', (t) => {
  const config = readConfig({
    PORT: '9000',
    API_URL: 'https://api.example.test/prefix',
    API_TIMEOUT_MS: '500',
    API_CONNECTIONS: '4',
    API_RETRIES: '5',
    LOG_LEVEL: 'debug',
    SHUTDOWN_DRAIN_SECONDS: '3',
  });
  t.like(config, {
    port: 9000,
    apiTimeoutMs: 500,
    apiConnections: 4,
    apiRetries: 5,
    logLevel: 'debug',
    shutdownDrainSeconds: 3,
  });
  t.is(config.apiUrl.pathname, '/prefix');
});

const rejects = (env: Record<string, string>, variable: string) => (t: ExecutionContext) => {
  const error = t.throws(() => readConfig({ API_URL: 'http://api.secretid', ...env }), {
    instanceOf: ConfigError,
  });
  t.true(error?.message.startsWith(variable), error?.message);
};

test('API_URL is required', (t) => {
  t.throws(() => readConfig({}), { instanceOf: ConfigError, message: /^API_URL is required/ });
});
test('API_URL must be http or https', rejects({ API_URL: 'ftp://api' }, 'API_URL'));
test('API_URL must be a URL', rejects({ API_URL: 'not a url' }, 'API_URL'));
test('PORT must be a port', rejects({ PORT: '70000' }, 'PORT'));
test('API_TIMEOUT_MS must be an integer', rejects({ API_TIMEOUT_MS: '1.5' }, 'API_TIMEOUT_MS'));
test('API_CONNECTIONS must be positive', rejects({ API_CONNECTIONS: '0' }, 'API_CONNECTIONS'));
test('API_RETRIES is at most 5', rejects({ API_RETRIES: '6' }, 'API_RETRIES'));
test('LOG_LEVEL is a known level', rejects({ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL'));
test(
  'SHUTDOWN_DRAIN_SECONDS is not negative',
  rejects({ SHUTDOWN_DRAIN_SECONDS: '-1' }, 'SHUTDOWN_DRAIN_SECONDS'),
);
