#!/usr/bin/env node
// The module graph of src/, read from the code's own relative imports (`import … from`,
// `export … from`, `import('…')`; type-only imports count: a shared type belongs to the module
// that owns it, so a type import pointing up is as much a drift as a value import).
//
//   node scripts/deps.mjs            report upward imports and cycles (human)
//   node scripts/deps.mjs --check    exit 1 on a cycle or an upward import not in the baseline
//   node scripts/deps.mjs --json     the whole report as JSON
//   node scripts/deps.mjs --mermaid  the layer picture as mermaid text
//   node scripts/deps.mjs --doc      rewrite the generated block of docs/architecture.md
//
// Written here instead of using madge/dependency-cruiser so the check needs no extra package.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Layers, lowest first. A module may import its own layer and the layers below it. Top-level
 * files (`src/errors.ts`) are their own "folder" named after the file.
 */
export const LAYERS = [
  ['errors', 'logger', 'util', 'events'],
  ['pipeline'],
  ['wal', 'postgres', 'cache-coherence'],
  ['repository'],
  ['audit'],
  ['backup'],
  // High availability: following, switching and promoting through the cluster's authority.
  ['ha'],
  ['restore'],
  ['retention'],
  // Redis backups share verify's layer: `warden verify` checks them, and they report as verify does.
  ['verify', 'redis-backup'],
  ['migrate'],
  // Credential rotation: PostgreSQL login roles and Redis ACL users, and where new secrets go.
  ['credentials'],
  // Off-site copies and storage-class transitions, run by the daemon (docs/off-site-copies.md).
  ['copy'],
  ['scheduler'],
  // The metrics (fed by events and by snapshots the daemon collects; the server serves their
  // text), and the alert rules and dashboards that read them (which import nothing above util).
  ['monitoring'],
  ['server'],
  // Warden's own alert conditions and webhooks: the daemon feeds them events and its status.
  ['notify'],
  ['daemon'],
  ['config'],
  ['embedded'],
  // `warden check` runs what the lower layers offer against a loaded configuration.
  ['check'],
  ['cli', 'index'],
];

/**
 * Upward imports that are known and accepted for now, each with the reason. The check fails on
 * any upward import not listed here, and on a listed one that no longer exists (so the list
 * shrinks as drifts are fixed). Keys are "from -> to" paths relative to src/.
 */
export const BASELINE = {
  'pipeline/encryption/keyring.ts -> config/encryption-config.ts':
    'section config schemas live in config/; the keyring reads its own section type',
  'pipeline/signing/signing-keyring.ts -> config/signing-config.ts':
    'section config schemas live in config/; the keyring reads its own section type',
  'repository/open-object-store.ts -> config/s3-config.ts':
    'section config schemas live in config/; the S3 adapter reads its own section type',
  'pipeline/encryption/keyring.ts -> repository/object-store.ts':
    'keys are read from the repository; the ObjectStore port would belong below pipeline',
  'pipeline/object-sink.ts -> repository/object-store.ts':
    'the sink writes into the ObjectStore port; the port would belong below pipeline',
  'pipeline/object-sink.ts -> repository/backup-catalog.ts':
    'the sink records object sizes in the catalog entry type',
  'pipeline/object-source.ts -> repository/backup-catalog.ts':
    'the source checks object sizes against the catalog entry type',
  'pipeline/object-source.ts -> repository/object-store.ts':
    'the source reads from the ObjectStore port; the port would belong below pipeline',
  'daemon/daemon-config.ts -> config/connection-settings.ts':
    'cluster entries share the connection settings schema of the config file',
  'daemon/copy-config.ts -> config/s3-config.ts':
    'copyTo targets share the S3 section schema (own endpoint and credentials) of the config file',
  'server/route.ts -> daemon/http-config.ts': 'the HTTP section config lives with the daemon config',
  'server/status-app.ts -> daemon/http-config.ts': 'the HTTP section config lives with the daemon config',
  'server/host-check.ts -> daemon/http-config.ts': 'the HTTP section config lives with the daemon config',
  'server/access-tokens.ts -> daemon/http-config.ts': 'the HTTP section config lives with the daemon config',
  'server/tls-credentials.ts -> daemon/http-config.ts':
    'the HTTP section config lives with the daemon config',
  'server/status-app.ts -> daemon/status.ts': 'the app serves the status document the daemon builds',
  'server/dashboard-routes.ts -> daemon/catalog-view.ts':
    'the dashboard serves the catalog view the daemon builds',
  'server/dashboard-routes.ts -> daemon/status-history.ts':
    'the dashboard serves the history the daemon keeps',
};

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function listSources(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listSources(full));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out.sort();
}

/** The folder (layer unit) of a path relative to src/. */
export function folderOf(rel) {
  const parts = rel.split('/');
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.ts$/, '');
}

/** Reads src/ and returns { modules, edges } with paths relative to src/. */
export function readGraph(srcDir = path.join(root, 'src')) {
  const modules = listSources(srcDir).map((f) => path.relative(srcDir, f).split(path.sep).join('/'));
  const edges = [];
  for (const from of modules) {
    const text = readFileSync(path.join(srcDir, from), 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[2] ?? m[3];
      const to = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
      edges.push({ from, to, typeOnly: Boolean(m[1]) });
    }
  }
  return { modules, edges };
}

function rankOf(folder) {
  const i = LAYERS.findIndex((layer) => layer.includes(folder));
  return i === -1 ? undefined : i;
}

/**
 * Upward imports: to a higher layer, or from or to a folder no layer lists (a new folder must be
 * placed in LAYERS). The service library (packages/app) is outside src/: the ESLint rule
 * `warden/layer-boundaries` keeps it from importing the tool.
 */
export function upwardImports({ edges }) {
  const out = [];
  const seen = new Set();
  for (const e of edges) {
    const a = folderOf(e.from);
    const b = folderOf(e.to);
    if (a === b) continue;
    const ra = rankOf(a);
    const rb = rankOf(b);
    const upward = ra === undefined || rb === undefined || rb > ra;
    const key = `${e.from} -> ${e.to}`;
    if (upward && !seen.has(key)) {
      seen.add(key);
      out.push({ ...e, key });
    }
  }
  return out;
}

/** Strongly connected components of more than one module (Tarjan), i.e. the import cycles. */
export function cycles({ modules, edges }) {
  const next = new Map(modules.map((m) => [m, []]));
  for (const e of edges) next.get(e.from)?.push(e.to);
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const m of modules) if (!idx.has(m)) visit(m);
  return out;
}

/** The check: problems that must fail lint. */
export function check(graph) {
  const problems = [];
  for (const c of cycles(graph)) problems.push(`cycle: ${c.join(' <-> ')}`);
  const upward = upwardImports(graph);
  const keys = new Set(upward.map((u) => u.key));
  for (const u of upward)
    if (!(u.key in BASELINE)) problems.push(`upward import: ${u.key}${u.typeOnly ? ' (type)' : ''}`);
  for (const k of Object.keys(BASELINE))
    if (!keys.has(k)) problems.push(`baseline entry no longer needed (remove it): ${k}`);
  return problems;
}

/** Folder-level picture, layers top to bottom, as mermaid text. */
export function mermaid(graph) {
  const counts = new Map();
  for (const e of graph.edges) {
    const a = folderOf(e.from);
    const b = folderOf(e.to);
    if (a === b || a === 'index') continue;
    counts.set(`${a} --> ${b}`, (counts.get(`${a} --> ${b}`) ?? 0) + 1);
  }
  const upward = new Set(upwardImports(graph).map((u) => `${folderOf(u.from)} --> ${folderOf(u.to)}`));
  const lines = ['flowchart TD'];
  const folders = [...new Set(graph.modules.map(folderOf))].filter((f) => f !== 'index');
  // Lower layers are left out of the arrows into errors/logger/util: every layer uses them.
  const omnipresent = new Set(['errors', 'logger']);
  for (const [i, layer] of [...LAYERS].reverse().entries()) {
    const members = layer.filter((f) => folders.includes(f));
    if (members.length === 0) continue;
    lines.push(`  subgraph L${LAYERS.length - 1 - i}[" "]`);
    for (const f of members)
      lines.push(`    ${f}[${graph.modules.includes(`${f}.ts`) ? `${f}.ts` : `${f}/`}]`);
    lines.push('  end');
  }
  const arrows = [...counts.keys()].filter((k) => !omnipresent.has(k.split(' --> ')[1])).sort();
  let linkIndex = 0;
  const dashed = [];
  for (const k of arrows) {
    lines.push(`  ${k}`);
    if (upward.has(k)) dashed.push(linkIndex);
    linkIndex++;
  }
  if (dashed.length > 0) lines.push(`  linkStyle ${dashed.join(',')} stroke:#c33,stroke-dasharray:4`);
  return lines.join('\n');
}

const BEGIN = '<!-- deps:begin (generated by `npm run deps:doc`; do not edit by hand) -->';
const END = '<!-- deps:end -->';
export const ARCHITECTURE_DOC = path.join(root, 'docs/architecture.md');

/** The generated block of the architecture page, markers included, as `--doc` writes it. */
export function docBlock(graph) {
  return `${BEGIN}\n\n\`\`\`mermaid\n${mermaid(graph)}\n\`\`\`\n\n${END}`;
}

/** Where the generated block sits in a page's text: [start, end) offsets, markers included. */
export function docBlockRange(doc) {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END, start === -1 ? 0 : start);
  if (start === -1 || end === -1) throw new Error(`docs/architecture.md has no ${BEGIN} … ${END} block`);
  return [start, end + END.length];
}

function writeDoc(graph) {
  const doc = readFileSync(ARCHITECTURE_DOC, 'utf8');
  const [start, end] = docBlockRange(doc);
  writeFileSync(ARCHITECTURE_DOC, doc.slice(0, start) + docBlock(graph) + doc.slice(end));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const graph = readGraph();
  const mode = process.argv[2] ?? '';
  if (mode === '--check') {
    const problems = check(graph);
    for (const p of problems) console.error(p);
    if (problems.length > 0) {
      console.error('\nLayers (lowest first): ' + LAYERS.map((l) => l.join('/')).join(' < '));
      process.exit(1);
    }
  } else if (mode === '--json') {
    console.log(JSON.stringify({ upward: upwardImports(graph), cycles: cycles(graph) }, null, 2));
  } else if (mode === '--mermaid') {
    console.log(mermaid(graph));
  } else if (mode === '--doc') {
    writeDoc(graph);
  } else {
    for (const u of upwardImports(graph))
      console.log(`upward${u.key in BASELINE ? ' (baseline)' : ''}: ${u.key}${u.typeOnly ? ' (type)' : ''}`);
    for (const c of cycles(graph)) console.log(`cycle: ${c.join(' <-> ')}`);
  }
}
