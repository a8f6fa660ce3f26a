/**
 * Child process for the store close test: opens a store, writes nothing else, awaits close() at
 * the top level and says so. With nothing else pending, the await must still settle (exit 0, not
 * Node's 13 for an unsettled top-level await).
 */
import { validateConfig } from '../../src/config/load-config.js';
import { silentLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';

const cfg = validateConfig({ store: { path: process.argv[2]! } });
const store = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
await store.close();
process.stdout.write('closed\n');
