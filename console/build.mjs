// Builds the node's console into src/gsomia/node/web (committed, so installing gsomia needs no
// npm): console.js + console.css bundled by esbuild from src/, the favicon, and index.html
// naming them. Every asset is under assets/ with a content hash in its name, so the node can
// cache it as immutable; index.html is the only file served with no-cache.
//
// Run with `make console` (npm ci && npm run build). `node build.mjs --check` builds into a
// temporary directory instead and fails if the committed files differ from what the sources
// build to (make console-check runs it, so a source change without its build is caught).

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, '..', 'src', 'gsomia', 'node', 'web');
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'gsomia-console-')) : committed;
const assets = join(out, 'assets');

// start from an empty directory so no stale hashed file lingers in the package
rmSync(out, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

// esbuild's hash alphabet and length ([A-Z0-9]{8}), for the files copied as they are
const hashOf = (bytes) => {
  const digest = createHash('sha256').update(bytes).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let s = '';
  for (let i = 0; i < 8; i++) s += alphabet[digest[i] % 32];
  return s;
};

const names = {};
const result = await esbuild.build({
  entryPoints: { console: join(here, 'src', 'console.js') },
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  legalComments: 'linked',
  entryNames: '[name]-[hash]',
  outdir: assets,
  metafile: true,
  logLevel: 'warning',
});
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (!meta.entryPoint) continue;
  const name = basename(file);
  names[name.replace(/-[A-Z0-9]{8}\./, '.')] = name;
  if (meta.cssBundle) names[basename(meta.cssBundle).replace(/-[A-Z0-9]{8}\./, '.')] = basename(meta.cssBundle);
}

const favicon = readFileSync(join(here, 'src', 'favicon.svg'));
const faviconName = `favicon-${hashOf(favicon)}${extname('favicon.svg')}`;
writeFileSync(join(assets, faviconName), favicon);
names['favicon.svg'] = faviconName;

const html = readFileSync(join(here, 'src', 'index.html'), 'utf8').replace(/%([\w.-]+)%/g, (m, name) => {
  if (!names[name]) throw new Error(`index.html: no built asset called ${name}`);
  return names[name];
});
writeFileSync(join(out, 'index.html'), html);
const files = (dir) => ['index.html', ...readdirSync(join(dir, 'assets')).map((f) => `assets/${f}`)].sort();
if (check) {
  const want = files(out);
  let have = [];
  try {
    have = files(committed);
  } catch {
    // nothing committed: every file below differs
  }
  const stale = [...new Set([...want, ...have])].filter(
    (f) => !want.includes(f) || !have.includes(f) || !readFileSync(join(out, f)).equals(readFileSync(join(committed, f))),
  );
  rmSync(out, { recursive: true, force: true });
  if (stale.length) {
    console.error(`The committed console differs from its sources (${stale.join(', ')}): run 'make console' and commit src/gsomia/node/web.`);
    process.exit(1);
  }
  console.log('The committed console is built from these sources.');
} else console.log(files(out).join('\n'));
