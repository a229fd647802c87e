import { existsSync } from 'node:fs';
import path from 'node:path';

/** The repository root: the first folder above this file that holds a package.json. */
function findRoot(): string {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`No package.json above ${__dirname}`);
    }
    dir = parent;
  }
  return dir;
}

export const ROOT = findRoot();
/** The server as `npm run build` makes it. */
export const SERVER_DIST = path.join(ROOT, 'dist');
export const SERVER_MAIN = path.join(SERVER_DIST, 'main.js');
/** The compiled benchmarks (`tsc -p bench/tsconfig.json`). */
export const BENCH_DIST = path.join(ROOT, 'bench', 'dist');
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');

export const benchScript = (relative: string): string => path.join(BENCH_DIST, relative);
export const serverModule = (relative: string): string => path.join(SERVER_DIST, relative);
