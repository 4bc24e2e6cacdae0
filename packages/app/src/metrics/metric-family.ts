import { DataLayerError } from '../errors.ts';
import type { MetricsRegistry } from './metrics-options.ts';

/** One exported line: prom-client's metric value shape (`metricName` for `_sum`/`_count`). */
export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly metricName?: string;
}

export interface FamilySpec {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'summary';
}

/** Writes the current samples of one family for one component into `out`. */
export type Collect = (family: string, out: Sample[]) => void;

const BRAND = Symbol.for('@warden/app/metric-family');

/**
 * A metric family whose values are read from the components at scrape time. It follows the
 * protocol prom-client's `Registry` calls on what it holds (`name`, `help`, `type`,
 * `aggregator`, async `get()` returning the values, `reset()`), so `registry.metrics()`,
 * `getMetricsAsJSON()` and `Registry.merge` treat it like one of prom-client's own metrics.
 * Why not prom-client's `Gauge`/`Counter`/`Summary`: the library would have to load prom-client,
 * and a prom-client `Summary.observe` per checkout (label validation, hashing, a t-digest) costs
 * more CPU than the pooled query; the components keep plain counters instead, read only when
 * scraped.
 */
class MetricFamily {
  readonly [BRAND] = true;
  readonly name: string;
  readonly help: string;
  readonly type: FamilySpec['type'];
  /** How prom-client's cluster aggregation combines workers: counts and sizes add up. */
  readonly aggregator = 'sum';
  readonly sources = new Map<string, Collect>();

  constructor(spec: FamilySpec) {
    this.name = spec.name;
    this.help = spec.help;
    this.type = spec.type;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const collect of this.sources.values()) collect(this.name, values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The values are the components' lifetime counters: `registry.resetMetrics()` cannot rewind them. */
  reset(): void {}
}

function isFamily(metric: unknown): metric is MetricFamily {
  return typeof metric === 'object' && metric !== null && BRAND in metric;
}

/**
 * Adds one component (`key`, unique per registry) to the families in `specs`, registering the
 * families that are not there yet. Returns the function that takes it out again (and unregisters
 * families left without components). Throws `WARDEN_E_CONFIG_INVALID` when another component
 * already exports under `key`, or when a metric of another library holds one of the names.
 */
export function exportMetrics(
  registry: MetricsRegistry,
  specs: readonly FamilySpec[],
  key: string,
  collect: Collect,
): () => void {
  for (const spec of specs) {
    const existing = registry.getSingleMetric(spec.name);
    if (existing === undefined) continue;
    if (!isFamily(existing)) {
      throw new DataLayerError(
        'WARDEN_E_CONFIG_INVALID',
        `metrics.registry: ${spec.name} is already registered by something else`,
        { details: { metric: spec.name } },
      );
    }
    if (existing.sources.has(key)) {
      throw new DataLayerError(
        'WARDEN_E_CONFIG_INVALID',
        `metrics.name: "${key}" already exports ${spec.name} to this registry; give each component its own metrics.name`,
        { details: { metric: spec.name, name: key } },
      );
    }
  }
  const families = specs.map((spec) => {
    let family = registry.getSingleMetric(spec.name) as MetricFamily | undefined;
    if (family === undefined) {
      family = new MetricFamily(spec);
      registry.registerMetric(family as never);
    }
    family.sources.set(key, collect);
    return family;
  });
  return () => {
    for (const family of families) {
      if (!family.sources.delete(key) || family.sources.size > 0) continue;
      if (registry.getSingleMetric(family.name) === family) registry.removeSingleMetric(family.name);
    }
  };
}
