// The client packages as npm would publish them: `npm pack --dry-run` of clients/js and
// clients/react lists index.js, index.d.ts, README.md (and no tests); their version is the
// server's (meson.build); a real pack of @broker/client, unpacked into a temp dir, imports and
// works on its own (every module it needs is in the tarball).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tmpDir } from './lib/broker.js';
import { REPO, ms } from './lib/config.js';

const serverVersion = /version\s*:\s*'([^']+)'/.exec(fs.readFileSync(path.join(REPO, 'meson.build'), 'utf8'))[1];

function npm(args, cwd) {
  const r = spawnSync('npm', [...args, '--json', '--no-audit', '--no-fund'], { cwd, encoding: 'utf8', timeout: ms(60000) });
  assert.equal(r.status, 0, `npm ${args.join(' ')} in ${cwd}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

for (const [dir, name, extra] of [
  ['js', '@broker/client', ['src/broker.js', 'src/subscription.js', 'src/store.js', 'src/frames.js']],
  ['react', '@broker/react', []],
]) {
  it(`npm pack --dry-run of clients/${dir} (${name})`, () => {
    const cwd = path.join(REPO, 'clients', dir);
    const [pack] = npm(['pack', '--dry-run'], cwd);
    const files = pack.files.map((f) => f.path);
    for (const f of ['index.js', 'index.d.ts', 'README.md', 'package.json', ...extra]) {
      assert.ok(files.includes(f), `${name} ships ${f}: ${files}`);
    }
    assert.ok(!files.some((f) => f.startsWith('test/')), `no tests in the package: ${files}`);
    assert.equal(pack.name, name);
    assert.equal(pack.version, serverVersion, 'the same version as the server');
    const pkg = JSON.parse(fs.readFileSync(path.join(cwd, 'package.json'), 'utf8'));
    assert.equal(pkg.type, 'module');
    assert.deepEqual(Object.keys(pkg.dependencies ?? {}), [], 'no dependencies');
    if (dir === 'react') assert.deepEqual(Object.keys(pkg.peerDependencies), ['react'], 'React as the only peer');
  });
}

it('a real pack of @broker/client, unpacked elsewhere, imports and works on its own', async () => {
  const tmp = tmpDir('broker-pack-');
  try {
    const [pack] = npm(['pack', '--pack-destination', tmp], path.join(REPO, 'clients', 'js'));
    const tgz = path.join(tmp, pack.filename);
    const x = spawnSync('tar', ['-xzf', tgz, '-C', tmp], { encoding: 'utf8', timeout: ms(30000) });
    assert.equal(x.status, 0, x.stderr);
    const mod = await import(pathToFileURL(path.join(tmp, 'package', 'index.js')).href);
    for (const k of ['createBroker', 'createStore', 'BrokerError', 'parseFrame']) assert.equal(typeof mod[k], 'function', k);
    const store = mod.createStore();
    store.apply({ name: 'a', id: 1, data: 1 });
    assert.deepEqual(store.all(), { a: 1 });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
