import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import type { SegmentRecord, WalInventory } from '../../src/repository/wal-archive.ts';
import { restorableWindow } from '../../src/repository/restorable-window.ts';
import { planExpiry, type ExpiryPlan } from '../../src/retention/plan-expiry.ts';
import type { RetentionPolicy } from '../../src/retention/retention-policy.ts';
import { formatLsn, parseLsn, segmentName } from '../../src/wal/lsn.ts';
import type { TimelineHistoryEntry } from '../../src/wal/timeline-history.ts';

const SEG = 1024 * 1024;
const SEG_BIG = BigInt(SEG);
const DAY = 86_400_000;
const NOW = new Date('2026-11-22T14:30:05Z');

interface History {
  backups: BackupRecord[];
  inventory: WalInventory;
  histories: Map<number, TimelineHistoryEntry[]>;
}

/** Random repositories: up to 3 timelines branching anywhere, WAL with holes, backups anywhere. */
const historyArb: fc.Arbitrary<History> = fc
  .record({
    branches: fc.array(
      fc.record({
        parentPick: fc.nat(),
        afterSegments: fc.integer({ min: 1, max: 12 }),
        offset: fc.nat(SEG - 1),
      }),
      { maxLength: 2 },
    ),
    missingHistory: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    present: fc.array(fc.boolean(), { minLength: 3 * 30, maxLength: 3 * 30 }),
    partial: fc.option(fc.integer({ min: 1, max: SEG }), { nil: undefined }),
    backups: fc.array(
      fc.record({
        timelinePick: fc.nat(),
        startSegment: fc.nat(24),
        startOffset: fc.nat(SEG - 1),
        length: fc.integer({ min: 1, max: 2 * SEG }),
        ageSeconds: fc.integer({ min: -3600, max: 420 * 86_400 }),
        name: fc.option(fc.constantFrom('pre-v1.13.0-upgrade', 'before-migration', 'audit-2026'), {
          nil: undefined,
          freq: 6,
        }),
        incremental: fc.boolean(),
        /** An incremental's parent among the backups before it; past their count: one that is gone. */
        parentPick: fc.nat(),
      }),
      { maxLength: 14 },
    ),
  })
  .map((spec) => {
    const timelineStart = new Map<number, bigint>([[1, 0n]]);
    const histories = new Map<number, TimelineHistoryEntry[]>();
    const fullHistory = new Map<number, TimelineHistoryEntry[]>([[1, []]]);
    spec.branches.forEach((branch, index) => {
      const timeline = index + 2;
      const parent = (branch.parentPick % (timeline - 1)) + 1;
      const switchLsn =
        timelineStart.get(parent)! + BigInt(branch.afterSegments) * SEG_BIG + BigInt(branch.offset);
      timelineStart.set(timeline, switchLsn);
      const entries = [
        ...fullHistory.get(parent)!.filter((e) => e.switchLsn <= switchLsn),
        {
          timeline: parent,
          switchLsn,
          reason: 'promoted',
        },
      ];
      fullHistory.set(timeline, entries);
      if (!spec.missingHistory[index]) histories.set(timeline, entries);
    });
    const timelines = [...timelineStart.keys()];
    const segments = new Map<number, SegmentRecord[]>();
    for (const timeline of timelines) {
      const first = timelineStart.get(timeline)! / SEG_BIG;
      const list: SegmentRecord[] = [];
      for (let n = 0; n < 30; n += 1) {
        if (!spec.present[(timeline - 1) * 30 + n]) continue;
        const start = (first + BigInt(n)) * SEG_BIG;
        list.push(segmentRecord(timeline, start));
      }
      if (list.length) segments.set(timeline, list);
    }
    const newest = Math.max(...timelines);
    const lastOfNewest = segments.get(newest)?.at(-1);
    const partials =
      spec.partial !== undefined && lastOfNewest
        ? [
            {
              key: `wal/${hex8(newest)}/${segmentName(newest, parseLsn(lastOfNewest.startLsn) + SEG_BIG, SEG)}.partial`,
              segment: segmentName(newest, parseLsn(lastOfNewest.startLsn) + SEG_BIG, SEG),
              timeline: newest,
              startLsn: parseLsn(lastOfNewest.startLsn) + SEG_BIG,
              validBytes: spec.partial,
            },
          ]
        : [];
    const backups = spec.backups.map((b, index): BackupRecord => {
      const timeline = timelines[b.timelinePick % timelines.length]!;
      const start =
        (timelineStart.get(timeline)! / SEG_BIG + BigInt(b.startSegment)) * SEG_BIG + BigInt(b.startOffset);
      const end = new Date(NOW.getTime() - b.ageSeconds * 1000);
      return {
        format: 1,
        id: `B${String(index).padStart(2, '0')}`,
        ...(b.name ? { name: b.name } : {}),
        kind: b.incremental ? 'incremental' : 'full',
        ...(b.incremental ? { parent: parentId(b.parentPick % (index + 1), index) } : {}),
        systemId: '1',
        timeline,
        startLsn: formatLsn(start),
        endLsn: formatLsn(start + BigInt(b.length)),
        startTime: new Date(end.getTime() - 60_000).toISOString(),
        endTime: end.toISOString(),
        serverVersion: '17',
        compression: 'zstd',
        compressedOn: 'client',
        archives: [],
        manifest: { key: 'm', size: 0, sha256: '', rawSize: 0 },
        durationMs: 60_000,
      };
    });
    return {
      backups,
      inventory: { segments, partials, histories: [...histories.keys()].sort((a, b) => a - b) },
      histories,
    };
  });

const policyArb: fc.Arbitrary<RetentionPolicy> = fc.record(
  {
    gfs: fc.record({ daily: fc.nat(8), weekly: fc.nat(5), monthly: fc.nat(13) }),
    maxAge: fc.record(
      { fullMs: fc.nat(100).map((d) => d * DAY), incrementalMs: fc.nat(10).map((d) => d * DAY) },
      { requiredKeys: [] },
    ),
    keepLast: fc.nat(5),
    recoveryWindowMs: fc.integer({ min: 0, max: 60 * 24 }).map((h) => h * 3_600_000),
  },
  { requiredKeys: [] },
);

function segmentRecord(timeline: number, start: bigint): SegmentRecord {
  return {
    format: 1,
    segment: segmentName(timeline, start, SEG),
    timeline,
    startLsn: formatLsn(start),
    compression: 'zstd',
    size: 1,
    sha256: '',
    validBytes: SEG,
    commits: 0,
  };
}

/** `B03` for an earlier backup; picking the backup's own index means its parent is gone. */
function parentId(pick: number, index: number): string {
  return pick === index ? 'B-gone' : `B${String(pick).padStart(2, '0')}`;
}

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

// ---- an independent oracle of the rules, written from the documentation ----

function present(inv: WalInventory, timeline: number, segNo: bigint): boolean {
  if ((inv.segments.get(timeline) ?? []).some((s) => parseLsn(s.startLsn) / SEG_BIG === segNo)) return true;
  return inv.partials.some((p) => p.timeline === timeline && p.startLsn / SEG_BIG === segNo);
}

/** Every byte from start to end LSN is in the archive on the backup's timeline. */
function restorable(b: BackupRecord, inv: WalInventory): boolean {
  const start = parseLsn(b.startLsn);
  const end = parseLsn(b.endLsn);
  for (let n = start / SEG_BIG; n <= (end - 1n) / SEG_BIG; n += 1n) {
    if (!present(inv, b.timeline, n)) return false;
    const partial = inv.partials.find((p) => p.timeline === b.timeline && p.startLsn / SEG_BIG === n);
    const inSegments = (inv.segments.get(b.timeline) ?? []).some((s) => parseLsn(s.startLsn) / SEG_BIG === n);
    if (!inSegments && partial && partial.startLsn + BigInt(partial.validBytes) < end) return false;
  }
  return true;
}

/** WAL of `timeline` continues the history a backup on `tl` starting at `start` belongs to. */
function continues(h: History, timeline: number, tl: number, start: bigint): boolean {
  if (timeline === tl) return true;
  if (timeline < tl) return false;
  const history = h.histories.get(timeline);
  if (!history) return true;
  return history.some((e) => e.timeline === tl && start < e.switchLsn);
}

function period(kind: 'd' | 'w' | 'm', ms: number): number {
  const day = Math.floor(ms / DAY);
  if (kind === 'd') return day;
  if (kind === 'w') return Math.floor((day + 3) / 7);
  const date = new Date(ms);
  return date.getUTCFullYear() * 12 + date.getUTCMonth();
}

const t = (b: BackupRecord) => Date.parse(b.endTime);
const later = (a: BackupRecord, b: BackupRecord) => t(a) > t(b) || (t(a) === t(b) && a.id > b.id);

/** Does some policy rule (not the safety rules) want this backup? */
function policyWants(
  b: BackupRecord,
  h: History,
  policy: RetentionPolicy,
  valid: Set<BackupRecord>,
  usable: Set<BackupRecord>,
): boolean {
  const scheduled = h.backups.filter((c) => valid.has(c) && !c.name);
  const now = NOW.getTime();
  const maxAge = b.kind === 'incremental' ? policy.maxAge?.incrementalMs : policy.maxAge?.fullMs;
  if (maxAge && now - t(b) < maxAge) return true;
  if (scheduled.includes(b)) {
    const newerCount = scheduled.filter((c) => later(c, b)).length;
    if (policy.keepLast && newerCount < policy.keepLast) return true;
    const tiers: Array<['d' | 'w' | 'm', number]> = [
      ['d', policy.gfs?.daily ?? 0],
      ['w', policy.gfs?.weekly ?? 0],
      ['m', policy.gfs?.monthly ?? 0],
    ];
    for (const [kind, count] of tiers) {
      const p = period(kind, t(b));
      if (
        count > 0 &&
        period(kind, now) - p < count &&
        !scheduled.some((c) => period(kind, t(c)) === p && later(c, b))
      )
        return true;
    }
  }
  if (policy.recoveryWindowMs) {
    const windowStart = now - policy.recoveryWindowMs;
    const old = h.backups.filter((c) => t(c) <= windowStart);
    const pick = (set: Set<BackupRecord>) =>
      old
        .filter((c) => set.has(c))
        .sort((x, y) => (later(x, y) ? 1 : -1))
        .at(-1);
    const anchor = pick(usable) ?? pick(valid);
    if (b === anchor) return true;
    if (t(b) > (anchor ? t(anchor) : windowStart)) return true;
  }
  return false;
}

/** The backups an incremental builds on, nearest first; undefined when a link is missing. */
function ancestors(b: BackupRecord, all: readonly BackupRecord[]): BackupRecord[] | undefined {
  const chain: BackupRecord[] = [];
  for (let current = b; current.kind === 'incremental';) {
    const parent = all.find((c) => c.id === current.parent);
    if (!parent || parent === b || chain.includes(parent)) return undefined;
    chain.push(parent);
    current = parent;
  }
  return chain;
}

function applyPlan(inv: WalInventory, plan: ExpiryPlan): WalInventory {
  const gone = new Set(plan.walToDelete.map((s) => `${s.timeline}/${s.segment}`));
  const segments = new Map<number, SegmentRecord[]>();
  for (const [tl, list] of inv.segments) {
    const left = list.filter((s) => !gone.has(`${tl}/${s.segment}`));
    if (left.length) segments.set(tl, left);
  }
  return { ...inv, segments };
}

test('expiry plans keep what the rules and safety need, and only that (random histories and policies)', () => {
  fc.assert(
    fc.property(historyArb, policyArb, (h, policy) => {
      const plan = planExpiry(h.backups, h.inventory, policy, NOW, {
        segmentSize: SEG,
        histories: h.histories,
      });
      const keptIds = new Set(plan.keep.map((k) => k.id));
      const expiredIds = new Set(plan.expire.map((e) => e.id));
      const byId = new Map(h.backups.map((b) => [b.id, b]));

      // keep and expire partition the backups
      assert.equal(keptIds.size + expiredIds.size, h.backups.length);
      for (const id of keptIds) assert.ok(!expiredIds.has(id));

      const valid = new Set(
        h.backups.filter((b) => restorable(b, h.inventory) && ancestors(b, h.backups) !== undefined),
      );
      for (const k of plan.keep) assert.equal(k.valid, valid.has(byId.get(k.id)!), `validity of ${k.id}`);
      const newestTl = Math.max(
        ...h.inventory.segments.keys(),
        ...h.inventory.partials.map((p) => p.timeline),
      );
      const onCurrent = (b: BackupRecord) => continues(h, newestTl, b.timeline, parseLsn(b.startLsn));
      const byTime = [...valid].sort((a, b) => (later(a, b) ? 1 : -1));
      const newestValid = byTime.filter(onCurrent).at(-1) ?? byTime.at(-1);
      const window = restorableWindow(
        [...h.backups].sort((a, b) => t(a) - t(b)),
        h.inventory,
        SEG,
      );
      const usable = new Set(
        h.backups.filter((b) => {
          if (!onCurrent(b) || !Number.isFinite(newestTl)) return false;
          const r = rangesOf(h.inventory, newestTl).at(-1);
          return r !== undefined && parseLsn(b.startLsn) >= r.start && parseLsn(b.endLsn) <= r.end;
        }),
      );

      // the newest valid backup stays; named backups stay; with no valid backup nothing goes
      if (newestValid) assert.ok(keptIds.has(newestValid.id), `newest valid ${newestValid.id} kept`);
      else assert.equal(plan.expire.length, 0);
      for (const b of h.backups) if (b.name) assert.ok(keptIds.has(b.id), `named ${b.id} kept`);

      // nothing kept that no rule wants, nothing expired that a rule wants; whatever a wanted
      // incremental builds on is wanted too
      const ruleWants = (b: BackupRecord) =>
        !newestValid || b === newestValid || b.name !== undefined || policyWants(b, h, policy, valid, usable);
      const parentsWanted = new Set(
        h.backups
          .filter((c) => c.kind === 'incremental' && ruleWants(c))
          .flatMap((c) => ancestors(c, h.backups) ?? []),
      );
      for (const b of h.backups) {
        const wanted = ruleWants(b) || parentsWanted.has(b);
        assert.equal(keptIds.has(b.id), wanted, `${b.id} kept=${keptIds.has(b.id)} wanted=${wanted}`);
      }

      // WAL: partials and histories never deleted; deletions are only archived segments
      const allSegments = new Set(
        [...h.inventory.segments].flatMap(([tl, l]) => l.map((s) => `${tl}/${s.segment}`)),
      );
      for (const s of plan.walToDelete) assert.ok(allSegments.has(`${s.timeline}/${s.segment}`));
      assert.deepEqual(plan.walKept.histories, h.inventory.histories);
      assert.deepEqual(
        plan.walKept.partials,
        h.inventory.partials.map((p) => p.key),
      );

      const after = applyPlan(h.inventory, plan);
      // restorableWindow expects the catalog's order (by consistency time), as listBackups returns it
      const kept = h.backups.filter((b) => keptIds.has(b.id)).sort((a, b) => t(a) - t(b));
      const needed = (tl: number, start: bigint) =>
        !newestValid ||
        kept.some(
          (b) =>
            start / SEG_BIG >= parseLsn(b.startLsn) / SEG_BIG &&
            continues(h, tl, b.timeline, parseLsn(b.startLsn)),
        );
      const endTl = Math.max(...h.inventory.segments.keys());
      const archiveEnd = h.inventory.segments.get(endTl)?.at(-1);
      for (const [tl, list] of h.inventory.segments) {
        for (const s of list) {
          if (s === archiveEnd) {
            assert.ok((after.segments.get(tl) ?? []).includes(s), 'the archive end stays');
            continue;
          }
          const stays = (after.segments.get(tl) ?? []).includes(s);
          // every kept backup's WAL from its start to the archive end on its branches stays;
          // everything else goes
          assert.equal(stays, needed(tl, parseLsn(s.startLsn)), `segment ${tl}/${s.segment}`);
        }
        // deletions on a timeline are a prefix: no new gap inside what stays
        const states = list.map((s) => (after.segments.get(tl) ?? []).includes(s));
        assert.ok(states.indexOf(true) === -1 || !states.slice(states.indexOf(true)).includes(false));
      }
      for (const b of kept) if (valid.has(b)) assert.ok(restorable(b, after), `${b.id} still restorable`);

      // the restorable window keeps its end and gains no gap; a promised recovery window holds
      const windowAfter = restorableWindow(kept, after, SEG);
      assert.equal(windowAfter.latestLsn ?? window.latestLsn, window.latestLsn);
      for (const gap of windowAfter.gaps)
        assert.ok(window.gaps.some((g) => g.from === gap.from && g.to === gap.to));
      if (policy.recoveryWindowMs && newestValid) {
        const windowStart = NOW.getTime() - policy.recoveryWindowMs;
        // Backups the window counts, as restore does: a complete chain, on the newest
        // timeline's recorded history.
        const counted = new Set(window.ranges.flatMap((r) => r.backups));
        if (h.backups.some((b) => usable.has(b) && counted.has(b.id) && t(b) <= windowStart)) {
          assert.ok(
            windowAfter.earliest && Date.parse(windowAfter.earliest) <= windowStart,
            'window still reaches back',
          );
        }
      }
    }),
    { numRuns: 1500 },
  );
});

function rangesOf(inv: WalInventory, timeline: number): Array<{ start: bigint; end: bigint }> {
  const pieces = [
    ...(inv.segments.get(timeline) ?? []).map((s) => ({
      start: parseLsn(s.startLsn),
      end: parseLsn(s.startLsn) + BigInt(s.validBytes),
    })),
    ...inv.partials
      .filter((p) => p.timeline === timeline)
      .map((p) => ({ start: p.startLsn, end: p.startLsn + BigInt(p.validBytes) })),
  ].sort((a, b) => (a.start < b.start ? -1 : 1));
  const ranges: Array<{ start: bigint; end: bigint }> = [];
  for (const p of pieces) {
    const last = ranges.at(-1);
    if (last && p.start <= last.end) last.end = p.end > last.end ? p.end : last.end;
    else ranges.push({ ...p });
  }
  return ranges;
}

test('GFS keeps the newest backup of each of the last 7 days, 4 weeks and 12 months', () => {
  const inventory: WalInventory = {
    segments: new Map([[1, [segmentRecord(1, 0n)]]]),
    partials: [],
    histories: [],
  };
  const backups: BackupRecord[] = [];
  // one backup every 6 hours for 400 days
  for (let i = 0; i < 400 * 4; i += 1) {
    const end = new Date(NOW.getTime() - i * 6 * 3_600_000);
    backups.push({
      format: 1,
      id: end.toISOString(),
      kind: 'full',
      systemId: '1',
      timeline: 1,
      startLsn: '0/100',
      endLsn: '0/200',
      startTime: end.toISOString(),
      endTime: end.toISOString(),
      serverVersion: '17',
      compression: 'zstd',
      compressedOn: 'client',
      archives: [],
      manifest: { key: 'm', size: 0, sha256: '', rawSize: 0 },
      durationMs: 1,
    });
  }
  const plan = planExpiry(backups, inventory, { gfs: { daily: 7, weekly: 4, monthly: 12 } }, NOW, {
    segmentSize: SEG,
  });
  const rules = (rule: string) => plan.keep.filter((k) => k.reasons.some((r) => r.rule === rule)).length;
  assert.equal(rules('gfs-daily'), 7);
  assert.equal(rules('gfs-weekly'), 4);
  assert.equal(rules('gfs-monthly'), 12);
  // the daily, weekly and monthly picks overlap in the current period
  assert.ok(plan.keep.length < 7 + 4 + 12);
  assert.ok(plan.expire.every((e) => e.rule === 'gfs'));
});
