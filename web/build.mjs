// Builds the dashboard into src/gsomia/web/static (committed, so installing gsomia needs no
// npm): app.js + app.css bundled by esbuild from src/ and node_modules (Cytoscape.js,
// Apache ECharts), Swagger UI copied from swagger-ui-dist for /docs, and the two HTML pages
// naming them. Every asset name carries a content hash, so the server can cache them as
// immutable; the HTML pages are the only files served with no-cache.
//
// Run with `make web` (npm ci && npm run build).

import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'src', 'gsomia', 'web', 'static');
const modules = join(here, 'node_modules');

// start from an empty directory so no stale hashed file lingers in the package
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// esbuild's hash alphabet and length ([A-Z0-9]{8}), for the files copied as they are
const hashOf = (bytes) => {
  const digest = createHash('sha256').update(bytes).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let s = '';
  for (let i = 0; i < 8; i++) s += alphabet[digest[i] % 32];
  return s;
};

const names = {};
const copyHashed = (src, name, transform = (b) => b) => {
  const bytes = transform(readFileSync(src));
  const ext = extname(name);
  const hashed = `${basename(name, ext)}-${hashOf(bytes)}${ext}`;
  writeFileSync(join(out, hashed), bytes);
  names[name] = hashed;
};

const result = await esbuild.build({
  entryPoints: { app: join(here, 'src', 'app.js'), docs: join(here, 'src', 'docs.js') },
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  legalComments: 'linked', // the libraries' licence notices, beside each bundle
  entryNames: '[name]-[hash]',
  outdir: out,
  metafile: true,
  logLevel: 'warning',
});
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (!meta.entryPoint) continue;
  const name = basename(file);
  names[name.replace(/-[A-Z0-9]{8}\./, '.')] = name;
  if (meta.cssBundle) names[basename(meta.cssBundle).replace(/-[A-Z0-9]{8}\./, '.')] = basename(meta.cssBundle);
}

// Swagger UI for /docs, without its source-map comments (the maps are not shipped)
const dropSourceMap = (bytes) => Buffer.from(bytes.toString('utf8').replace(/\n?\/[/*]# sourceMappingURL=\S+(?: \*\/)?\s*$/, '\n'));
const swagger = join(modules, 'swagger-ui-dist');
copyHashed(join(swagger, 'swagger-ui-bundle.js'), 'swagger-ui-bundle.js', dropSourceMap);
copyHashed(join(swagger, 'swagger-ui.css'), 'swagger-ui.css', dropSourceMap);
copyFileSync(join(swagger, 'LICENSE'), join(out, 'swagger-ui.LICENSE.txt'));
copyFileSync(join(swagger, 'NOTICE'), join(out, 'swagger-ui.NOTICE.txt'));
copyHashed(join(here, 'src', 'favicon.svg'), 'favicon.svg');

for (const page of ['index.html', 'docs.html']) {
  const html = readFileSync(join(here, 'src', page), 'utf8').replace(/%([\w.-]+)%/g, (m, name) => {
    if (!names[name]) throw new Error(`${page}: no built asset called ${name}`);
    return names[name];
  });
  writeFileSync(join(out, page), html);
}
console.log(readdirSync(out).sort().join('\n'));
