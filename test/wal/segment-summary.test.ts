import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { isWardenError } from '../../src/errors.ts';
import { formatLsn, parseLsn, parseSegmentName, type Lsn } from '../../src/wal/lsn.ts';
import { summarizeSegment, type SegmentSummary } from '../../src/wal/segment-summary.ts';
import { crc32c, findMainData } from '../../src/wal/wal-record-format.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

const SEGMENT_SIZE = 16 * 1024 * 1024;
const PAGE = 8192;
const PG_WALDUMP = '/usr/lib/postgresql/15/bin/pg_waldump';

interface Segment {
  name: string;
  startLsn: Lsn;
  data: Buffer;
  summary: SegmentSummary;
}

let cluster: TestCluster;
let walDir: string;
const segments: Segment[] = [];
/** Commit timestamps (µs since the Unix epoch) of the workload's transactions, in commit order. */
let commitMicros: bigint[] = [];
let endLsn: Lsn;
/** Restore points the workload created, with the server clock just before and after each. */
const createdRestorePoints: Array<{ name: string; notBeforeMs: number; notAfterMs: number }> = [];
/** The longest name PostgreSQL takes (MAXFNAMELEN - 1 bytes), multi-byte UTF-8 included. */
const LONG_NAME = `pre-upgrade-é-${'n'.repeat(63 - 15)}`;

before(async () => {
  cluster = await startCluster({
    settings: {
      track_commit_timestamp: 'on',
      max_prepared_transactions: 5,
      autovacuum: 'off',
      wal_compression: 'pglz',
    },
  });
  walDir = path.join(cluster.instance.dataDir, 'pg_wal');
  const client = new pg.Client({ connectionString: cluster.url() });
  await client.connect();
  try {
    const xids: string[] = [];
    const inTransaction = async (sql: string, commit = 'COMMIT') => {
      await client.query('BEGIN');
      await client.query(sql);
      const { rows } = await client.query<{ xid: string }>('SELECT txid_current()::text AS xid');
      xids.push(rows[0]!.xid);
      await client.query(commit);
    };
    await client.query('CREATE TABLE small (id int, note text)');
    await client.query('CREATE TABLE big (id int, payload text)');
    const [{ lsn: startText }] = (
      await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
    ).rows as [{ lsn: string }];
    for (let i = 0; i < 10; i++) await inTransaction(`INSERT INTO small VALUES (${i}, 'single')`);
    await inTransaction(`INSERT INTO small VALUES (100, 'two-phase')`, "PREPARE TRANSACTION 'warden_2pc'");
    await client.query("COMMIT PREPARED 'warden_2pc'");
    // ~30 MB of heap inserts: records span pages and segments.
    await inTransaction(`INSERT INTO big SELECT g, repeat('x', 400) FROM generate_series(1, 60000) g`);
    // After a checkpoint the first change to each page logs a full-page image.
    await client.query('CHECKPOINT');
    await inTransaction(`UPDATE big SET payload = 'y' WHERE id % 5 = 0`);
    for (let i = 0; i < 5; i++) await inTransaction(`INSERT INTO small VALUES (${i}, 'after')`);
    for (const name of ['before-upgrade', LONG_NAME]) {
      const clock = async () =>
        Number(
          (
            await client.query<{ ms: string }>(
              'SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::text AS ms',
            )
          ).rows[0]!.ms,
        );
      const notBeforeMs = await clock();
      await client.query('SELECT pg_create_restore_point($1)', [name]);
      createdRestorePoints.push({ name, notBeforeMs, notAfterMs: await clock() });
    }
    // 300 subtransactions with xids: the commit record's main data exceeds 255 bytes (long header).
    await inTransaction(
      `DO $$ BEGIN FOR i IN 1..300 LOOP BEGIN INSERT INTO small VALUES (i, 'sub'); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$`,
    );
    const timestamps = await client.query<{ micros: string }>(
      `SELECT ((extract(epoch FROM pg_xact_commit_timestamp(x::xid)) * 1000000)::bigint)::text AS micros
         FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n`,
      [xids],
    );
    commitMicros = timestamps.rows.map((r) => BigInt(r.micros));
    const [{ lsn: endText }] = (
      await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
    ).rows as [{ lsn: string }];
    endLsn = parseLsn(endText);
    const [{ name: lastName }] = (
      await client.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name')
    ).rows as [{ name: string }];
    const first = parseLsn(startText) - (parseLsn(startText) % BigInt(SEGMENT_SIZE));
    const last = parseSegmentName(lastName, SEGMENT_SIZE)!.startLsn;
    for (const name of readdirSync(walDir).sort()) {
      const parsed = parseSegmentName(name, SEGMENT_SIZE);
      if (!parsed || parsed.startLsn < first || parsed.startLsn > last) continue;
      const data = readFileSync(path.join(walDir, name));
      const summary = summarizeSegment(data, {
        timeline: 1,
        startLsn: parsed.startLsn,
        segmentSize: SEGMENT_SIZE,
        verifyCrc: true,
      });
      segments.push({ name, startLsn: parsed.startLsn, data, summary });
    }
  } finally {
    await client.end();
  }
});

after(async () => {
  await cluster?.stop();
});

interface WaldumpView {
  records: number;
  /** Start LSN and xl_tot_len of every record. */
  all: Array<{ lsn: Lsn; totalLength: number; fpi: boolean }>;
  preparedCommits: number;
  commitLsns: Lsn[];
  commitMicros: bigint[];
  restorePoints: Array<{ name: string; lsn: Lsn }>;
}

/** pg_waldump's view of the records that start in one segment. */
function waldump(segment: Segment): WaldumpView {
  const run = spawnSync(PG_WALDUMP, ['-p', walDir, segment.name, segment.name], {
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC' },
    maxBuffer: 512 * 1024 * 1024,
  });
  const view: WaldumpView = {
    records: 0,
    all: [],
    preparedCommits: 0,
    commitLsns: [],
    commitMicros: [],
    restorePoints: [],
  };
  for (const line of run.stdout.split('\n')) {
    if (!line.startsWith('rmgr: ')) continue;
    view.records++;
    const record = /len \(rec\/tot\):\s*\d+\/\s*(\d+),.*lsn: ([0-9A-F]+\/[0-9A-F]+),/.exec(line);
    if (record)
      view.all.push({ lsn: parseLsn(record[2]!), totalLength: Number(record[1]), fpi: line.includes('FPW') });
    if (line.includes('desc: COMMIT_PREPARED')) view.preparedCommits++;
    const restorePoint = /^rmgr: XLOG .*lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: RESTORE_POINT (.*)$/.exec(line);
    if (restorePoint) view.restorePoints.push({ name: restorePoint[2]!, lsn: parseLsn(restorePoint[1]!) });
    const commit =
      /^rmgr: Transaction .*lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: COMMIT(?:_PREPARED \d+:)? (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))? /.exec(
        line,
      );
    if (!commit) continue;
    const [, lsn, y, mo, d, h, mi, s, frac] = commit;
    const seconds = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) / 1000;
    view.commitLsns.push(parseLsn(lsn!));
    view.commitMicros.push(BigInt(seconds) * 1_000_000n + BigInt((frac ?? '').padEnd(6, '0')));
  }
  return view;
}

const allCommits = () => segments.reduce((n, s) => n + s.summary.commits, 0);

test('the workload produced several complete segments of clean WAL', () => {
  assert.ok(segments.length >= 3, `only ${segments.length} segments`);
  for (const { name, summary } of segments) {
    assert.deepEqual(summary.pageErrors, [], name);
    assert.deepEqual(summary.recordErrors, [], name);
  }
  assert.equal(segments.at(-1)!.summary.switched, true, 'the last segment ends with pg_switch_wal');
});

test('records, commits, commit LSNs and commit times agree with pg_waldump for every segment', () => {
  for (const segment of segments) {
    const oracle = waldump(segment);
    const { summary } = segment;
    assert.equal(summary.records, oracle.records, `${segment.name}: records`);
    assert.equal(summary.commits, oracle.commitLsns.length, `${segment.name}: commits`);
    assert.equal(summary.lastCommitLsn, oracle.commitLsns.at(-1), `${segment.name}: lastCommitLsn`);
    assert.equal(summary.firstCommitMicros, oracle.commitMicros[0], `${segment.name}: first commit time`);
    assert.equal(summary.lastCommitMicros, oracle.commitMicros.at(-1), `${segment.name}: last commit time`);
    if (summary.lastCommitMicros !== undefined) {
      assert.equal(summary.lastCommitTime?.getTime(), Number(summary.lastCommitMicros / 1000n));
    }
  }
});

test('named restore points agree with pg_waldump: name, LSN, and rp_time from the server clock', () => {
  const found = segments.flatMap((s) => s.summary.restorePoints);
  assert.deepEqual(
    found.map((rp) => rp.name),
    createdRestorePoints.map((rp) => rp.name),
  );
  for (const segment of segments) {
    const oracle = waldump(segment).restorePoints;
    assert.deepEqual(
      segment.summary.restorePoints.map(({ name, lsn }) => ({ name, lsn })),
      oracle,
      `${segment.name}: restore points`,
    );
  }
  for (const [i, rp] of found.entries()) {
    const created = createdRestorePoints[i]!;
    assert.ok(
      created.notBeforeMs <= rp.time.getTime() && rp.time.getTime() <= created.notAfterMs,
      `${rp.name}: rp_time ${rp.time.toISOString()} outside the creating call`,
    );
  }
  assert.ok(found[0]!.lsn < found[1]!.lsn && found[1]!.lsn < endLsn);
});

test('block headers of every real record decode to lengths that fill the record, full-page images included', () => {
  let images = 0;
  let prepared = 0;
  for (const segment of segments) {
    const oracle = waldump(segment);
    prepared += oracle.preparedCommits;
    for (const { lsn, totalLength, fpi } of oracle.all) {
      const record = recordBytes(segment.data, Number(lsn - segment.startLsn), totalLength);
      if (!record) continue; // continues into the next segment
      const main = findMainData(record, segment.data.readUInt16LE(0));
      assert.equal(typeof main, 'object', `${formatLsn(lsn)}: ${String(main)}`);
      if (fpi) images++;
    }
  }
  assert.ok(images > 100, `only ${images} records with full-page images`);
  assert.equal(prepared, 1, 'the two-phase commit was seen as COMMIT_PREPARED');
});

test('commit times equal pg_xact_commit_timestamp and cover every workload commit', () => {
  assert.ok(allCommits() >= commitMicros.length, `${allCommits()} commits < ${commitMicros.length}`);
  const withCommits = segments.filter((s) => s.summary.commits > 0);
  const lastSegment = withCommits.at(-1)!.summary;
  // The last transaction (300 subtransactions, long main data header) is the last commit of all.
  assert.equal(lastSegment.lastCommitMicros, commitMicros.at(-1));
  assert.ok(lastSegment.lastCommitLsn! < endLsn, 'last commit lies before pg_current_wal_lsn()');
  // Every workload commit falls inside the commit-time range of some segment, and pg_waldump
  // (whose per-segment first/last times the summaries match exactly) saw it at that time.
  const dumped = new Set(segments.flatMap((s) => waldump(s).commitMicros));
  for (const micros of commitMicros) {
    assert.ok(dumped.has(micros), `commit at ${micros} not in pg_waldump's output`);
    assert.ok(
      withCommits.some(
        (s) => s.summary.firstCommitMicros! <= micros && micros <= s.summary.lastCommitMicros!,
      ),
      `commit at ${micros} outside every segment's range`,
    );
  }
  // Segments are in LSN order, so their commit times are too.
  for (let i = 1; i < withCommits.length; i++) {
    assert.ok(withCommits[i]!.summary.firstCommitMicros! >= withCommits[i - 1]!.summary.lastCommitMicros!);
    assert.ok(withCommits[i]!.summary.lastCommitLsn! > withCommits[i - 1]!.summary.lastCommitLsn!);
  }
});

test('each segment ends where the next one’s first record begins, across records spanning segments', () => {
  let spanning = 0;
  for (let i = 1; i < segments.length; i++) {
    const previous = segments[i - 1]!;
    const current = segments[i]!;
    assert.equal(current.startLsn - previous.startLsn, BigInt(SEGMENT_SIZE), 'consecutive segments');
    assert.equal(
      formatLsn(previous.summary.endLsn),
      formatLsn(current.summary.firstRecordLsn!),
      current.name,
    );
    if (current.summary.firstRecordLsn! > current.startLsn + 40n) spanning++;
  }
  assert.ok(spanning > 0, 'some record continues into the next segment');
  const last = segments.at(-1)!;
  assert.equal(last.summary.endLsn, last.startLsn + BigInt(SEGMENT_SIZE), 'XLOG_SWITCH ends the segment');
});

test('a damaged page address stops the walk and names the page offset', () => {
  const segment = segments[1]!;
  const data = Buffer.from(segment.data);
  const offset = 5 * PAGE;
  data[offset + 9]! ^= 0x01; // xlp_pageaddr
  const summary = summarize(segment, data);
  assert.equal(summary.pageErrors.length, 1);
  assert.match(summary.pageErrors[0]!, new RegExp(`offset ${offset} `));
  assert.ok(summary.endLsn <= segment.startLsn + BigInt(offset) + 8n);
  assert.ok(summary.records < segment.summary.records);
});

test('a damaged xlp_magic is reported at its page', () => {
  const segment = segments[1]!;
  for (const offset of [0, 3 * PAGE]) {
    const data = Buffer.from(segment.data);
    data[offset]! ^= 0x40;
    const summary = summarize(segment, data);
    assert.match(summary.pageErrors[0] ?? '', new RegExp(`offset ${offset} .*xlp_magic`));
  }
});

test('a page from another timeline is reported; following the history accepts the parent’s pages', () => {
  const segment = segments[1]!;
  const wrong = summarizeSegment(segment.data, {
    timeline: 2,
    startLsn: segment.startLsn,
    segmentSize: SEGMENT_SIZE,
  });
  assert.match(wrong.pageErrors[0] ?? '', /offset 0 .*xlp_tli 1, expected timeline 2/);
  assert.ok(wrong.pageErrors.length <= 32, 'the list is bounded');
  const damaged = Buffer.from(segment.data);
  damaged[7 * PAGE + 4]! ^= 0x02; // xlp_tli
  assert.match(summarize(segment, damaged).pageErrors[0] ?? '', new RegExp(`offset ${7 * PAGE} .*xlp_tli 3`));
  // Timeline 2 forked at the end of this segment: its first segment starts as a copy of timeline 1's.
  const history = [{ timeline: 1, switchLsn: segment.startLsn + BigInt(SEGMENT_SIZE), reason: 'test' }];
  const followed = summarizeSegment(segment.data, {
    timeline: 2,
    startLsn: segment.startLsn,
    segmentSize: SEGMENT_SIZE,
    history,
  });
  assert.deepEqual(followed.pageErrors, []);
  assert.equal(followed.commits, segment.summary.commits);
});

test('a damaged record body fails its CRC and ends the walk there', () => {
  const segment = segments[1]!;
  const data = Buffer.from(segment.data);
  const offset = 2 * PAGE + 1000;
  data[offset]! ^= 0xff;
  const summary = summarize(segment, data);
  assert.deepEqual(summary.pageErrors, []);
  assert.match(summary.recordErrors[0] ?? '', /CRC/);
  assert.ok(summary.endLsn <= segment.startLsn + BigInt(offset));
  const unchecked = summarizeSegment(data, {
    timeline: 1,
    startLsn: segment.startLsn,
    segmentSize: SEGMENT_SIZE,
    verifyCrc: false,
  });
  assert.equal(unchecked.records, segment.summary.records, 'without CRC checks the damage goes unseen');
});

test('a partial segment (validBytes) is summarized up to its last complete record, at any cut', () => {
  const segment = segments.find((s) => s.summary.commits > 0 && !s.summary.switched) ?? segments[0]!;
  const cuts = new Set<number>([0, 1, 23, 24, 39, 40, 41, SEGMENT_SIZE - 1, SEGMENT_SIZE]);
  for (let page = 1; page < SEGMENT_SIZE / PAGE; page += 97) {
    for (const delta of [-9, -1, 0, 1, 8, 23, 24, 25, 60]) cuts.add(page * PAGE + delta);
  }
  for (let cut = 0; cut < SEGMENT_SIZE; cut += 65_521) cuts.add(cut);
  const sorted = [...cuts].sort((a, b) => a - b);
  let previous: SegmentSummary | undefined;
  for (const validBytes of sorted) {
    const summary = summarizeSegment(segment.data, {
      timeline: 1,
      startLsn: segment.startLsn,
      segmentSize: SEGMENT_SIZE,
      validBytes,
      verifyCrc: true,
    });
    assert.deepEqual([...summary.pageErrors, ...summary.recordErrors], [], `validBytes ${validBytes}`);
    if (validBytes < SEGMENT_SIZE) {
      assert.ok(
        summary.endLsn <= segment.startLsn + BigInt(validBytes + 7),
        `endLsn beyond data at ${validBytes}`,
      );
    }
    if (previous) {
      assert.ok(
        summary.commits >= previous.commits && summary.endLsn >= previous.endLsn,
        `monotone at ${validBytes}`,
      );
    }
    previous = summary;
  }
  assert.deepEqual(previous, segment.summary);
});

test('random damage to real WAL never makes the summary throw', () => {
  const segment = segments[1]!;
  const data = Buffer.from(segment.data);
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ at: fc.integer({ min: 0, max: 3 * PAGE }), value: fc.integer({ min: 0, max: 255 }) }),
        {
          minLength: 1,
          maxLength: 8,
        },
      ),
      fc.integer({ min: 0, max: 3 * PAGE }),
      (edits, validBytes) => {
        const saved = edits.map(({ at }) => data[at]!);
        for (const { at, value } of edits) data[at] = value;
        try {
          const summary = summarize(segment, data, validBytes);
          assert.ok(summary.endLsn >= segment.startLsn);
        } finally {
          edits.forEach(({ at }, i) => (data[at] = saved[i]!));
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('summarizeSegment rejects inconsistent options with WARDEN_E_USAGE', () => {
  const segment = segments[0]!;
  const base = { timeline: 1, startLsn: segment.startLsn, segmentSize: SEGMENT_SIZE };
  for (const options of [
    { ...base, startLsn: segment.startLsn + 8n },
    { ...base, segmentSize: 1000 },
    { ...base, timeline: 0 },
    { ...base, validBytes: SEGMENT_SIZE + 1 },
  ]) {
    assert.throws(
      () => summarizeSegment(segment.data, options),
      (e) => isWardenError(e, 'WARDEN_E_USAGE'),
    );
  }
});

test('crc32c is PostgreSQL’s CRC-32C', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(0)), 0);
});

/** Reassembles a record from the segment, leaving out page headers; undefined if it runs off the segment. */
function recordBytes(data: Buffer, offset: number, totalLength: number): Buffer | undefined {
  const out = Buffer.alloc(totalLength);
  let filled = 0;
  let at = offset;
  while (filled < totalLength) {
    if (at >= data.length) return undefined;
    if (at % PAGE === 0) at += at === 0 ? 40 : 24;
    const n = Math.min(totalLength - filled, PAGE - (at % PAGE));
    data.copy(out, filled, at, at + n);
    filled += n;
    at += n;
  }
  return out;
}

function summarize(segment: Segment, data: Buffer, validBytes?: number): SegmentSummary {
  return summarizeSegment(data, {
    timeline: 1,
    startLsn: segment.startLsn,
    segmentSize: SEGMENT_SIZE,
    verifyCrc: true,
    ...(validBytes === undefined ? {} : { validBytes }),
  });
}
