import { DataLayerError } from '../errors.ts';

/**
 * Lua: a `wrongtype(e)` function for a script whose first command on KEYS[1] ran under pcall and
 * failed. TYPE tells a key of another type (reply `{-1, type}`, see {@link wrongTypeOf}) from any
 * other failure (`e` is returned, so Redis raises it). Costs nothing on the normal path and
 * decides by TYPE, not by the error's text.
 */
export const wrongType = (expected: string): string => `
local function wrongtype(e)
  local found = redis.call('TYPE', KEYS[1])['ok']
  if found ~= '${expected}' and found ~= 'none' then return {-1, found} end
  return e
end`;

/** The type a script reply names when its key held the wrong type, else undefined. */
export function wrongTypeOf(reply: unknown): string | undefined {
  return Array.isArray(reply) && reply[0] === -1 ? String(reply[1]) : undefined;
}

/** A module's key holds another type: something else writes under its prefix, not an outage. */
export function wrongTypeError(module: string, key: string, type: string): DataLayerError {
  return new DataLayerError(
    'WARDEN_E_STORE_WRONG_TYPE',
    `${module} key ${key} holds a ${type}, not the ${module} data it should`,
    {
      details: { key, type },
      hint: `Something else writes under this prefix. Give every module its own prefix; once you know what wrote it, DEL ${key}.`,
    },
  );
}
