// Loads the official broker-client@0.0.8 through the resolve/load hooks in ./hooks.js.
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
const mod = await import('broker-client');
const BrokerClient = mod.default;
export default BrokerClient;
