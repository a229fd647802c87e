import autocannon from 'autocannon';

export interface LoadOptions {
  url: string;
  requests: autocannon.Request[];
  /** Seconds. */
  duration: number;
  connections: number;
  /** Requests per second across all connections; as fast as possible when absent. */
  overallRate?: number;
  /** Called with every response's latency in milliseconds (not rounded to autocannon's 1 ms). */
  onLatency?: (ms: number) => void;
}

export interface LoadResult {
  /** Completed requests (any status). */
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** Milliseconds (autocannon's histogram has 1 ms resolution). */
  p50: number;
  p99: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
}

/** One autocannon run, pipelining 1. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const instance = autocannon({
    url: options.url,
    connections: options.connections,
    pipelining: 1,
    duration: options.duration,
    // autocannon only notices the end of a run on a sampling tick (1 s by default).
    sampleInt: 100,
    requests: options.requests,
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
  });
  const { onLatency } = options;
  if (onLatency) {
    instance.on('response', (_client, _status, _bytes, ms) => onLatency(ms));
  }
  const result = await instance;
  const statusCodes: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) {
    statusCodes[code] = count;
  }
  return {
    requests: result.requests.total,
    seconds: result.duration,
    requestsPerSecond: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
  };
}

/** Sends exactly `amount` requests (32 at a time); any error or non-2xx is thrown. */
export async function fire(
  url: string,
  amount: number,
  request: autocannon.Request,
): Promise<void> {
  if (amount === 0) {
    return;
  }
  const result = await autocannon({
    url,
    connections: Math.min(32, amount),
    pipelining: 1,
    amount,
    sampleInt: 100,
    requests: [request],
  });
  if (result.errors > 0 || result.non2xx > 0 || result.requests.total !== amount) {
    throw new Error(
      `seeding ${request.method ?? 'GET'} ${request.path ?? ''}: ${result.requests.total} of ${amount} answered, ${result.errors} errors, ${result.non2xx} non-2xx ${JSON.stringify(result.statusCodeStats)}`,
    );
  }
}
