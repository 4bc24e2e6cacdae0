// The dashboard's SVG drawings: the restorable window as a timeline, and history charts.

import { el, fmtShortTime, fmtTick, fmtTime, svg } from './dom.js';

/** The restorable window as a timeline: ranges, the gaps between them, backups as marks. */
export function windowTimeline(cluster, catalog) {
  const window = cluster.restorableWindow ?? { ranges: [], gaps: [] };
  const backups = catalog?.backups ?? [];
  const now = Date.now();
  const times = [
    ...window.ranges.flatMap((r) => [Date.parse(r.earliest), Date.parse(r.latest)]),
    ...backups.map((b) => Date.parse(b.endTime)),
  ].filter((t) => Number.isFinite(t));
  const end = Math.max(now, ...times);
  // From a little before the oldest restorable point to now; at least ten minutes wide.
  const oldest = Math.min(end, ...times);
  const start = end - Math.max(600_000, (end - oldest) * 1.04);
  const W = 800;
  const H = 92;
  const x0 = 10;
  const x1 = W - 10;
  const x = (t) => x0 + ((t - start) / Math.max(1, end - start)) * (x1 - x0);
  const parts = [svg('rect', { x: x0, y: 22, width: x1 - x0, height: 22, class: 'tl-track' })];
  window.ranges.forEach((range, i) => {
    const a = x(Date.parse(range.earliest));
    const b = Math.max(a + 3, x(Date.parse(range.latest)));
    parts.push(
      svg(
        'rect',
        { x: a, y: 22, width: b - a, height: 22, class: 'tl-range', 'data-range': i },
        svg('title', {}, `restorable ${fmtTime(range.earliest)} – ${fmtTime(range.latest)}`),
      ),
    );
    if (range.gapAfter) {
      const next = window.ranges[i + 1];
      const gapEnd = next ? x(Date.parse(next.earliest)) : x1;
      parts.push(
        svg(
          'rect',
          { x: b, y: 18, width: Math.max(3, gapEnd - b), height: 30, class: 'tl-gap' },
          svg(
            'title',
            {},
            `WAL gap ${range.gapAfter.from} – ${range.gapAfter.to}: points inside cannot be restored`,
          ),
        ),
      );
    }
  });
  for (const b of backups) {
    const cx = x(Date.parse(b.endTime));
    const failed = b.verification && !b.verification.passed;
    parts.push(
      svg(
        'path',
        {
          d: `M ${cx} 52 l 6 8 l -6 8 l -6 -8 z`,
          class: `tl-backup ${b.kind}${failed ? ' failed' : ''}${b.restorable ? '' : ' unusable'}`,
        },
        svg('title', {}, `${b.kind} backup ${b.name ?? b.id} ended ${fmtTime(b.endTime)}`),
      ),
    );
  }
  parts.push(svg('line', { x1: x(now), x2: x(now), y1: 12, y2: 70, class: 'tl-now' }));
  for (let i = 0; i <= 4; i += 1) {
    const t = start + ((end - start) * i) / 4;
    const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
    parts.push(
      svg('line', { x1: x(t), x2: x(t), y1: 44, y2: 48, class: 'chart-axis' }),
      svg('text', { x: x(t), y: 86, class: 'tl-label', 'text-anchor': anchor }, fmtTick(t, end - start)),
    );
  }
  parts.push(svg('text', { x: x0, y: 12, class: 'tl-label' }, 'restorable window'));
  const description =
    window.ranges.length === 0
      ? 'Nothing can be restored yet.'
      : `Restorable from ${fmtTime(window.earliest)} to ${fmtTime(window.latest)}` +
        (window.gaps.length ? `, ${window.gaps.length} WAL gap(s)` : ', no WAL gap');
  return el(
    'figure',
    { class: 'timeline' },
    svg(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': description, class: 'timeline-svg' },
      ...parts,
    ),
    el('figcaption', {}, description),
  );
}

/** A small line chart of one figure over the history samples, with an optional objective line. */
export function historyChart(title, samples, value, format, objective) {
  const W = 380;
  const H = 120;
  const pad = { l: 8, r: 8, t: 22, b: 18 };
  const points = samples
    .map((s) => ({ t: Date.parse(s.at), v: value(s) }))
    .filter((p) => Number.isFinite(p.t) && typeof p.v === 'number');
  const latest = points.at(-1);
  const header = `${title}: ${latest ? format(latest.v) : 'no sample yet'}`;
  const parts = [svg('text', { x: pad.l, y: 14, class: 'chart-title' }, header)];
  if (points.length > 0) {
    const t0 = points[0].t;
    const t1 = Math.max(points.at(-1).t, t0 + 1);
    const peak = Math.max(...points.map((p) => p.v));
    // Scaled to the figures, so a small lag stays visible under a far objective (noted instead).
    const top = Math.max(
      1,
      peak * 1.25,
      objective && objective.value <= peak * 4 ? objective.value * 1.1 : 0,
    );
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
    const y = (v) => H - pad.b - (v / top) * (H - pad.t - pad.b);
    parts.push(
      svg('line', { x1: pad.l, x2: W - pad.r, y1: y(0), y2: y(0), class: 'chart-axis' }),
      svg('text', { x: W - pad.r, y: 14, class: 'chart-note', 'text-anchor': 'end' }, `peak ${format(peak)}`),
    );
    if (objective && objective.value <= top) {
      parts.push(
        svg('line', {
          x1: pad.l,
          x2: W - pad.r,
          y1: y(objective.value),
          y2: y(objective.value),
          class: 'chart-objective',
        }),
        svg(
          'text',
          { x: W - pad.r, y: y(objective.value) - 3, class: 'chart-note', 'text-anchor': 'end' },
          objective.label,
        ),
      );
    } else if (objective) {
      parts.push(
        svg(
          'text',
          { x: W - pad.r, y: 28, class: 'chart-note', 'text-anchor': 'end' },
          `${objective.label}, far above`,
        ),
      );
    }
    parts.push(
      svg('polyline', {
        points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' '),
        class: 'chart-line',
      }),
      svg('text', { x: pad.l, y: H - 4, class: 'chart-note' }, fmtShortTime(t0)),
      svg('text', { x: W - pad.r, y: H - 4, class: 'chart-note', 'text-anchor': 'end' }, fmtShortTime(t1)),
    );
  }
  return svg(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': header, class: 'chart' },
    ...parts,
  );
}
