import { HubResults } from '../hub/hub-suite';
import { LIST_QUERIES, ListResults, MAX_LIST_P99_MS, MAX_LIST_RATIO } from '../inbox/list-suite';
import { Cell } from '../http/http-suite';
import { PairedRatio } from '../http/paired-suite';
import { BacklogResult, MAX_PAUSED_P99_RATIO, PAUSED_STREAMS } from '../realtime/backlog-suite';
import { RealtimeResults } from '../realtime/realtime-suite';
import { ScaleResults } from '../scale/scale-suite';
import {
  MAX_LAG_P99_MS,
  MAX_SLOW_P99_RATIO,
  minThroughputRatio,
  WebhookResults,
} from '../webhooks/webhook-suite';
import { MAX_MASTER_IMBALANCE } from './cluster';

export interface TargetResult {
  target: string;
  value: string;
  /** null: not measured in this run. */
  pass: boolean | null;
  note?: string;
}

export interface SuiteResults {
  http: Cell[] | null;
  scale: ScaleResults | null;
  hub: HubResults | null;
  realtime?: RealtimeResults | null;
  paired?: PairedRatio[] | null;
  backlog?: BacklogResult | null;
  list?: ListResults | null;
  webhooks?: WebhookResults | null;
}

const fixed = (value: number, digits = 2) =>
  Number.isFinite(value) ? value.toFixed(digits) : 'n/a';

function cellOf(cells: Cell[], scenario: string, configuration: string): Cell | undefined {
  return cells.find((cell) => cell.scenario === scenario && cell.configuration === configuration);
}

/** numerator/denominator of median req/s; FAIL when either cell is invalid. */
function ratioTarget(
  cells: Cell[] | null,
  scenario: string,
  numerator: string,
  denominator: string,
  minimum: number,
  maximum = Infinity,
): TargetResult {
  const target =
    maximum === Infinity
      ? `${scenario}: ${numerator}/${denominator} req/s ≥ ${minimum}`
      : `${scenario}: ${numerator}/${denominator} req/s within ${minimum}–${maximum}`;
  const top = cells && cellOf(cells, scenario, numerator);
  const bottom = cells && cellOf(cells, scenario, denominator);
  if (!top || !bottom) {
    return { target, value: 'not measured', pass: null };
  }
  const ratio = top.median.requestsPerSecond / bottom.median.requestsPerSecond;
  const invalid = [top, bottom].filter((cell) => !cell.valid).map((cell) => cell.configuration);
  return {
    target,
    value: `${fixed(ratio)} (${Math.round(top.median.requestsPerSecond)} / ${Math.round(bottom.median.requestsPerSecond)})`,
    pass: invalid.length === 0 && ratio >= minimum && ratio <= maximum,
    note: invalid.length > 0 ? `invalid cell: ${invalid.join(', ')}` : undefined,
  };
}

/**
 * A ratio target judged on the paired measurement (see paired-suite.ts) when the run made it,
 * else on the cells' medians.
 */
function pairedTarget(
  paired: PairedRatio[] | null | undefined,
  cells: Cell[] | null,
  scenario: string,
  numerator: string,
  denominator: string,
  minimum: number,
): TargetResult {
  const pair = paired?.find(
    (p) =>
      p.scenario === scenario &&
      p.numerator.configuration === numerator &&
      p.denominator.configuration === denominator,
  );
  if (!pair) {
    return ratioTarget(cells, scenario, numerator, denominator, minimum);
  }
  return {
    target: `${scenario}: ${numerator}/${denominator} req/s ≥ ${minimum} (paired)`,
    value:
      `${fixed(pair.ratio)} (${Math.round(pair.numerator.requestsPerSecond)} / ` +
      `${Math.round(pair.denominator.requestsPerSecond)}; CPU ${fixed(pair.cpuRatio)})`,
    pass: !pair.invalid && pair.ratio >= minimum,
    note: pair.invalid,
  };
}

export function computeTargets({
  http,
  scale,
  hub,
  realtime,
  paired,
  backlog,
  list,
  webhooks,
}: SuiteResults): TargetResult[] {
  const targets: TargetResult[] = [];
  for (const key of ['C', 'D']) {
    const target = `events: ${key} delivery p99 < 100 ms to every subscriber`;
    const result = realtime?.fanout.find((r) => r.configuration.startsWith(`${key} `));
    targets.push(
      result
        ? {
            target,
            value: `${result.p99Ms.toFixed(1)} ms (p50 ${result.p50Ms.toFixed(1)}; ${result.deliveries} of ${result.subscribers * result.posts} delivered)`,
            pass: result.p99Ms < 100 && result.deliveries === result.subscribers * result.posts,
          }
        : { target, value: 'not measured', pass: null },
    );
    const typingTarget = `typing: ${key} delivery p99 < 100 ms to every subscriber`;
    targets.push(
      result
        ? {
            target: typingTarget,
            value: `${result.typing.p99Ms.toFixed(1)} ms (p50 ${result.typing.p50Ms.toFixed(1)}; ${result.typing.deliveries} of ${result.subscribers * result.typing.signals} delivered)`,
            pass:
              result.typing.p99Ms < 100 &&
              result.typing.deliveries === result.subscribers * result.typing.signals,
          }
        : { target: typingTarget, value: 'not measured', pass: null },
    );
  }
  const pages = realtime?.pages;
  targets.push(
    pages
      ? {
          target: 'pages: page of 50 from a 100,000-message conversation ≥ 0.9× one from 50',
          value: `${pages.ratio.toFixed(2)} (${Math.round(pages.longRps)} / ${Math.round(pages.shortRps)}, ${pages.longMessages} messages)`,
          pass: pages.ratio >= 0.9,
        }
      : {
          target: 'pages: page of 50 from a 100,000-message conversation ≥ 0.9× one from 50',
          value: 'not measured',
          pass: null,
        },
  );
  // Issue 29: clients that stop reading their event streams do not slow the posts.
  const backlogTarget = `post: B p99 with ${PAUSED_STREAMS} paused event streams ≤ ${MAX_PAUSED_P99_RATIO}× p99 with none (paired)`;
  targets.push(
    backlog
      ? {
          target: backlogTarget,
          value:
            `${fixed(backlog.ratio, 3)} (${fixed(backlog.paused.p99Ms)} / ${fixed(backlog.none.p99Ms)} ms ` +
            `at ${backlog.rate} req/s; ${backlog.streamsEnded} of ${backlog.streamsOpened} paused streams ended)`,
          pass: !backlog.invalid && backlog.ratio <= MAX_PAUSED_P99_RATIO,
          note: backlog.invalid,
        }
      : { target: backlogTarget, value: 'not measured', pass: null },
  );
  // The server against the leanest NestJS app doing the same work (issue 19); B/E is only a
  // figure now, in the baselines section.
  // Judged on the paired measurement, which a drift of this VM's speed cannot tilt.
  targets.push(pairedTarget(paired, http, 'post', 'B', 'N', 0.85));
  targets.push(pairedTarget(paired, http, 'create', 'B', 'N', 0.85));
  targets.push(pairedTarget(paired, http, 'get20', 'B', 'N', 1.0));
  // The default deployment with the shared rate limiter on, at a limit never reached.
  targets.push(pairedTarget(paired, http, 'post', 'L', 'C', 0.95));
  for (const scenario of ['post', 'create', 'get20']) {
    targets.push(ratioTarget(http, scenario, 'C', 'B', 1.0));
  }
  for (const scenario of ['post', 'create', 'get20', 'mixed']) {
    const target = `${scenario}: C primary CPU ≤ 30 µs per HTTP request`;
    const cell = http && cellOf(http, scenario, 'C');
    const micros = cell?.median.primaryCpuMicrosPerRequest;
    if (!cell || micros === null || micros === undefined) {
      targets.push({ target, value: 'not measured', pass: null });
    } else {
      targets.push({
        target,
        value: `${fixed(micros, 1)} µs`,
        pass: cell.valid && micros <= 30,
        note: cell.valid ? undefined : 'invalid cell',
      });
    }
  }
  for (const op of ['appendMessage', 'getConversation'] as const) {
    const result = hub?.results[op];
    targets.push({
      target: `hub: ${result?.name ?? op} ≥ 50,000 ops/s`,
      value: result
        ? `${Math.round(result.opsPerSecond)} ops/s (primary ${fixed(result.primaryCpuMicrosPerOp, 1)} µs/op, ${fixed(result.primaryCpuPercent, 0)}% of a core)`
        : 'not measured',
      pass: result ? result.failed === 0 && result.opsPerSecond >= 50_000 : null,
      note: result && result.failed > 0 ? `${result.failed} calls failed` : undefined,
    });
  }
  targets.push(ratioTarget(http, 'get1000', 'C', 'B', 0.8));
  // The Redis store against the in-memory cluster, both with two workers.
  // Each with the CPU both spend per request, D's Redis server included: on one machine it
  // shares the cores with everything else, while C's store is in its primary.
  const withCpu = (result: TargetResult, scenario: string): TargetResult => {
    const d = http && cellOf(http, scenario, 'D');
    const c = http && cellOf(http, scenario, 'C');
    if (!d || !c || d.median.redisCpuMicrosPerRequest === null) {
      return result;
    }
    const redis = d.median.redisCpuMicrosPerRequest;
    const total = d.median.cpuMicrosPerRequest + redis;
    return {
      ...result,
      value: `${result.value}; CPU µs/req D ${fixed(d.median.cpuMicrosPerRequest, 0)} + Redis ${fixed(redis, 0)} = ${fixed(total, 0)}, C ${fixed(c.median.cpuMicrosPerRequest, 0)}`,
    };
  };
  for (const scenario of ['post', 'create', 'get20', 'mixed']) {
    targets.push(withCpu(ratioTarget(http, scenario, 'D', 'C', 0.8, 1.2), scenario));
  }
  targets.push(withCpu(ratioTarget(http, 'get1000', 'D', 'C', 1.0), 'get1000'));
  // Redis Cluster: the keys (and so the work) spread over the masters.
  const mixedF = http && cellOf(http, 'mixed', 'F');
  const shares = mixedF?.median.masterCommands;
  targets.push({
    target: `mixed: F busiest Redis master ≤ ${MAX_MASTER_IMBALANCE}× the commands of the least busy`,
    value: shares
      ? `${fixed(shares.maxOverMin)}× (${shares.byMaster.map((m) => `${(m.share * 100).toFixed(1)}%`).join(' / ')})`
      : 'not measured',
    pass: mixedF && shares ? mixedF.valid && shares.maxOverMin <= MAX_MASTER_IMBALANCE : null,
    note: mixedF && !mixedF.valid ? 'invalid cell' : undefined,
  });
  for (const run of scale?.memory.runs ?? []) {
    targets.push({
      target: `memory (${run.idStyle === 'single' ? 'WORKERS=0 inputs' : 'cluster primary inputs'}): ≤ 350 B per message beyond its text`,
      value: `${fixed(run.bytesBeyondText, 0)} B (${fixed(run.bytesPerMessage, 0)} B − ${scale?.memory.assumedTextBytes} B text, ${run.messages} messages)`,
      pass: run.bytesBeyondText <= 350,
    });
    const budgetOverHeap = run.budgetBytesPerMessage / run.bytesPerMessage;
    targets.push({
      target: `memory budget (${run.idStyle === 'single' ? 'WORKERS=0 inputs' : 'cluster primary inputs'}): bytes counted per message within 20% of the heap it takes`,
      value: `${fixed(run.budgetBytesPerMessage, 0)} B counted / ${fixed(run.bytesPerMessage, 0)} B on the heap = ${fixed(budgetOverHeap)}`,
      pass: Math.abs(budgetOverHeap - 1) <= 0.2,
    });
  }
  if (!scale) {
    targets.push({
      target: 'memory: ≤ 350 B per message beyond its text',
      value: 'not measured',
      pass: null,
    });
  }
  const eviction = scale?.eviction;
  targets.push({
    target: `eviction: sweep in ${eviction ? eviction.large.storeSize.toLocaleString('en') : 'large'} store ≤ 1.5× sweep in ${eviction ? eviction.small.storeSize.toLocaleString('en') : 'small'} store`,
    value: eviction
      ? `${fixed(eviction.ratio)}× (${fixed(eviction.large.medianSweepMs, 1)} / ${fixed(eviction.small.medianSweepMs, 1)} ms)`
      : 'not measured',
    pass: eviction ? eviction.ratio <= 1.5 : null,
  });
  targets.push({
    target: 'eviction: longest event-loop delay during a sweep < 50 ms',
    value: eviction ? `${fixed(eviction.maxDelayMs, 1)} ms` : 'not measured',
    pass: eviction ? eviction.maxDelayMs < 50 : null,
  });
  targets.push(...listTargets(list));
  targets.push(...webhookTargets(webhooks));
  return targets;
}

/**
 * Issue 33's webhooks, per configuration: one responsive endpoint costs at most 30% of the
 * full-speed posts in memory (B, C) and 50% on Redis (D, F), with a delivery lag p99 under 1 s
 * at that load; beside an endpoint that only times out, the responsive one's lag p99 stays
 * under 1 s and post p99 at a fixed rate within 10% of no endpoint's.
 */
function webhookTargets(webhooks: WebhookResults | null | undefined): TargetResult[] {
  if (!webhooks || webhooks.configurations.length === 0) {
    return [
      {
        target: `webhooks: one endpoint ≥ 0.7× (memory) / 0.5× (Redis) the posts/s of none, lag p99 < ${MAX_LAG_P99_MS} ms; a timing-out one beside: post p99 ≤ ${MAX_SLOW_P99_RATIO}× none, lag p99 < ${MAX_LAG_P99_MS} ms`,
        value: 'not measured',
        pass: null,
      },
    ];
  }
  const lag = (ms: number | null | undefined) =>
    ms === undefined ? 'n/a' : ms === null ? 'not all delivered' : `${fixed(ms, 0)} ms`;
  const targets: TargetResult[] = [];
  for (const result of webhooks.configurations) {
    const key = result.configuration;
    const [none, one, slow] = ['none', 'one', 'slow'].map((condition) =>
      result.conditions.find((c) => c.condition === condition),
    );
    const note = result.invalid ? `invalid run: ${result.invalid}` : undefined;
    const valid = !result.invalid;
    const minimum = minThroughputRatio(result);
    targets.push({
      target: `webhooks: ${key} posts/s with one endpoint ≥ ${minimum}× with none`,
      value:
        none && one
          ? `${fixed(result.throughputRatio)} (${Math.round(one.fullRequestsPerSecond)} / ${Math.round(none.fullRequestsPerSecond)})`
          : 'not measured',
      pass:
        none && one && Number.isFinite(result.throughputRatio)
          ? valid && result.throughputRatio >= minimum
          : null,
      note,
    });
    targets.push({
      target: `webhooks: ${key} delivery lag p99 < ${MAX_LAG_P99_MS} ms with one endpoint at full speed`,
      value: one
        ? `${lag(one.fullLagP99Ms)} (p50 ${lag(one.fullLagP50Ms)}; ${one.fullDelivered} of ${one.fullAcknowledged} delivered, drained in ${one.fullDrainSeconds === null || one.fullDrainSeconds === undefined ? `more than ${webhooks.settings.drainSeconds} s` : `${fixed(one.fullDrainSeconds, 1)} s`})`
        : 'not measured',
      pass: one
        ? valid &&
          one.fullLagP99Ms !== null &&
          one.fullLagP99Ms !== undefined &&
          one.fullLagP99Ms < MAX_LAG_P99_MS
        : null,
      note,
    });
    targets.push({
      target: `webhooks: ${key} post p99 at a fixed rate with a timing-out endpoint beside a responsive one ≤ ${MAX_SLOW_P99_RATIO}× with none`,
      value:
        none && slow
          ? `${fixed(result.fixedP99Ratio, 3)} (${fixed(slow.fixedP99Ms)} / ${fixed(none.fixedP99Ms)} ms at ${result.rate} posts/s)`
          : 'not measured',
      pass:
        none && slow && Number.isFinite(result.fixedP99Ratio)
          ? valid && result.fixedP99Ratio <= MAX_SLOW_P99_RATIO
          : null,
      note,
    });
    targets.push({
      target: `webhooks: ${key} responsive endpoint's lag p99 < ${MAX_LAG_P99_MS} ms beside a timing-out one`,
      value: slow
        ? `${lag(slow.fixedLagP99Ms)} (p50 ${lag(slow.fixedLagP50Ms)}; ${slow.fixedDelivered} of ${slow.fixedAcknowledged} delivered; at full speed p99 ${lag(slow.fullLagP99Ms)})`
        : 'not measured',
      pass: slow
        ? valid &&
          slow.fixedLagP99Ms !== null &&
          slow.fixedLagP99Ms !== undefined &&
          slow.fixedLagP99Ms < MAX_LAG_P99_MS
        : null,
      note,
    });
  }
  return targets;
}

/**
 * Issue 32's inbox list, in memory (B, C): per query, p50 at the larger store ≤ 1.5× p50 at
 * the smaller, and p99 < 20 ms at both sizes. Not measured when neither ran.
 */
function listTargets(list: ListResults | null | undefined): TargetResult[] {
  const measured = list?.configurations.filter((c) => c.inMemory && !c.skipped) ?? [];
  const [small, large] = list?.settings.sizes ?? [10_000, 100_000];
  const count = (n: number) => n.toLocaleString('en');
  if (measured.length === 0) {
    return [
      {
        target: `list: in memory, p50 at ${count(large)} conversations ≤ ${MAX_LIST_RATIO}× at ${count(small)}, p99 < ${MAX_LIST_P99_MS} ms`,
        value: 'not measured',
        pass: null,
      },
    ];
  }
  const targets: TargetResult[] = [];
  for (const result of measured) {
    for (const { key } of LIST_QUERIES) {
      const ratio = result.ratios.find((r) => r.query === key);
      const at = result.sizes.map((size) => size.queries.find((q) => q.query === key));
      targets.push({
        target: `list ${key}: ${result.configuration} p50 at ${count(large)} ≤ ${MAX_LIST_RATIO}× p50 at ${count(small)}`,
        value: ratio
          ? `${fixed(ratio.p50Ratio)} (${fixed(at[1]?.p50Ms ?? NaN)} / ${fixed(at[0]?.p50Ms ?? NaN)} ms; p99 ratio ${fixed(ratio.p99Ratio)}, CPU per page ratio ${fixed(ratio.cpuRatio)})`
          : 'not measured',
        pass: ratio ? ratio.p50Ratio <= MAX_LIST_RATIO : null,
      });
      const p99s = at.flatMap((q) => (q ? [q.p99Ms] : []));
      targets.push({
        target: `list ${key}: ${result.configuration} p99 < ${MAX_LIST_P99_MS} ms at ${count(small)} and ${count(large)}`,
        value: p99s.length > 0 ? `${p99s.map((p) => fixed(p)).join(' / ')} ms` : 'not measured',
        pass: p99s.length === 2 ? p99s.every((p) => p < MAX_LIST_P99_MS) : null,
      });
    }
  }
  return targets;
}
