import { listAudit } from '../../audit/audit-log.ts';
import { verifyAuditLog } from '../../audit/audit-verify.ts';
import { EXIT, WardenError } from '../../errors.ts';
import { loadTrust } from '../../pipeline/signing/signing-keyring.ts';
import { Repository } from '../../repository/repository.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../render.ts';

export interface AuditListFlags {
  since?: string;
}

/** `warden audit list`: the records, oldest first. */
export async function auditListCommand(context: CommandContext, flags: AuditListFlags): Promise<number> {
  let since: Date | undefined;
  if (flags.since !== undefined) {
    // A zone is required: an audit question ("what happened after 10:00?") must not depend on the shell's TZ.
    const hasZone = /(Z|[+-]\d\d(:?\d\d)?)$/i.test(flags.since.trim());
    since = new Date(flags.since);
    if (!hasZone || Number.isNaN(since.getTime()))
      throw new WardenError('WARDEN_E_USAGE', `--since: "${flags.since}" is not a time with a zone`, {
        hint: 'Give an ISO 8601 time with its zone, e.g. 2026-12-06T10:00:00Z.',
        details: { flag: '--since', value: flags.since },
      });
  }
  const repository = await Repository.open(context.store);
  const records = await listAudit(repository, since ? { since } : {});
  if (context.json) {
    printJson({ records });
    return EXIT.ok;
  }
  if (records.length === 0) {
    process.stdout.write('no audit records\n');
    return EXIT.ok;
  }
  process.stdout.write(
    `${table(
      ['#', 'time', 'who', 'action', 'target', 'outcome'],
      records.map((r) => [
        String(r.seq),
        r.at,
        `${r.actor.user}@${r.actor.host}${r.actor.token ? ` (token ${r.actor.token})` : ''}`,
        r.action,
        r.target ?? '',
        r.outcome === 'failed' ? `failed${r.code ? ` (${r.code})` : ''}` : 'succeeded',
      ]),
    )}\n`,
  );
  return EXIT.ok;
}

/** `warden audit verify`: exit 5 when the log was edited, truncated, reordered or has records deleted. */
export async function auditVerifyCommand(context: CommandContext): Promise<number> {
  const trust = await loadTrust(context.config.repository.signing);
  // The head's signature is what is checked against the trusted keys (it binds the system id).
  const report = await verifyAuditLog(await Repository.open(context.store), trust);
  if (context.json) printJson(report);
  else {
    const head = report.head
      ? `, head at record ${report.head.seq} signed by ${report.head.signedBy ?? 'nobody'}`
      : '';
    process.stdout.write(`${report.records} audit records${head}\n`);
    for (const note of report.notes) process.stdout.write(`note: ${note}\n`);
    for (const p of report.problems) process.stdout.write(`TAMPERED ${p.object}: ${p.problem}\n`);
    process.stdout.write(
      report.ok ? 'audit log intact\n' : `audit log broken: ${report.problems.length} problem(s)\n`,
    );
  }
  return report.ok ? EXIT.ok : EXIT.integrity;
}
