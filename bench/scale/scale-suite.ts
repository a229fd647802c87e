import { runNodeScript } from '../lib/children';
import { benchScript } from '../lib/paths';

/** Sizes of the scale checks; quick mode scales them down. */
export interface ScaleSizes {
  messages: number;
  messagesPerConversation: number;
  /** Eviction: the small store, the large store, and how many expire in each. */
  smallStore: number;
  largeStore: number;
  expired: number;
  sweepRepetitions: number;
}

export const FULL_SCALE: ScaleSizes = {
  messages: 1_000_000,
  messagesPerConversation: 1_000,
  smallStore: 200_000,
  largeStore: 2_000_000,
  expired: 100_000,
  sweepRepetitions: 3,
};

export const QUICK_SCALE: ScaleSizes = {
  messages: 100_000,
  messagesPerConversation: 1_000,
  smallStore: 20_000,
  largeStore: 200_000,
  expired: 10_000,
  // Small stores sweep in milliseconds: more repetitions steady the median, and cost little.
  sweepRepetitions: 5,
};

/**
 * What a 100-character one-byte text costs as a V8 sequential string on x64 without pointer
 * compression (Node's default build): a 16-byte header (map, hash, length) and the characters
 * rounded up to 8 bytes: 16 + 104. The suite also measures it (`text` below) to check.
 */
export const ASSUMED_TEXT_BYTES = 16 + Math.ceil(100 / 8) * 8;

const NODE_ARGS = ['--expose-gc', '--max-old-space-size=8192'];

interface MemoryRun {
  idStyle: string;
  conversations: number;
  messages: number;
  bytesPerMessage: number;
  /** What the store's byte budget counts per message (conversations included). */
  budgetBytesPerMessage: number;
  seconds: number;
}

interface SweepRun {
  storeSize: number;
  expired: number;
  sweepsMs: number[];
  medianSweepMs: number;
  buildSeconds: number;
  whileServing: {
    sweepMs: number;
    maxDelayMs: number;
    p99DelayMs: number;
    longestGapBetweenGetTurnsMs: number;
    gets: number;
  };
}

export interface ScaleResults {
  sizes: ScaleSizes;
  memory: {
    assumedTextBytes: number;
    measuredTextBytes: number;
    runs: (MemoryRun & { bytesBeyondText: number })[];
  };
  eviction: {
    small: SweepRun;
    large: SweepRun;
    /** Median sweep in the large store over median sweep in the small one. */
    ratio: number;
    /** Longest event-loop delay seen during either sweep while GETs were served. */
    maxDelayMs: number;
  };
}

export async function runScaleSuite(
  sizes: ScaleSizes,
  log: (line: string) => void,
): Promise<ScaleResults> {
  const memoryScript = benchScript('scale/memory-per-message.js');
  const text = await runNodeScript<{ bytesPerText: number }>(
    memoryScript,
    ['text', '100000'],
    NODE_ARGS,
  );
  const runs: ScaleResults['memory']['runs'] = [];
  for (const idStyle of ['single', 'cluster']) {
    const conversations = Math.max(1, Math.round(sizes.messages / sizes.messagesPerConversation));
    const { result } = await runNodeScript<MemoryRun>(
      memoryScript,
      ['messages', idStyle, String(conversations), String(sizes.messagesPerConversation)],
      NODE_ARGS,
    );
    runs.push({ ...result, bytesBeyondText: result.bytesPerMessage - ASSUMED_TEXT_BYTES });
    log(
      `[memory] ${result.messages} messages (${idStyle}): ${result.bytesPerMessage.toFixed(0)} B/message on the heap, ` +
        `${result.budgetBytesPerMessage.toFixed(0)} B counted by the budget, in ${result.seconds.toFixed(1)} s`,
    );
  }

  const sweep = async (storeSize: number) => {
    const { result, seconds } = await runNodeScript<SweepRun>(
      benchScript('scale/eviction-sweep.js'),
      [String(storeSize), String(sizes.expired), String(sizes.sweepRepetitions)],
      NODE_ARGS,
    );
    log(
      `[eviction] ${sizes.expired} of ${storeSize}: sweeps ${result.sweepsMs.map((ms) => ms.toFixed(1)).join(', ')} ms; ` +
        `while serving GETs ${result.whileServing.sweepMs.toFixed(1)} ms, max loop delay ${result.whileServing.maxDelayMs.toFixed(1)} ms (${seconds.toFixed(0)} s)`,
    );
    return result;
  };
  const small = await sweep(sizes.smallStore);
  const large = await sweep(sizes.largeStore);
  return {
    sizes,
    memory: {
      assumedTextBytes: ASSUMED_TEXT_BYTES,
      measuredTextBytes: text.result.bytesPerText,
      runs,
    },
    eviction: {
      small,
      large,
      ratio: large.medianSweepMs / small.medianSweepMs,
      maxDelayMs: Math.max(small.whileServing.maxDelayMs, large.whileServing.maxDelayMs),
    },
  };
}
