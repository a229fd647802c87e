import * as ts from 'typescript';
import { Declaration, Declarations } from '../config/env-declaration';

/** One environment variable as docs/configuration.md lists it. */
export interface ConfigVariable {
  name: string;
  /** Markdown: what values it takes. */
  type: string;
  /** Markdown: its default. */
  default: string;
  /** Markdown: the variable's doc comment, on one line. */
  description: string;
}

/** A variable's doc comment: its text on one line, and its `@default` tag if it has one. */
interface DocComment {
  description: string;
  defaultTag?: string;
}

const code = (text: string) => '`' + text + '`';

function commentText(comment: string | ts.NodeArray<ts.JSDocComment> | undefined): string {
  return (ts.getTextOfJSDocComment(comment) ?? '').replace(/\s+/g, ' ').trim();
}

/** `{ ... }` out of `{ ... } satisfies T`, `{ ... } as const` or `({ ... })`. */
function objectLiteral(node: ts.Expression | undefined): ts.ObjectLiteralExpression | undefined {
  while (
    node &&
    (ts.isSatisfiesExpression(node) ||
      ts.isAsExpression(node) ||
      ts.isParenthesizedExpression(node))
  ) {
    node = node.expression;
  }
  return node && ts.isObjectLiteralExpression(node) ? node : undefined;
}

/** The doc comment above each property of the object `objectName` declares in `source`. */
function readDocComments(
  source: string,
  objectName: string,
  fileName: string,
): Map<string, DocComment> {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true);
  const literal = file.statements
    .filter(ts.isVariableStatement)
    .flatMap((statement) => statement.declarationList.declarations)
    .filter((declaration) => declaration.name.getText(file) === objectName)
    .map((declaration) => objectLiteral(declaration.initializer))
    .find((found) => found !== undefined);
  if (!literal) {
    throw new Error(`No object ${objectName} in ${fileName}`);
  }
  const comments = new Map<string, DocComment>();
  for (const property of literal.properties.filter(ts.isPropertyAssignment)) {
    const docs = ts.getJSDocCommentsAndTags(property).filter(ts.isJSDoc);
    const tag = docs
      .flatMap((doc) => doc.tags ?? [])
      .find((candidate) => candidate.tagName.text === 'default');
    comments.set(property.name.getText(file), {
      description: docs.map((doc) => commentText(doc.comment)).join(' '),
      defaultTag: tag ? commentText(tag.comment) : undefined,
    });
  }
  return comments;
}

/** The declared default; a `@default` tag explains it (after a text) or stands for it (derived). */
function defaultOf(fallback: Declaration['default'], tag: string | undefined): string {
  if (typeof fallback === 'string') {
    const literal = fallback === '' ? 'none' : code(fallback);
    return tag ? `${literal}: ${tag}` : literal;
  }
  return tag ?? 'derived (see the description)';
}

/**
 * Every declared variable, in declaration order: its name, what it takes, its default, and the
 * doc comment above it in `source` (the TypeScript text that declares `objectName`).
 */
export function readConfigVariables(
  declarations: Declarations,
  source: string,
  objectName = 'VARIABLES',
  fileName = 'app.config.ts',
): ConfigVariable[] {
  const comments = readDocComments(source, objectName, fileName);
  return Object.entries(declarations).map(([name, declaration]) => {
    const comment = comments.get(name);
    return {
      name,
      type: declaration.takes.summary,
      default: defaultOf(declaration.default, comment?.defaultTag),
      description: comment?.description ?? '',
    };
  });
}

const cell = (text: string) => text.replace(/\|/g, '\\|');

/** The variables as a Markdown table. */
export function renderConfigTable(variables: readonly ConfigVariable[]): string {
  const rows = variables.map(
    (variable) =>
      `| ${code(variable.name)} | ${cell(variable.type)} | ${cell(variable.default)} | ${cell(variable.description)} |`,
  );
  return ['| Variable | Takes | Default | Meaning |', '| --- | --- | --- | --- |', ...rows].join(
    '\n',
  );
}
