import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { backupsDashboard, overviewDashboard } from './warden-dashboards.ts';
import { dataLayerDashboard, postgresDashboard, redisDashboard } from './database-dashboards.ts';
import { buildDashboard, type GrafanaDashboard } from './grafana-model.ts';

/** Every dashboard Warden ships, by file name: the users' overview, backup status, PostgreSQL and Redis, plus the data layer. */
export function grafanaDashboards(): Map<string, GrafanaDashboard> {
  return new Map(
    [overviewDashboard, backupsDashboard, postgresDashboard, redisDashboard, dataLayerDashboard].map(
      (spec) => [`${spec.uid}.json`, buildDashboard(spec)],
    ),
  );
}

/** Writes each dashboard as `<uid>.json` into `dir` (created if missing); returns the paths written. */
export async function writeGrafanaDashboards(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, dashboard] of grafanaDashboards()) {
    const file = path.join(dir, name);
    await writeFile(file, `${JSON.stringify(dashboard, null, 2)}\n`);
    written.push(file);
  }
  return written;
}
