import {
  IsBoolean,
  IsIn,
  IsInt,
  IsString,
  Matches,
  Max,
  Min,
  Validate,
  ValidationError,
  ValidatorConstraintInterface,
  validateSync,
} from 'class-validator';

/*
 * How an environment variable is declared (app.config.ts declares them all): what it takes,
 * its default, and the settings group it feeds. From the declarations come the validated
 * class (class-validator's decorators, applied here), the reading of the environment, the
 * settings' plain fields (app.settings.ts) and the configuration reference (docs-tools).
 */

/** The environment as given: process.env, or what a test passes. */
export type Environment = Readonly<Record<string, unknown>>;

/** What a default may depend on besides the other variables. */
export interface DefaultContext {
  /** Whether stdout is a terminal (a cluster's workers share the primary's stdout). */
  readonly stdoutIsTTY: boolean;
}

/**
 * What a variable takes: how its text is read, the validators that check it, and what the
 * configuration reference says it takes.
 */
export class Kind<T> {
  /** Type only: the value a valid text gives. */
  declare readonly value: T;

  constructor(
    /** The value when the text has the form; else the text, for a validator to refuse and quote. */
    readonly read: (text: string) => unknown,
    /** class-validator property decorators, listed as they would be written on a property. */
    readonly validators: readonly PropertyDecorator[],
    /** Markdown for the reference's "Takes" column. */
    readonly summary: string,
  ) {}
}

const code = (text: string) => '`' + text + '`';

/** Integers are read strictly: `3000abc`, `1e3` and `12.5` are refused rather than truncated. */
export function integer({ min, max }: { min?: number; max?: number } = {}): Kind<number> {
  const range =
    min !== undefined && max !== undefined
      ? `, ${min} to ${max}`
      : min !== undefined
        ? `, at least ${min}`
        : max !== undefined
          ? `, at most ${max}`
          : '';
  return new Kind<number>(
    (text) => (/^-?\d+$/.test(text) ? Number(text) : text),
    [IsInt(), ...(min === undefined ? [] : [Min(min)]), ...(max === undefined ? [] : [Max(max)])],
    `integer${range}`,
  );
}

/** `true` or `false`, in any case; anything else is refused. */
export function flag(message?: string): Kind<boolean> {
  return new Kind<boolean>(
    (text) => {
      const word = text.toLowerCase();
      return word === 'true' ? true : word === 'false' ? false : word;
    },
    [IsBoolean(message === undefined ? undefined : { message })],
    '`true` or `false`',
  );
}

export function oneOf<const T extends string>(values: readonly T[]): Kind<T> {
  return new Kind<T>((text) => text, [IsIn(values)], 'one of ' + values.map(code).join(', '));
}

/** One check of a text, and what the reference says the text takes when it is the first. */
export interface TextRule {
  readonly validator: PropertyDecorator;
  readonly summary: string;
}

/** Text that passes every rule (any text when there is none); the reference quotes the first. */
export function text(...rules: readonly TextRule[]): Kind<string> {
  const checks = rules.length > 0 ? rules : [{ validator: IsString(), summary: 'string' }];
  return new Kind<string>(
    (value) => value,
    checks.map((rule) => rule.validator),
    checks[0].summary,
  );
}

/** A pattern; its message says best what it takes ("must be a size such as 64kb ..."). */
export function matching(pattern: RegExp, message: string): TextRule {
  return { validator: Matches(pattern, { message }), summary: message.replace(/^must be /, '') };
}

/** A class-validator constraint that says, as `takes`, what it accepts. */
export function checkedBy(
  constraint: (new () => ValidatorConstraintInterface) & { readonly takes: string },
): TextRule {
  return { validator: Validate(constraint), summary: constraint.takes };
}

/** One environment variable, declared once. */
export interface Declaration<
  T = unknown,
  G extends string = string,
  F extends string = string,
  S = unknown,
> {
  readonly takes: Kind<T>;
  /**
   * Used when the variable is unset or empty: a text, or one derived from the other variables
   * (as given) or from the process.
   */
  readonly default: string | ((env: Environment, context: DefaultContext) => string);
  /** A blank value (only spaces) counts as unset too. */
  readonly blankIsUnset?: true;
  /** The settings group it feeds (app.settings.ts). */
  readonly group: G;
  /** The field of its group it fills; none when only the group's derivations read it. */
  readonly field?: F;
  /** How the field reads the value; as it is when there is no `as`. */
  as?(value: T): S;
}

/** A declaration, with its value, group and field types kept for the settings. */
export function variable<T, G extends string, F extends string = never, S = T>(
  declaration: Declaration<T, G, F, S>,
): Declaration<T, G, F, S> {
  return declaration;
}

export type Declarations = Readonly<Record<string, Declaration>>;

/** The variables' values, as validated. */
export type ValuesOf<D extends Declarations> = {
  readonly [N in keyof D]: D[N]['takes']['value'];
};

export class ConfigValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigValidationError';
  }
}

function describe(error: ValidationError): string {
  const received = error.value === undefined ? '' : ` (got ${JSON.stringify(error.value)})`;
  return `${error.property} ${Object.values(error.constraints ?? {}).join('; ')}${received}`;
}

/** What an environment gives: every declared variable's value, and what is wrong with them. */
export interface Reading<D extends Declarations> {
  readonly values: ValuesOf<D>;
  /** One line per bad variable ("NAME must ... (got "x")"), in declaration order. */
  readonly problems: string[];
}

/**
 * Reads the declared variables from an environment: each one's default when it is unset or
 * empty, its text trimmed and read by its kind, then every value validated by class-validator.
 * Variables that are not declared are ignored.
 */
export function environmentReader<D extends Declarations>(
  declarations: D,
): (env: Environment, context: DefaultContext) => Reading<D> {
  // class-validator validates instances of a decorated class: this one carries every variable.
  class EnvironmentVariables {}
  for (const [name, { takes }] of Object.entries(declarations)) {
    // Last listed first, as TypeScript applies a property's decorators.
    for (const decorate of [...takes.validators].reverse()) {
      decorate(EnvironmentVariables.prototype, name);
    }
  }
  return (env, context) => {
    const values = new EnvironmentVariables() as Record<string, unknown>;
    for (const [name, declaration] of Object.entries(declarations)) {
      const given = env[name];
      const unset =
        given === undefined ||
        given === '' ||
        (declaration.blankIsUnset === true && (typeof given !== 'string' || given.trim() === ''));
      const fallback = declaration.default;
      const text = !unset
        ? String(given).trim()
        : typeof fallback === 'string'
          ? fallback
          : fallback(env, context);
      values[name] = declaration.takes.read(text);
    }
    const problems = validateSync(values, { skipMissingProperties: false }).map(describe);
    return { values: values as ValuesOf<D>, problems };
  };
}
