import type { Command, Help } from 'commander';

/**
 * Examples shown under each command's `--help`, keyed by the command's path after `warden`.
 * They are the one-liners users copy, so each runs as written once its placeholders are filled.
 */
const EXAMPLES: Record<string, string[]> = {
  '': [
    'warden                       # embedded PostgreSQL + daemon, zero configuration',
    'warden help backup',
  ],
  backup: [
    'warden backup --db postgres://backup@db1:5432/postgres --password-file ~/.pgpw',
    'warden backup --name pre-v1.13.0-upgrade',
    'warden backup --incremental',
  ],
  'backup list': ['warden backup list', 'warden backup list --json'],
  'redis backup': [
    'WARDEN_REDIS_PASSWORD=... warden redis backup --redis redis://10.0.0.5:6379',
    'warden redis backup --redis redis://10.0.0.11:7000 --cluster --name sessions',
  ],
  'redis restore': [
    'warden redis restore 20261122-143005R --target-dir /srv/redis-restored',
    'warden redis restore 20261122-143005R --to redis://10.0.0.21:7000',
  ],
  'redis expire': ['warden redis expire --keep-last 14 --max-age 30d --dry-run'],
  'backup show': ['warden backup show 20261122-101500F'],
  'backup delete': ['warden backup delete pre-v1.13.0-upgrade'],
  expire: [
    'warden expire --dry-run',
    'warden expire --keep-last 3            # only the newest 3 (replaces the configured policy)',
    'warden expire --recovery-window 7d --keep-monthly 12',
  ],
  'repo keygen': [
    'warden repo keygen -o ~/.warden-identity.txt',
    'warden repo keygen --signing -o signing-key',
  ],
  'repo keys': ['warden repo keys --identity ~/.warden-identity.txt'],
  'repo sign': ['warden repo sign', 'warden repo sign --yes'],
  'repo copy': ['warden repo copy --to s3://offsite-bucket/warden'],
  'wal stream': ['warden wal stream --db postgres://backup@db1/postgres --repo /srv/warden'],
  'slot list': ['warden slot list'],
  'cache invalidate': ['warden cache invalidate --reason "cut over to the instance restored to 10:42"'],
  'slot drop': ['warden slot drop warden_0123456789abcdef'],
  restore: [
    'warden restore --latest --target-dir /srv/restored --start',
    'warden restore --to-time 2026-11-22T10:15:00Z --target-dir /srv/restored',
    'warden restore --to-name before-migration --target-dir /srv/restored',
    'warden restore --dump 20261122-101500D --target-database app_copy',
  ],
  dump: ['warden dump --database app'],
  'dump list': ['warden dump list'],
  verify: ['warden verify', 'warden verify --json'],
  serve: ['warden serve --config warden.yaml', 'warden serve --profile prod --http-port 7480'],
  status: ['warden status', 'warden status --json'],
  drill: [
    'warden drill',
    'warden drill --rto 15m --rpo 1h',
    'warden drill --migrate -- npx node-pg-migrate up',
  ],
  'credentials setup': ['warden credentials setup --role app'],
  'credentials rotate': [
    'warden credentials rotate --role app --sink-file /run/secrets/app-db.json',
    'WARDEN_REDIS_PASSWORD=… warden credentials rotate --redis redis://admin@10.0.0.5:6379 --user cache --grace 60s',
  ],
  'credentials show': ['warden credentials show', 'warden credentials show --role app --reveal'],
  shell: ['warden shell', "warden shell --role app -- -c 'select session_user'"],
};

/** The command's path after `warden` (`backup list`), '' for `warden` itself. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Help that names the global options once: `warden --help` explains them, each command's help
 * lists only its own options and then one line with the global ones' names. Every command ends
 * with its examples.
 */
export function installHelp(program: Command, globalFlags: ReadonlySet<string>): void {
  const configuration = {
    visibleOptions(this: Help, command: Command) {
      const visible = (Object.getPrototypeOf(this) as Help).visibleOptions.call(this, command);
      if (!command.parent) return visible;
      return visible.filter((option) => !globalFlags.has(option.long ?? option.flags));
    },
  };
  const globals = wrap(`Global options (\`warden --help\` explains them): ${[...globalFlags].join(' ')}`);
  const visit = (command: Command) => {
    // Each command keeps the help settings it was created with, so each gets them here.
    command.configureHelp(configuration);
    const examples = EXAMPLES[commandPath(command)];
    const lines: string[] = [];
    if (command.parent && command.options.some((o) => globalFlags.has(o.long ?? o.flags)))
      lines.push('', globals);
    if (examples) lines.push('', 'Examples:', ...examples.map((e) => `  ${e}`));
    if (lines.length) command.addHelpText('after', lines.join('\n'));
    for (const sub of command.commands) visit(sub);
  };
  visit(program);
}

function wrap(text: string, width = 80): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line);
      line = `  ${word}`;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].join('\n');
}
