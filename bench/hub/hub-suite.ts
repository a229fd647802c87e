import { runNodeScript } from '../lib/children';
import { benchScript } from '../lib/paths';

export interface HubTiming {
  measureSeconds: number;
  warmupSeconds: number;
  inFlightPerWorker: number;
}

export interface HubOperationResult {
  name: string;
  opsPerSecond: number;
  primaryCpuMicrosPerOp: number;
  primaryCpuPercent: number;
  meanBatchSize: number;
  failed: number;
}

export interface HubResults {
  workers: number;
  inFlightPerWorker: number;
  measureSeconds: number;
  results: Record<'appendMessage' | 'getConversation', HubOperationResult>;
}

export async function runHubSuite(
  timing: HubTiming,
  log: (line: string) => void,
): Promise<HubResults> {
  const { result } = await runNodeScript<HubResults>(benchScript('hub/hub-bench.js'), [
    String(timing.measureSeconds),
    String(timing.warmupSeconds),
    String(timing.inFlightPerWorker),
  ]);
  for (const op of Object.values(result.results)) {
    log(
      `[hub] ${op.name}: ${Math.round(op.opsPerSecond)} ops/s, primary ${op.primaryCpuMicrosPerOp.toFixed(1)} µs/op (${op.primaryCpuPercent.toFixed(0)}% of a core)`,
    );
  }
  return result;
}
