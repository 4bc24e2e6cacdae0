import { readFile } from 'node:fs/promises';
import { WardenError } from '../errors.ts';

/**
 * The dashboard's files, shipped in the package's `dashboard/` folder (plain HTML, CSS and
 * JavaScript: no build step, no CDN, so it works offline). This module sits two levels below the
 * package root both as `src/server/*.ts` and as `dist/server/*.js`, so one relative URL finds
 * them from the sources and from the published build.
 */
const ROOT = new URL('../../dashboard/', import.meta.url);

export const DASHBOARD_ASSETS = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/assets/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/assets/dom.js': { file: 'dom.js', type: 'text/javascript; charset=utf-8' },
  '/assets/charts.js': { file: 'charts.js', type: 'text/javascript; charset=utf-8' },
  '/assets/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
  '/assets/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
} as const;

export type AssetPath = keyof typeof DASHBOARD_ASSETS;

/**
 * The page may load its own script, style and images and call its own API, nothing else: no
 * inline script or style, no other origin, no framing (clickjacking), no plugins.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const cache = new Map<string, Buffer>();

/** An asset's bytes (read once, then from memory). */
export async function readAsset(path: AssetPath): Promise<Buffer> {
  const { file } = DASHBOARD_ASSETS[path];
  let bytes = cache.get(file);
  if (!bytes) {
    try {
      bytes = await readFile(new URL(file, ROOT));
    } catch (cause) {
      throw new WardenError('WARDEN_E_INTERNAL', `dashboard asset ${file} is missing from the installation`, {
        cause,
      });
    }
    cache.set(file, bytes);
  }
  return bytes;
}
