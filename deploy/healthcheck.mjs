// Container HEALTHCHECK: GET /health on the admin API, using node itself (the slim image has
// no curl). Reads the same config as the gateway (file + VOICEGUARD_* env), so a changed
// api.port or TLS setting is followed. Exit 0 = healthy, 1 = not.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const { loadConfig } = await import(new URL('../dist/src/config/load-config.js', import.meta.url).href);

let api;
try {
  api = loadConfig().config.api;
} catch (err) {
  process.stderr.write(`healthcheck: config: ${err.message}\n`);
  process.exit(1);
}
// The API may listen on 0.0.0.0 (container) or a specific address; probe it locally.
const host = api.host === '0.0.0.0' || api.host === '::' ? '127.0.0.1' : api.host;
const request = api.tls ? httpsRequest : httpRequest;
const req = request(
  // Self-signed certificates are normal on an edge box; the probe only checks liveness.
  { host, port: api.port, path: '/health', method: 'GET', timeout: 4000, rejectUnauthorized: false },
  (res) => {
    res.resume();
    res.on('end', () => {
      if (res.statusCode === 200) process.exit(0);
      process.stderr.write(`healthcheck: /health answered ${res.statusCode}\n`);
      process.exit(1);
    });
  },
);
req.on('timeout', () => {
  process.stderr.write('healthcheck: /health timed out\n');
  req.destroy();
  process.exit(1);
});
req.on('error', (err) => {
  process.stderr.write(`healthcheck: ${err.message}\n`);
  process.exit(1);
});
req.end();
