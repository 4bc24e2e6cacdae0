import { WardenError } from '../../errors.ts';
import { signRepository, type SignReport } from '../../repository/repository-sign.ts';
import { loadSigningKey } from '../../pipeline/signing/signing-keyring.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';

export interface RepoSignFlags {
  yes?: boolean;
}

/**
 * `warden repo sign [--yes]`: signs the records of a repository written before signing, once,
 * after checking every object they list. Without --yes it only shows what it would sign and
 * exits 2; with --yes it signs and exits 5 when some records could not be signed.
 */
export async function repoSignCommand(context: CommandContext, flags: RepoSignFlags): Promise<number> {
  const { key, file, created } = await loadSigningKey(context.config.repository.signing);
  if (created)
    process.stderr.write(
      `warden: created signing key ${file} (public key ${key.id}); readers elsewhere need --trust-key ${key.id}\n`,
    );
  const report = await signRepository(context.store, key, { apply: flags.yes === true });
  if (context.json) printJson(report);
  else render(report);
  if (report.failed.length > 0) {
    if (!context.json)
      process.stderr.write(
        `error WARDEN_E_REPO_CORRUPT: ${report.failed.length} record(s) not signed; restores keep refusing them\n`,
      );
    return new WardenError('WARDEN_E_REPO_CORRUPT', 'records failed their check').exitCode;
  }
  if (!report.applied && report.toSign.length > 0) {
    if (!context.json)
      process.stderr.write(
        'nothing signed yet: check that no one else could have written this repository, then run again with --yes\n',
      );
    return new WardenError('WARDEN_E_USAGE', 'confirmation needed').exitCode;
  }
  return 0;
}

function render(report: SignReport): void {
  const out = (line = '') => process.stdout.write(`${line}\n`);
  out(`repository ${report.repository}, signing key ${report.key}`);
  const verb = report.applied ? 'signed' : 'would sign';
  out(`${verb} ${report.toSign.length} record(s) whose objects match their recorded SHA-256:`);
  for (const object of report.toSign.slice(0, 20)) out(`  ${object}`);
  if (report.toSign.length > 20) out(`  … and ${report.toSign.length - 20} more`);
  for (const [key, count] of Object.entries(report.alreadySigned))
    out(`already signed: ${count} record(s) by ${key}${key === report.key ? ' (this key)' : ''}`);
  if (report.failed.length) {
    out(`not signed, ${report.failed.length} record(s):`);
    for (const failure of report.failed) out(`  ${failure.object}: ${failure.reason}`);
  }
}
