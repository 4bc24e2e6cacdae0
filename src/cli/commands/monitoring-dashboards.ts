import { writeGrafanaDashboards } from '../../monitoring/grafana-dashboards.ts';
import { printJson } from '../render.ts';

/** `warden monitoring dashboards --out DIR`: writes the Grafana dashboards and lists the files. */
export async function monitoringDashboardsCommand(flags: { out: string; json?: boolean }): Promise<number> {
  const files = await writeGrafanaDashboards(flags.out);
  if (flags.json) printJson({ files });
  else for (const file of files) process.stdout.write(`${file}\n`);
  return 0;
}
