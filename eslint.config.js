import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import layers from './eslint-rules/layer-boundaries.js';

/** The tool's backup library: it must run without the daemon or the CLI around it. */
const BACKUP_LAYERS = [
  'src/backup',
  'src/restore',
  'src/repository',
  'src/wal',
  'src/pipeline',
  'src/postgres',
  'src/verify',
  'src/retention',
];

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '.warden/**', 'bench/results/**', 'scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The dashboard's script runs in the browser (served by the daemon, no build step).
    files: ['dashboard/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        ['document', 'Node', 'fetch', 'setTimeout', 'clearTimeout', 'encodeURIComponent'].map((name) => [
          name,
          'readonly',
        ]),
      ),
    },
  },
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    plugins: { warden: layers },
    rules: {
      'warden/layer-boundaries': [
        'error',
        {
          zones: [
            {
              target: 'packages/app/src',
              outside: 'packages/app/src',
              declaredIn: 'packages/app/package.json',
              message:
                '@warden/app is published on its own: it may import only its own files and its declared dependencies.',
            },
            {
              target: BACKUP_LAYERS,
              from: ['src/daemon', 'src/cli'],
              message: 'the backup layers sit below the daemon and the CLI and must not import them.',
            },
          ],
        },
      ],
    },
  },
);
