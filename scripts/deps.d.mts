// Types for scripts/deps.mjs, so tests written in TypeScript can call it.
export interface ImportEdge {
  from: string;
  to: string;
  typeOnly: boolean;
}
export interface ModuleGraph {
  modules: string[];
  edges: ImportEdge[];
}
export const LAYERS: string[][];
export const BASELINE: Record<string, string>;
export function folderOf(rel: string): string;
export function readGraph(srcDir?: string): ModuleGraph;
export function upwardImports(graph: ModuleGraph): Array<ImportEdge & { key: string }>;
export function cycles(graph: ModuleGraph): string[][];
export function check(graph: ModuleGraph): string[];
export function mermaid(graph: ModuleGraph): string;
export const ARCHITECTURE_DOC: string;
export function docBlock(graph: ModuleGraph): string;
export function docBlockRange(doc: string): [number, number];
