/** See wal-get-fast.js. */
export function walGetFast(argv: string[], script: string): Promise<number | undefined>;
export function spoolDirectory(root: string, flags: string[], cwd?: string): string;
