/**
 * The slice of Grafana's dashboard JSON model Warden writes: time series, stat and table panels
 * over one Prometheus data source chosen when the dashboard is imported (`${datasource}`).
 */
export interface GrafanaTarget {
  expr: string;
  legendFormat?: string;
  refId: string;
  instant?: boolean;
  format?: 'time_series' | 'table';
}

export interface GrafanaPanel {
  id: number;
  type: 'timeseries' | 'stat' | 'table' | 'row';
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: 'prometheus'; uid: '${datasource}' };
  targets?: GrafanaTarget[];
  fieldConfig?: { defaults: Record<string, unknown>; overrides: unknown[] };
  options?: Record<string, unknown>;
}

export interface GrafanaDashboard {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  schemaVersion: number;
  version: number;
  editable: boolean;
  refresh: string;
  time: { from: string; to: string };
  timezone: string;
  templating: { list: unknown[] };
  panels: GrafanaPanel[];
}

/** What a panel shows, before layout gives it an id and a place. */
export interface PanelSpec {
  type: 'timeseries' | 'stat' | 'table';
  title: string;
  description?: string;
  /** Grafana unit id: `s`, `bytes`, `percentunit`, `dateTimeFromNow`, `short`, … */
  unit?: string;
  queries: { expr: string; legend?: string }[];
  /** Stat panels: value → colour steps, e.g. red below 1 for an `up` gauge. */
  thresholds?: { value: number | null; color: string }[];
  /** Stat panels: map raw values to words (1 → "up"). */
  mappings?: Record<string, string>;
  width?: number;
  height?: number;
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  /** Label a `$cluster` (or `$instance`) variable is read from: `label_values(metric, label)`. */
  variables: { name: string; label: string; metric: string }[];
  rows: { title: string; panels: PanelSpec[] }[];
}

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;
const GRID_WIDTH = 24;

/** Lays the rows out left to right, wrapping at Grafana's 24 columns, and numbers the panels. */
export function buildDashboard(spec: DashboardSpec): GrafanaDashboard {
  const panels: GrafanaPanel[] = [];
  let id = 1;
  let y = 0;
  for (const row of spec.rows) {
    panels.push({ id: id++, type: 'row', title: row.title, gridPos: { x: 0, y, w: GRID_WIDTH, h: 1 } });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const panel of row.panels) {
      const w = panel.width ?? (panel.type === 'stat' ? 4 : 12);
      const h = panel.height ?? (panel.type === 'stat' ? 4 : 8);
      if (x + w > GRID_WIDTH) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      panels.push(toPanel(panel, id++, { x, y, w, h }));
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['warden', ...spec.tags],
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Prometheus',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
        },
        ...spec.variables.map((variable) => ({
          name: variable.name,
          label: variable.label,
          type: 'query',
          datasource: DATASOURCE,
          query: { query: `label_values(${variable.metric}, ${variable.label})`, refId: 'variable' },
          definition: `label_values(${variable.metric}, ${variable.label})`,
          includeAll: true,
          multi: true,
          allValue: '.*',
          refresh: 2,
          current: {},
          hide: 0,
        })),
      ],
    },
    panels,
  };
}

function toPanel(spec: PanelSpec, id: number, gridPos: GrafanaPanel['gridPos']): GrafanaPanel {
  const defaults: Record<string, unknown> = { unit: spec.unit ?? 'short' };
  if (spec.thresholds) defaults.thresholds = { mode: 'absolute', steps: spec.thresholds };
  if (spec.mappings) {
    defaults.mappings = [
      {
        type: 'value',
        options: Object.fromEntries(
          Object.entries(spec.mappings).map(([value, text], index) => [value, { text, index }]),
        ),
      },
    ];
  }
  return {
    id,
    type: spec.type,
    title: spec.title,
    ...(spec.description ? { description: spec.description } : {}),
    gridPos,
    datasource: DATASOURCE,
    targets: spec.queries.map((query, index) => ({
      expr: query.expr,
      refId: String.fromCharCode(65 + index),
      ...(query.legend ? { legendFormat: query.legend } : {}),
      ...(spec.type === 'timeseries' ? {} : { instant: true }),
      ...(spec.type === 'table' ? { format: 'table' as const } : {}),
    })),
    fieldConfig: { defaults, overrides: [] },
    options:
      spec.type === 'stat'
        ? { colorMode: 'background', graphMode: 'none', reduceOptions: { calcs: ['lastNotNull'] } }
        : spec.type === 'timeseries'
          ? { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } }
          : {},
  };
}
