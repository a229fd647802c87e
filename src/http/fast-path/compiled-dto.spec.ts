import { ArgumentMetadata, HttpException } from '@nestjs/common';
import fc from 'fast-check';
import { AppValidationPipe } from '../../common/validation/validation.pipe';
import { CreateMessageDto } from '../../conversations/dto/create-message.dto';
import { PageQueryDto } from '../../conversations/dto/page-query.dto';
import { ReadDto, TypingDto } from '../../conversations/dto/signal.dto';
import { compileDto } from './compiled-dto';

type Outcome =
  | { ok: true; prototype: object | null; entries: [string, unknown][] }
  | { ok: false; status: number; body: unknown; code: unknown; errors: unknown };

async function outcome(pipe: AppValidationPipe, value: unknown, metadata: ArgumentMetadata) {
  try {
    const result = (await pipe.transform(value, metadata)) as object;
    return {
      ok: true,
      prototype: Object.getPrototypeOf(result) as object | null,
      entries: Object.entries(result),
    } as Outcome;
  } catch (error) {
    if (!(error instanceof HttpException)) {
      throw error;
    }
    const { code, errors } = error as HttpException & { code?: unknown; errors?: unknown };
    return { ok: false, status: error.getStatus(), body: error.getResponse(), code, errors };
  }
}

/** Bodies near the DTOs' rules: their fields and others, with values on both sides of each rule. */
const fieldValue = fc.oneof(
  fc.constantFrom('customer', 'agent', 'Agent', '', ' ', '\t\n', 'x', 'hello'),
  fc.string({ maxLength: 8 }),
  fc.constantFrom(0, -1, 1, 1.5, 2 ** 53, 2 ** 53 - 1, -0, 1e21, 3),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom([], {}, ['customer'], { sender: 'agent' }),
);
/** Mostly values a rule accepts, so that bodies pass as often as they fail. */
const valid = <T>(good: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 3 }, fieldValue);
const sender = valid(fc.constantFrom('customer', 'agent'));
const integer = valid(fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 53 - 1)));
const FIELDS: Record<string, fc.Arbitrary<unknown>> = {
  sender,
  content: valid(fc.string({ minLength: 1, maxLength: 12 })),
  timestamp: integer,
  typing: valid(fc.boolean()),
  seq: integer,
};
/** A DTO's fields, each present or not, and now and then a field it does not have. */
const forDto = (keys: string[]) =>
  fc
    .tuple(
      fc.record(Object.fromEntries(keys.map((key) => [key, FIELDS[key]])), { requiredKeys: [] }),
      fc.option(
        fc.tuple(fc.constantFrom('extra', 'toString', ...Object.keys(FIELDS)), fieldValue),
        { freq: 8 },
      ),
    )
    .map(([fields, other]) =>
      other && !(other[0] in fields) ? { ...fields, [other[0]]: other[1] } : fields,
    );
const BODIES = new Map<unknown, fc.Arbitrary<Record<string, unknown>>>([
  [CreateMessageDto, forDto(['sender', 'content', 'timestamp'])],
  [TypingDto, forDto(['sender', 'typing'])],
  [ReadDto, forDto(['sender', 'seq'])],
]);

describe('compileDto, in AppValidationPipe against class-validator', () => {
  const fast = new AppValidationPipe();
  const reference = new AppValidationPipe(false);

  it.each([CreateMessageDto, TypingDto, ReadDto])(
    'compiles %p and answers every body exactly as class-validator does',
    async (metatype) => {
      expect(compileDto(metatype)).not.toBeNull();
      const metadata: ArgumentMetadata = { type: 'body', metatype };
      await fc.assert(
        fc.asyncProperty(BODIES.get(metatype)!, async (value) => {
          const copy = structuredClone(value);
          expect(await outcome(fast, value, metadata)).toEqual(
            await outcome(reference, copy, metadata),
          );
        }),
        { numRuns: 1500 },
      );
    },
  );

  it('takes the compiled path for a valid body: no class-validator run', async () => {
    const metadata: ArgumentMetadata = { type: 'body', metatype: CreateMessageDto };
    const result = fast.transform({ sender: 'agent', content: 'hi', timestamp: 5 }, metadata);
    // A plain value, not a promise: the compiled check accepted it synchronously.
    expect(result).toBeInstanceOf(CreateMessageDto);
    expect(result).toEqual({ sender: 'agent', content: 'hi', timestamp: 5 });
    // An invalid body still gets class-validator's errors.
    await expect(
      fast.transform({ sender: 'agent', content: '  ' }, metadata) as Promise<unknown>,
    ).rejects.toMatchObject({
      code: 'validation_failed',
      errors: [{ field: 'content', message: 'content must not be empty or only whitespace' }],
    });
  });

  it('does not compile a DTO with a class-transformer decorator: its transforms must run', async () => {
    expect(compileDto(PageQueryDto)).toBeNull();
    const result = await fast.transform({ limit: '20' }, { type: 'query', metatype: PageQueryDto });
    expect(result).toEqual({ limit: 20 });
  });
});
