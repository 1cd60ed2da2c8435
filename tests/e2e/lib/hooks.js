// Module customization hooks (registered by lib/broker-client.js with module.register()).
//
// broker-client@0.0.8 is published as ES module syntax in .js files but without "type": "module",
// and index.js imports './utils' with no extension. For files inside node_modules/broker-client only:
//  - resolve extensionless relative specifiers to '<specifier>.js'
//  - load its .js files with format 'module'.
// The package itself is never modified.
const PKG = '/node_modules/broker-client/';

const inPkg = (url) => typeof url === 'string' && url.startsWith('file:') && url.includes(PKG);

export async function resolve(specifier, context, nextResolve) {
  if (inPkg(context.parentURL) && /^\.\.?\//.test(specifier) && !/\.[cm]?js$/.test(specifier)) {
    return nextResolve(`${specifier}.js`, context);
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (inPkg(url) && url.endsWith('.js')) {
    return nextLoad(url, { ...context, format: 'module' });
  }
  return nextLoad(url, context);
}
