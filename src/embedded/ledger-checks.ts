import type { SqlCheck } from '../verify/restore-check.ts';

/**
 * What every verification and drill of the embedded default's ledger proves besides the
 * built-in checks — the scheduled ones and `warden drill` by hand alike.
 */
export const LEDGER_CHECKS: readonly SqlCheck[] = Object.freeze([
  {
    name: 'ledger balances to zero',
    sql: 'SELECT coalesce(sum(balance), 0) FROM ledger_accounts',
    equals: 0,
  },
  { name: 'ledger has its accounts', sql: 'SELECT count(*) FROM ledger_accounts', min: 1 },
]);
