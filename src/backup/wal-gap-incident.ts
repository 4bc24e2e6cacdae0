import { WardenError } from '../errors.ts';
import type { Repository } from '../repository/repository.ts';
import { walGapKey, type WalGapRecord } from '../repository/wal-gap-incidents.ts';
import { parseLsn } from '../wal/lsn.ts';

/** `WARDEN_E_WAL_GAP` for a recorded gap: what was lost and the fix. */
export function walGapError(repository: Repository, gap: WalGapRecord): WardenError {
  const key = walGapKey(gap.timeline, parseLsn(gap.from));
  return new WardenError(
    'WARDEN_E_WAL_GAP',
    `WAL gap: WAL ${gap.from}..${gap.to} of timeline ${gap.timeline} is lost (${describeCause(gap)}); it is not in ${repository.location} and the server no longer has it. Restores can reach points up to ${gap.from} from older backups, none between ${gap.from} and a backup taken after ${gap.to}. Recorded in ${key}.`,
    {
      hint: "Take a new full backup (`warden backup`) so restores reach past the gap again, and rerun `warden wal stream --continue-after-gap` to stream on from the server's position. `warden status` shows the gap as failing until such a backup completed.",
      details: { ...gap, object: key, repository: repository.location },
    },
  );
}

function describeCause(gap: WalGapRecord): string {
  switch (gap.cause) {
    case 'server-removed-wal':
      return 'the server removed WAL the repository lacks';
    case 'slot-invalidated':
      return `slot ${gap.slot ?? ''} was invalidated by the server`.replace('  ', ' ');
    case 'slot-recreated':
      return `slot ${gap.slot ?? ''} was gone and had to be created again`.replace('  ', ' ');
    case 'partial-cut-short':
      return 'a leftover partial segment was archived short and the server no longer has the rest';
  }
}
