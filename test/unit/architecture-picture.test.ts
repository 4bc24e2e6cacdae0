import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ARCHITECTURE_DOC, docBlock, docBlockRange, readGraph } from '../../scripts/deps.mjs';

// docs/architecture.md shows the module graph as a picture generated from the code's imports;
// this keeps it from going stale: any import that adds or drops a folder-level arrow fails here
// until `npm run deps:doc` has rewritten the block.

test("the architecture page's dependency picture is the one the code generates now", async () => {
  const doc = await readFile(ARCHITECTURE_DOC, 'utf8');
  const [start, end] = docBlockRange(doc);
  assert.equal(
    doc.slice(start, end),
    docBlock(readGraph()),
    'docs/architecture.md is stale: run `npm run deps:doc` and commit the result',
  );
});

test('a new folder-level import changes the generated picture', () => {
  const graph = readGraph();
  const before = docBlock(graph);
  // util is the lowest layer: no module there imports the CLI, so the picture has no such arrow.
  const from = graph.modules.find((m) => m.startsWith('util/'))!;
  assert.ok(!before.includes('  util --> cli\n'));
  const after = docBlock({ ...graph, edges: [...graph.edges, { from, to: 'cli/main.ts', typeOnly: true }] });
  assert.match(after, /\n {2}util --> cli\n/);
  // The upward arrow is drawn dashed red, so the style line changes too.
  assert.notEqual(after.match(/linkStyle .*/)?.[0], before.match(/linkStyle .*/)?.[0]);
});

test('a page without the generated block is refused', () => {
  assert.throws(() => docBlockRange('# Architecture\n\nno picture here\n'), /has no <!-- deps:begin/);
});
