// index.js: the package's public surface (@broker/client). Plain ES modules, no build step: the
// same files run in browsers (import them from a page) and in Node.js 20+.
export { createBroker } from './src/broker.js';
export { createStore } from './src/store.js';
export { BrokerError } from './src/errors.js';
export { parseFrame, checkEventNames, streamUrl, CONTROL_FRAMES } from './src/frames.js';
export { claimsOf, userOf } from './src/token.js';
