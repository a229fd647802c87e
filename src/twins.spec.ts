import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Rules written twice, in TypeScript and in Lua, carry `// twin: <path>` (`-- twin: <path>` in
 * Lua) on both sides; a Lua script that reads or writes a record's stored form names the
 * TypeScript that defines it (`-- codec: <path> <name>`, `-- record: <path> <name>`). This
 * holds those pointers true as files move.
 */
const ROOT = join(__dirname, '..');
const TWIN = /(?:\/\/|\*|--)\s*twin:\s*(\S+)/g;
const NAMES = /(?:\/\/|\*|--)\s*(?:codec|record):\s*(\S+)\s+(\w+)/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      return sources(path);
    }
    return /\.(ts|lua)$/.test(entry.name) && path !== __filename ? [relative(ROOT, path)] : [];
  });
}

const files = sources(join(ROOT, 'src'));
const text = new Map(files.map((file) => [file, readFileSync(join(ROOT, file), 'utf8')]));
const pointers = (file: string, pattern: RegExp) => [...(text.get(file) ?? '').matchAll(pattern)];

describe('twins and codec names', () => {
  it('points each twin at a file that exists and points back', () => {
    const twins = files.flatMap((file) => pointers(file, TWIN).map(([, twin]) => [file, twin]));
    expect(twins.length).toBeGreaterThanOrEqual(10);
    for (const [file, twin] of twins) {
      expect({ file, twin, exists: existsSync(join(ROOT, twin)) }).toEqual({
        file,
        twin,
        exists: true,
      });
      const back = pointers(twin, TWIN).map(([, path]) => path);
      expect({ twin, pointsBackTo: back.includes(file) ? file : back }).toEqual({
        twin,
        pointsBackTo: file,
      });
    }
  });

  it('names, in each codec or record comment, something its file defines', () => {
    const named = files.flatMap((file) =>
      pointers(file, NAMES).map(([, path, name]) => ({ file, path, name })),
    );
    expect(named.length).toBeGreaterThan(0);
    for (const { file, path, name } of named) {
      const defines = new RegExp(`export (?:function|const|class|type|interface) ${name}\\b`);
      expect({ file, path, name, defined: defines.test(text.get(path) ?? '') }).toEqual({
        file,
        path,
        name,
        defined: true,
      });
    }
  });
});
