import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { VARIABLES } from '../config/app.config';
import { readConfigVariables, renderConfigTable } from './config-reference';

/** The repository root: the first folder above this file that holds a package.json. */
export function findRoot(from = __dirname): string {
  let dir = from;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`No package.json above ${from}`);
    }
    dir = parent;
  }
  return dir;
}

/** A committed file that a command writes, and docs:check compares. */
export interface GeneratedDoc {
  /** Relative to the repository root. */
  file: string;
  /** What refreshes it. */
  command: string;
  /** The file's content as the command would write it now. */
  render(root: string): Promise<string>;
}

/** Where the variables are declared: the doc comment above each is its entry in the reference. */
export const CONFIG_SOURCE = 'src/config/app.config.ts';
export const CONFIG_START = '<!-- config:start -->';
export const CONFIG_END = '<!-- config:end -->';

/** Every declared variable, as the configuration reference lists it. */
export function configVariables(root: string) {
  const variables = readConfigVariables(
    VARIABLES,
    readFileSync(path.join(root, CONFIG_SOURCE), 'utf8'),
  );
  const undocumented = variables.filter((variable) => !variable.description);
  if (undocumented.length > 0) {
    throw new Error(
      `${CONFIG_SOURCE}: give ${undocumented.map((variable) => variable.name).join(', ')} a doc comment (/** ... */): it is the configuration reference`,
    );
  }
  return variables;
}

/**
 * `text` with what lies between its two markers replaced by `generated`; the hand-written
 * rest of the file stays as it is.
 */
export function replaceBetweenMarkers(
  text: string,
  generated: string,
  start: string,
  end: string,
  file: string,
): string {
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from === -1 || to < from) {
    throw new Error(`${file} must hold the markers ${start} and ${end}, in that order`);
  }
  return `${text.slice(0, from + start.length)}\n${generated}\n${text.slice(to)}`;
}

export const CONFIG_DOC: GeneratedDoc = {
  file: 'docs/configuration.md',
  command: 'npm run docs:config',
  render: (root) => {
    const file = path.join(root, 'docs/configuration.md');
    return Promise.resolve(
      replaceBetweenMarkers(
        readFileSync(file, 'utf8'),
        `<!-- Generated from ${CONFIG_SOURCE} by \`npm run docs:config\`: edit the doc comments there, not this table. -->\n\n${renderConfigTable(configVariables(root))}\n`,
        CONFIG_START,
        CONFIG_END,
        'docs/configuration.md',
      ),
    );
  },
};

export const OPENAPI_DOC: GeneratedDoc = {
  file: 'docs/openapi.json',
  command: 'npm run docs:openapi',
  render: async (root) => {
    // Loaded only here: it brings the whole app.
    const { openApiJson } = await import('./openapi-document');
    return openApiJson(configVariables(root).map((variable) => variable.name));
  },
};
