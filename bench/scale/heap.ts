/** Runs full collections (the script must run with --expose-gc); returns the heap in use. */
export function settledHeapUsed(collections = 4): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    throw new Error('run with node --expose-gc');
  }
  for (let i = 0; i < collections; i++) {
    gc();
  }
  return process.memoryUsage().heapUsed;
}

/** A copy of a string as one flat sequential string, as JSON.parse (HTTP body, IPC) makes them. */
export const flat = (text: string): string => JSON.parse(JSON.stringify(text)) as string;

/** The script's result: one JSON line on stdout, read by the runner. */
export function report(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function fail(error: unknown): void {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
}
