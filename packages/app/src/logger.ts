/**
 * The slice of a logger the data layer uses: pino's calling convention (`log.warn({ ...fields },
 * 'message')`), which pino, bunyan and `console` all accept. `child` is optional: without it the
 * component name is added to each call's fields instead.
 *
 * @example
 * new Cache({ redis, logger: pino() });      // pino
 * new Cache({ redis, logger: console });     // console
 */
export interface Logger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
  child?(bindings: Record<string, unknown>): Logger;
}

const ignore = (): void => {};

/** The library is silent unless the caller injects a logger. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

/** `logger.child(bindings)` when the logger has one; otherwise a logger that adds the bindings to every call. */
export function childLogger(logger: Logger, bindings: Record<string, unknown>): Logger {
  if (logger === silentLogger) return silentLogger;
  if (typeof logger.child === 'function') return logger.child(bindings);
  const withBindings =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (fields: object, message?: string): void =>
      message === undefined
        ? logger[level]({ ...bindings, ...fields })
        : logger[level]({ ...bindings, ...fields }, message);
  return {
    debug: withBindings('debug'),
    info: withBindings('info'),
    warn: withBindings('warn'),
    error: withBindings('error'),
    child: (more) => childLogger(logger, { ...bindings, ...more }),
  };
}
