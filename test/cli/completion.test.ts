import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { buildProgram } from '../../src/cli/main.ts';
import { completionScript } from '../../src/cli/commands/completion.ts';
import { EXIT } from '../../src/errors.ts';
import { runWarden } from '../harness/cli.ts';

const bashScript = completionScript(buildProgram(), 'bash');

/** What bash offers for the command line `words` with the cursor at the end of the last word. */
function bashComplete(words: string[]): string[] {
  const run = spawnSync(
    'bash',
    [
      '-c',
      // The script arrives on stdin, the words as arguments: nothing is interpolated into code.
      'eval "$(cat)"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _warden; printf "%s\\n" "${COMPREPLY[@]}"',
      'bash',
      ...words,
    ],
    { input: bashScript, encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.split('\n').filter((line) => line !== '');
}

function hasShell(name: string): boolean {
  return spawnSync(name, ['-c', 'true']).status === 0;
}

test('bash completion completes `warden ba` to backup', () => {
  assert.deepEqual(bashComplete(['warden', 'ba']), ['backup']);
});

test('bash completion offers subcommands of the command typed so far, past options and their values', () => {
  assert.deepEqual(bashComplete(['warden', 'repo', 'k']), ['keygen', 'keys']);
  // "backup" is the value of --repo, not the backup command: the path stays at the program.
  assert.deepEqual(bashComplete(['warden', '--repo', 'backup', 're']), ['repo', 'restore', 'redis']);
  assert.deepEqual(bashComplete(['warden', '--json', 'backup', 'l']), ['list']);
});

test("bash completion offers a command's own options and an option's choices", () => {
  assert.deepEqual(bashComplete(['warden', 'backup', '--inc']), ['--incremental']);
  assert.deepEqual(bashComplete(['warden', 'backup', 'list', '--inc']), []);
  assert.deepEqual(bashComplete(['warden', 'backup', '--compression', '']), ['zstd', 'gzip', 'none']);
  assert.deepEqual(bashComplete(['warden', '--vers']), ['--version']);
});

const zsh = hasShell('zsh') ? false : 'zsh is not installed';

/**
 * What the zsh script offers for `words` (cursor on the last). compadd is replaced by one that
 * prints its candidates: zsh itself then filters them by what was typed.
 */
function zshCandidates(words: string[]): string[] {
  const run = spawnSync(
    'zsh',
    [
      '-c',
      [
        'compdef() { :; }',
        'compadd() { while [[ $1 != -- ]]; do shift; done; shift; print -l -- "$@"; }',
        '_files() { print -- "<files>"; }',
        'eval "$(cat)"',
        'words=("$@"); CURRENT=$#',
        '_warden',
      ].join('; '),
      'zsh',
      ...words,
    ],
    { input: completionScript(buildProgram(), 'zsh'), encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.split('\n').filter((line) => line !== '');
}

test('the zsh script is valid zsh and offers what follows the words typed', { skip: zsh }, () => {
  const syntax = spawnSync('zsh', ['-n'], {
    input: completionScript(buildProgram(), 'zsh'),
    encoding: 'utf8',
  });
  assert.equal(syntax.status, 0, syntax.stderr);
  assert.ok(zshCandidates(['warden', 'ba']).includes('backup'));
  assert.deepEqual(zshCandidates(['warden', '--repo', 'backup', 'l']), zshCandidates(['warden', '']));
  assert.deepEqual(zshCandidates(['warden', 'backup', 'l']), ['list', 'show', 'delete']);
  assert.deepEqual(zshCandidates(['warden', 'backup', '--compression', '']), ['zstd', 'gzip', 'none']);
  assert.deepEqual(zshCandidates(['warden', 'backup', '--db', '']), ['<files>']);
  assert.ok(zshCandidates(['warden', 'backup', '--']).includes('--incremental'));
});

test('`warden completion bash` prints the script; an unknown shell is a usage error', async () => {
  const bash = await runWarden(['completion', 'bash'], { cwd: tmpdir() });
  assert.equal(bash.code, 0, bash.stderr);
  assert.equal(bash.stdout, bashScript);
  const fish = await runWarden(['completion', 'fish'], { cwd: tmpdir() });
  assert.equal(fish.code, EXIT.usage);
  assert.equal(fish.stdout, '');
});
