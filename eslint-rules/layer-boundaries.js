import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * `warden/layer-boundaries`: which files may import which, by where the imported file is (the
 * shape of eslint-plugin-import's `no-restricted-paths`, which this repository does not install).
 * Relative specifiers are resolved against the importing file; bare specifiers are checked
 * against `packages` (names the zone may not import at all).
 *
 * A zone is `{ target, from?, outside?, packages?, allow?, message }`, paths relative to the
 * repository root:
 * - `target`: the files the zone governs (a folder or a list of folders);
 * - `from`: folders those files may not import from;
 * - `outside`: a folder those files may not leave (anything resolved outside it is refused);
 * - `declaredIn`: a package.json; bare imports other than `node:` built-ins must name one of its
 *   dependencies or peer dependencies;
 * - `packages`: bare package names refused outright;
 * - `allow`: `[importer, imported]` pairs let through for now (a debt with a reason, not a rule).
 */
/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`. */
function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const declaredCache = new Map();
/** The dependency and peer dependency names of a package.json. */
function declared(file) {
  if (!declaredCache.has(file)) {
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    declaredCache.set(
      file,
      new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]),
    );
  }
  return declaredCache.get(file);
}

const rule = {
  meta: {
    type: 'problem',
    docs: {
      description: 'keeps the library from importing the tool and the backup layers from the daemon and CLI',
    },
    schema: [{ type: 'object', properties: { zones: { type: 'array' } }, required: ['zones'] }],
    messages: { refused: '{{source}} crosses a layer boundary: {{message}}' },
  },
  create(context) {
    const root = context.cwd;
    const file = path.relative(root, context.filename);
    const inside = (child, parent) => child === parent || child.startsWith(`${parent}/`);
    const list = (value) => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
    const zones = context.options[0].zones.filter((zone) => list(zone.target).some((t) => inside(file, t)));
    if (zones.length === 0) return {};

    const check = (node, source) => {
      if (typeof source !== 'string') return;
      const bare = !source.startsWith('.') && !source.startsWith('/');
      const resolved = bare
        ? undefined
        : path.relative(root, path.resolve(path.dirname(context.filename), source));
      for (const zone of zones) {
        const refused = bare
          ? list(zone.packages).some((name) => packageName(source) === name) ||
            (zone.declaredIn !== undefined &&
              !source.startsWith('node:') &&
              !declared(path.join(root, zone.declaredIn)).has(packageName(source)))
          : (zone.outside !== undefined && !inside(resolved, zone.outside)) ||
            list(zone.from).some((from) => inside(resolved, from));
        const allowed = list(zone.allow).some(
          ([importer, imported]) => importer === file && imported === resolved,
        );
        if (refused && !allowed) {
          context.report({ node, messageId: 'refused', data: { source, message: zone.message } });
        }
      }
    };
    const fromSource = (node) => check(node, node.source?.value);
    return {
      ImportDeclaration: fromSource,
      ExportNamedDeclaration: fromSource,
      ExportAllDeclaration: fromSource,
      ImportExpression: (node) => check(node, node.source.type === 'Literal' ? node.source.value : undefined),
    };
  },
};

export default { rules: { 'layer-boundaries': rule } };
