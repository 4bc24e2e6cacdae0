/**
 * Turns cached values into the strings stored in Redis and back. JSON by default; plug in
 * another (superjson, msgpack as base64, ...) when values hold Dates, Maps or BigInts.
 *
 * @example
 * const cache = new Cache({ redis, serializer: { serialize: superjson.stringify, deserialize: superjson.parse } });
 */
export interface Serializer {
  serialize(value: unknown): string;
  deserialize(text: string): unknown;
}

export const jsonSerializer: Serializer = {
  serialize: (value) => JSON.stringify(value),
  deserialize: (text) => JSON.parse(text) as unknown,
};
