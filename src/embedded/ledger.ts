/**
 * A small double-entry ledger: the data the embedded default protects, and the data the PITR
 * tests check. Every transfer moves an amount between two accounts in one transaction, so the
 * sum of all balances is always zero in any consistent state.
 */

/** The slice of a SQL client the ledger needs (pg.Client fits). */
export interface SqlClient {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<{ rows: R[] }>;
}

export const LEDGER_SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger_accounts (
  id        integer PRIMARY KEY,
  name      text NOT NULL,
  balance   bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ledger_transfers (
  id          bigserial PRIMARY KEY,
  from_account integer NOT NULL REFERENCES ledger_accounts(id),
  to_account   integer NOT NULL REFERENCES ledger_accounts(id),
  amount      bigint NOT NULL CHECK (amount > 0),
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);`;

export async function createLedger(client: SqlClient, accounts = 10): Promise<void> {
  await client.query(LEDGER_SCHEMA);
  await client.query(
    `INSERT INTO ledger_accounts (id, name) SELECT g, 'account-' || g FROM generate_series(1, $1::int) g ON CONFLICT DO NOTHING`,
    [accounts],
  );
}

export interface Transfer {
  id: number;
  from: number;
  to: number;
  amount: number;
}

/** One transfer in its own transaction; returns it once committed. */
export async function transfer(
  client: SqlClient,
  from: number,
  to: number,
  amount: number,
): Promise<Transfer> {
  await client.query('BEGIN');
  try {
    await client.query('UPDATE ledger_accounts SET balance = balance - $2 WHERE id = $1', [from, amount]);
    await client.query('UPDATE ledger_accounts SET balance = balance + $2 WHERE id = $1', [to, amount]);
    const { rows } = await client.query<{ id: string }>(
      'INSERT INTO ledger_transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id',
      [from, to, amount],
    );
    await client.query('COMMIT');
    return { id: Number(rows[0]!.id), from, to, amount };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** A random transfer between two distinct accounts. */
export async function randomTransfer(client: SqlClient, accounts = 10): Promise<Transfer> {
  const from = 1 + Math.floor(Math.random() * accounts);
  const to = 1 + ((from + Math.floor(Math.random() * (accounts - 1))) % accounts);
  return transfer(client, from, to, 1 + Math.floor(Math.random() * 1000));
}

export interface LedgerCheck {
  transfers: number[];
  balanced: boolean;
  /** Balances agree with the sum of transfers. */
  consistent: boolean;
}

export async function checkLedger(client: SqlClient): Promise<LedgerCheck> {
  const ids = await client.query<{ id: string }>('SELECT id FROM ledger_transfers ORDER BY id');
  const sum = await client.query<{ total: string | null }>(
    'SELECT sum(balance)::text AS total FROM ledger_accounts',
  );
  const mismatch = await client.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM ledger_accounts a
      WHERE a.balance <> coalesce((SELECT sum(amount) FROM ledger_transfers WHERE to_account = a.id), 0)
                       - coalesce((SELECT sum(amount) FROM ledger_transfers WHERE from_account = a.id), 0)`,
  );
  return {
    transfers: ids.rows.map((row) => Number(row.id)),
    balanced: (sum.rows[0]?.total ?? '0') === '0',
    consistent: mismatch.rows[0]?.n === '0',
  };
}
