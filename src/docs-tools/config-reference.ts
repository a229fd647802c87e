import * as ts from 'typescript';

/** One environment variable as docs/configuration.md lists it. */
export interface ConfigVariable {
  name: string;
  /** Markdown: what values it takes. */
  type: string;
  /** Markdown: its default. */
  default: string;
  /** Markdown: the field's doc comment, on one line. */
  description: string;
}

/** What a `@Validate(<constraint>)` takes, by the constraint's `@ValidatorConstraint` name. */
const CONSTRAINT_TYPES: Record<string, string> = {
  cronExpression: 'cron expression (six fields, with seconds)',
  redisUrl: 'URL',
  originList: 'comma-separated origins',
  apiKeyList: 'comma-separated keys',
  clusterNodeList: 'comma-separated seed nodes',
};

interface DecoratorCall {
  name: string;
  args: readonly ts.Expression[];
}

function decoratorCalls(node: ts.HasDecorators): DecoratorCall[] {
  return (ts.getDecorators(node) ?? []).flatMap((decorator) => {
    const call = decorator.expression;
    if (ts.isCallExpression(call) && ts.isIdentifier(call.expression)) {
      return [{ name: call.expression.text, args: call.arguments }];
    }
    return [];
  });
}

const code = (text: string) => '`' + text + '`';

function numberText(node: ts.Expression | undefined): string | undefined {
  if (node && ts.isNumericLiteral(node)) {
    return String(Number(node.text.replace(/_/g, '')));
  }
  if (
    node &&
    ts.isPrefixUnaryExpression(node) &&
    node.operator === ts.SyntaxKind.MinusToken &&
    ts.isNumericLiteral(node.operand)
  ) {
    return String(-Number(node.operand.text.replace(/_/g, '')));
  }
  return undefined;
}

/** A string property of an options object, such as `message` in `@Matches(re, { message })`. */
function stringOption(node: ts.Expression | undefined, key: string): string | undefined {
  if (!node || !ts.isObjectLiteralExpression(node)) {
    return undefined;
  }
  for (const property of node.properties) {
    if (
      ts.isPropertyAssignment(property) &&
      ts.isIdentifier(property.name) &&
      property.name.text === key &&
      ts.isStringLiteralLike(property.initializer)
    ) {
      return property.initializer.text;
    }
  }
  return undefined;
}

/** The `name` each `@ValidatorConstraint({ name })` class in the file declares. */
function constraintNames(file: ts.SourceFile): Map<string, string> {
  const names = new Map<string, string>();
  for (const statement of file.statements) {
    if (!ts.isClassDeclaration(statement) || !statement.name) {
      continue;
    }
    for (const call of decoratorCalls(statement)) {
      const name =
        call.name === 'ValidatorConstraint' ? stringOption(call.args[0], 'name') : undefined;
      if (name) {
        names.set(statement.name.text, name);
      }
    }
  }
  return names;
}

/** What values a field takes, from its validators; its declared type when none says more. */
function typeOf(
  property: ts.PropertyDeclaration,
  calls: DecoratorCall[],
  constraints: Map<string, string>,
  file: ts.SourceFile,
): string {
  const call = (name: string) => calls.find((candidate) => candidate.name === name);
  const isIn = call('IsIn')?.args[0];
  if (isIn && ts.isArrayLiteralExpression(isIn)) {
    return (
      'one of ' +
      isIn.elements
        .map((element) =>
          ts.isStringLiteralLike(element) ? code(element.text) : element.getText(file),
        )
        .join(', ')
    );
  }
  if (call('IsInt')) {
    const min = numberText(call('Min')?.args[0]);
    const max = numberText(call('Max')?.args[0]);
    if (min !== undefined && max !== undefined) {
      return `integer, ${min} to ${max}`;
    }
    if (min !== undefined) {
      return `integer, at least ${min}`;
    }
    return max !== undefined ? `integer, at most ${max}` : 'integer';
  }
  if (call('IsBoolean')) {
    return '`true` or `false`';
  }
  // A pattern's own message says best what it takes ("must be a size such as 64kb ...").
  const matched = stringOption(call('Matches')?.args[1], 'message');
  if (matched) {
    return matched.replace(/^must be /, '');
  }
  const validated = call('Validate')?.args[0];
  if (validated && ts.isIdentifier(validated)) {
    const name = constraints.get(validated.text) ?? validated.text;
    return CONSTRAINT_TYPES[name] ?? name;
  }
  if (call('IsString')) {
    return 'string';
  }
  return property.type ? property.type.getText(file) : 'string';
}

/**
 * The default: the argument of `@int`, `@orDefault` or `@bool`. A `@default` tag in the doc
 * comment explains it (after a literal) or stands for it (a derived default, or none).
 */
function defaultOf(calls: DecoratorCall[], tag: string | undefined): string {
  const fallback = calls.find((call) => ['int', 'orDefault', 'bool'].includes(call.name))?.args[0];
  if (fallback && ts.isStringLiteralLike(fallback)) {
    const literal = fallback.text === '' ? 'none' : code(fallback.text);
    return tag ? `${literal}: ${tag}` : literal;
  }
  return tag ?? 'derived (see the description)';
}

function commentText(comment: string | ts.NodeArray<ts.JSDocComment> | undefined): string {
  return (ts.getTextOfJSDocComment(comment) ?? '').replace(/\s+/g, ' ').trim();
}

/**
 * Every property of the class `className` in `source` (the TypeScript text of the config
 * file), in declaration order: its name, what it takes, its default and its doc comment.
 */
export function readConfigVariables(
  source: string,
  className = 'EnvironmentVariables',
  fileName = 'app.config.ts',
): ConfigVariable[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true);
  const declaration = file.statements.find(
    (statement): statement is ts.ClassDeclaration =>
      ts.isClassDeclaration(statement) && statement.name?.text === className,
  );
  if (!declaration) {
    throw new Error(`No class ${className} in ${fileName}`);
  }
  const constraints = constraintNames(file);
  return declaration.members.filter(ts.isPropertyDeclaration).map((property) => {
    const calls = decoratorCalls(property);
    const docs = ts.getJSDocCommentsAndTags(property).filter(ts.isJSDoc);
    const description = docs.map((doc) => commentText(doc.comment)).join(' ');
    const tag = docs
      .flatMap((doc) => doc.tags ?? [])
      .find((candidate) => candidate.tagName.text === 'default');
    return {
      name: property.name.getText(file),
      type: typeOf(property, calls, constraints, file),
      default: defaultOf(calls, tag ? commentText(tag.comment) : undefined),
      description,
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
