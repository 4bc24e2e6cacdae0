import { DataLayerError } from '../errors.ts';

/**
 * The slice of a prom-client `Registry` (v15) the library uses. A local interface instead of
 * prom-client's type, so services that export no metrics need neither prom-client nor its types:
 * the library never imports prom-client, it registers its own collectors (see metric-family.ts)
 * on the registry the service passes in.
 */
export interface MetricsRegistry {
  /** `never`: any prom-client `Registry` fits; the library passes its own collector objects. */
  registerMetric(metric: never): void;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

/** Opt-in metrics of one data-layer component; see docs/service-library.md#metrics. */
export interface MetricsOptions {
  /** A prom-client `Registry` (e.g. `register`, the default one): the library adds its metrics there. */
  registry: MetricsRegistry;
  /**
   * Names this component in the metrics' labels (`pool`, `cache`, `store`, `limiter`), so two
   * of them can export to one registry. Default: the pool names for a database, the key prefix
   * for a cache, session store or limiter.
   */
  name?: string;
}

/** Longest accepted `metrics.name`: label values end up in every series of the scrape. */
const MAX_NAME = 100;

/** Validates `metrics` options from the caller; `field` is the option path for messages. */
export function checkMetricsOptions(metrics: MetricsOptions, field: string): MetricsOptions {
  const registry = metrics?.registry as Partial<Record<keyof MetricsRegistry, unknown>> | undefined;
  if (
    typeof registry?.registerMetric !== 'function' ||
    typeof registry.getSingleMetric !== 'function' ||
    typeof registry.removeSingleMetric !== 'function'
  ) {
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', `${field}.registry: expected a prom-client Registry`);
  }
  const name = metrics.name;
  if (name !== undefined && (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME)) {
    throw new DataLayerError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}.name: expected a non-empty string of at most ${MAX_NAME} characters`,
    );
  }
  return metrics;
}
