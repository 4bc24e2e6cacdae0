import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { GrafanaDashboard } from '../../src/monitoring/grafana-model.ts';
import { runWarden } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('`warden monitoring dashboards --out DIR` writes the five dashboards as Grafana JSON', async () => {
  const out = path.join(await tempDir('dashboards'), 'grafana');
  const run = await runWarden(['monitoring', 'dashboards', '--out', out, '--json'], { cwd: root });
  assert.equal(run.code, 0, run.stderr);
  const { files } = JSON.parse(run.stdout) as { files: string[] };
  assert.deepEqual(files.map((file) => path.basename(file)).sort(), [
    'warden-backups.json',
    'warden-data-layer.json',
    'warden-overview.json',
    'warden-postgresql.json',
    'warden-redis.json',
  ]);
  const uids = new Set<string>();
  for (const file of files) {
    const dashboard = JSON.parse(await readFile(file, 'utf8')) as GrafanaDashboard;
    assert.equal(path.basename(file), `${dashboard.uid}.json`);
    assert.ok(!uids.has(dashboard.uid));
    uids.add(dashboard.uid);
    assert.ok(dashboard.title.startsWith('Warden / '));
    // The data source is chosen at import: every panel queries ${datasource}.
    const variables = dashboard.templating.list as { name: string; type: string }[];
    assert.ok(
      variables.some((v) => v.name === 'datasource' && v.type === 'datasource'),
      file,
    );
    const ids = new Set<number>();
    const cells = new Set<string>();
    for (const panel of dashboard.panels) {
      assert.ok(!ids.has(panel.id), `${file}: panel id ${panel.id} twice`);
      ids.add(panel.id);
      const { x, y, w, h } = panel.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24, `${file} "${panel.title}" leaves the 24-column grid`);
      for (let dx = 0; dx < w; dx += 1)
        for (let dy = 0; dy < h; dy += 1) {
          const cell = `${x + dx},${y + dy}`;
          assert.ok(!cells.has(cell), `${file} "${panel.title}" overlaps another panel`);
          cells.add(cell);
        }
      if (panel.type === 'row') continue;
      assert.equal(panel.datasource?.uid, '${datasource}');
      assert.ok((panel.targets ?? []).length > 0, `${file} "${panel.title}" has no query`);
      for (const target of panel.targets!) assert.ok(target.expr.trim().length > 0);
      // Panels filtering by a variable use one the dashboard defines.
      for (const target of panel.targets!)
        for (const [, name] of target.expr.matchAll(/\$(\w+)/g))
          if (!name!.startsWith('__'))
            assert.ok(
              variables.some((v) => v.name === name),
              `${file}: $${name} undefined`,
            );
    }
  }
});

test('dashboards need --out', async () => {
  const run = await runWarden(['monitoring', 'dashboards', '--json'], { cwd: root });
  assert.equal(run.code, 2);
  assert.equal((JSON.parse(run.stdout) as { error: { code: string } }).error.code, 'WARDEN_E_USAGE');
});
