import { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  SkipThrottle,
  Throttle,
  ThrottlerGuard,
  ThrottlerLimitDetail,
  ThrottlerModuleOptions,
  ThrottlerStorage,
} from '@nestjs/throttler';
import express from 'express';
import fc from 'fast-check';
import { IncomingMessage, ServerResponse } from 'node:http';
import { FastPathThrottlerGuard, PlainThrottler } from './throttler-guard';

/** Counts as the library's in-memory storage does, without its timers; logs every call. */
class CountingStorage implements ThrottlerStorage {
  readonly calls: unknown[][] = [];
  private readonly hits = new Map<string, number>();

  async increment(key: string, ttl: number, limit: number, blockDuration: number, name: string) {
    this.calls.push([key, ttl, limit, blockDuration, name]);
    const totalHits = (this.hits.get(key) ?? 0) + 1;
    this.hits.set(key, totalHits);
    const isBlocked = totalHits > limit;
    return {
      totalHits,
      timeToExpire: Math.ceil(ttl / 1000),
      isBlocked,
      timeToBlockExpire: isBlocked ? Math.ceil(blockDuration / 1000) : 0,
    };
  }
}

interface Setup {
  options: ThrottlerModuleOptions;
  headerPrefix: string;
  /** Whether throwThrottlingException throws, as the library's does, or lets the request on. */
  refuses: boolean;
}

/** The library's guard as it is, with its refusals logged. */
class LibraryGuard extends ThrottlerGuard {
  readonly refusals: ThrottlerLimitDetail[] = [];
  private readonly refuses: boolean;

  constructor(
    setup: Setup,
    readonly storage = new CountingStorage(),
  ) {
    super(setup.options, storage, new Reflector());
    this.headerPrefix = setup.headerPrefix;
    this.refuses = setup.refuses;
  }

  protected override async throwThrottlingException(
    context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    this.refusals.push(detail);
    if (this.refuses) {
      await super.throwThrottlingException(context, detail);
    }
  }
}

/** The fast path, counting a plain route as handleRequest does with the library's tracker. */
class FastGuard extends FastPathThrottlerGuard {
  readonly refusals: ThrottlerLimitDetail[] = [];
  fastCounts = 0;
  private readonly refuses: boolean;

  constructor(
    setup: Setup,
    readonly storage = new CountingStorage(),
  ) {
    super(setup.options, storage, new Reflector());
    this.headerPrefix = setup.headerPrefix;
    this.refuses = setup.refuses;
  }

  protected override countPlain(context: ExecutionContext, plan: PlainThrottler) {
    this.fastCounts++;
    const req = context.switchToHttp().getRequest<Record<string, unknown>>();
    return this.getTracker(req).then((tracker) =>
      this.countOne(context, plan, plan.limit, tracker),
    );
  }

  protected override async throwThrottlingException(
    context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    this.refusals.push(detail);
    if (this.refuses) {
      await super.throwThrottlingException(context, detail);
    }
  }
}

class Routes {
  plain(): void {}

  @SkipThrottle()
  skipped(): void {}

  @Throttle({ default: { limit: 2, ttl: 5_000 } })
  throttled(): void {}
}

@SkipThrottle()
class SkippedRoutes {
  plain(): void {}
}

/** What a guard wrote to a response: each header as set, in order. */
type Written = [string, unknown][];

/** A request from `ip` and the Express response it gets, in the context a guard sees. */
function exchange(
  controller: object,
  handler: object,
  ip: string,
  userAgent = 'test',
): { context: ExecutionContext; written: Written } {
  const req = { ip, headers: { 'user-agent': userAgent }, method: 'POST' };
  const res = new ServerResponse(req as unknown as IncomingMessage);
  // Express's own response: the library sets its headers with res.header.
  Object.setPrototypeOf(res, express.response);
  const written: Written = [];
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name, value) => {
    written.push([name, value]);
    return setHeader(name, value);
  };
  const http = { getRequest: () => req, getResponse: () => res, getNext: () => undefined };
  const context = {
    getClass: () => controller,
    getHandler: () => handler,
    getType: () => 'http',
    switchToHttp: () => http,
  } as unknown as ExecutionContext;
  return { context, written };
}

type Outcome = { allowed: boolean } | { refused: string };

async function outcomeOf(guard: ThrottlerGuard, context: ExecutionContext): Promise<Outcome> {
  try {
    return { allowed: await guard.canActivate(context) };
  } catch (error) {
    return { refused: `${(error as Error).constructor.name}: ${(error as Error).message}` };
  }
}

/** Sends the same requests through both guards and expects the same of each. */
async function expectSame(
  setup: Setup,
  controller: object,
  handler: object,
  ips: string[],
  userAgent?: string,
): Promise<{ fast: FastGuard; library: LibraryGuard }> {
  const library = new LibraryGuard(setup);
  const fast = new FastGuard(setup);
  await library.onModuleInit();
  await fast.onModuleInit();
  for (const ip of ips) {
    const a = exchange(controller, handler, ip, userAgent);
    const b = exchange(controller, handler, ip, userAgent);

    const [expected, actual] = [
      await outcomeOf(library, a.context),
      await outcomeOf(fast, b.context),
    ];

    expect(actual).toEqual(expected);
    expect(b.written).toEqual(a.written);
  }
  expect(fast.storage.calls).toEqual(library.storage.calls);
  expect(fast.refusals).toEqual(library.refusals);
  return { fast, library };
}

const IPS = ['127.0.0.1', '10.0.0.7', '::1', '2001:db8::1', '2001:db8::2', '::ffff:10.0.0.7'];

describe('the throttler fast path (FastPathThrottlerGuard)', () => {
  it('counts a plain route as ThrottlerGuard.handleRequest does: storage calls, headers, refusals', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          name: fc.constantFrom(undefined, 'default', 'burst'),
          limit: fc.integer({ min: 1, max: 4 }),
          ttl: fc.integer({ min: 1, max: 120_000 }),
          blockDuration: fc.option(fc.integer({ min: 1, max: 120_000 }), { nil: undefined }),
          setHeaders: fc.constantFrom(undefined, true, false),
          commonSetHeaders: fc.constantFrom(undefined, true, false),
          asArray: fc.boolean(),
          headerPrefix: fc.constantFrom('X-RateLimit', 'RateLimit'),
          refuses: fc.boolean(),
          ips: fc.array(fc.constantFrom(...IPS), { minLength: 1, maxLength: 12 }),
        }),
        async ({ commonSetHeaders, asArray, headerPrefix, refuses, ips, ...throttler }) => {
          const throttlers = [throttler];
          const options: ThrottlerModuleOptions = asArray
            ? throttlers
            : { throttlers, setHeaders: commonSetHeaders };

          const { fast } = await expectSame(
            { options, headerPrefix, refuses },
            Routes,
            Routes.prototype.plain,
            ips,
          );

          expect(fast.fastCounts).toBe(ips.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  const refusing = { headerPrefix: 'RateLimit', refuses: true };
  const throttler = { limit: 2, ttl: 60_000 };
  const ips = ['127.0.0.1', '127.0.0.1', '127.0.0.1', '::1'];

  it.each([
    ['a route with @SkipThrottle', Routes, Routes.prototype.skipped, [throttler]],
    ['a route with @Throttle', Routes, Routes.prototype.throttled, [throttler]],
    ['a controller with @SkipThrottle', SkippedRoutes, SkippedRoutes.prototype.plain, [throttler]],
    ['two throttlers', Routes, Routes.prototype.plain, [throttler, { ...throttler, name: 'b' }]],
    [
      'a limit worked out per request',
      Routes,
      Routes.prototype.plain,
      [{ ...throttler, limit: () => 1 }],
    ],
    [
      'a ttl given as text',
      Routes,
      Routes.prototype.plain,
      [{ ...throttler, ttl: '60000' as unknown as number }],
    ],
    ['a throttler skipIf', Routes, Routes.prototype.plain, [{ ...throttler, skipIf: () => false }]],
    [
      'a throttler tracker',
      Routes,
      Routes.prototype.plain,
      [{ ...throttler, getTracker: () => 'x' }],
    ],
    ['a throttler key', Routes, Routes.prototype.plain, [{ ...throttler, generateKey: () => 'k' }]],
    [
      'ignored user agents',
      Routes,
      Routes.prototype.plain,
      [{ ...throttler, ignoreUserAgents: [/bot/] }],
    ],
  ] as [string, object, object, ThrottlerModuleOptions][])(
    'leaves %s to the library',
    async (_case, controller, handler, options) => {
      const { fast } = await expectSame(
        { ...refusing, options },
        controller,
        handler,
        ips,
        'a bot',
      );

      expect(fast.fastCounts).toBe(0);
    },
  );

  it('leaves every route to the library when skipIf is set for all', async () => {
    const options = { throttlers: [throttler], skipIf: () => false };

    const { fast } = await expectSame(
      { ...refusing, options },
      Routes,
      Routes.prototype.plain,
      ips,
    );

    expect(fast.fastCounts).toBe(0);
  });

  it('leaves every route to the library when a subclass decides what to skip', async () => {
    class Skipping extends FastGuard {
      protected override async shouldSkip(): Promise<boolean> {
        return false;
      }
    }
    const guard = new Skipping({ ...refusing, options: [throttler] });
    await guard.onModuleInit();

    await guard.canActivate(exchange(Routes, Routes.prototype.plain, '::1').context);

    expect(guard.fastCounts).toBe(0);
    expect(guard.storage.calls).toHaveLength(1);
  });
});
