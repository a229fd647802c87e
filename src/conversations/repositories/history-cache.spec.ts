import { HistoryCache } from './history-cache';

/** A clock the test moves by hand. */
class ManualClock {
  time = 1_000_000;
  readonly now = (): number => this.time;
}

const version = { life: 1, version: 1 };

describe('HistoryCache', () => {
  it('charges each entry 512 characters besides its text, so many short histories are bounded too', () => {
    const bound = 64 * 1024;
    const text = ['{"m":1}'];
    const cache = new HistoryCache(bound, Infinity);
    for (let i = 0; i < 10_000; i += 1) {
      cache.set(`c${i}`, version, text);
    }
    const perEntry = 512 + text[0].length;
    expect(cache.size).toBeLessThanOrEqual(Math.floor(bound / perEntry));
    expect(cache.charged).toBeLessThanOrEqual(bound);
    expect(cache.charged).toBe(cache.size * perEntry);
  });

  it('drops an entry not read for the idle time when it is next looked up', () => {
    const clock = new ManualClock();
    const idleMs = 60_000;
    const cache = new HistoryCache(1024 * 1024, idleMs, clock.now);
    cache.set('a', version, ['x']);
    clock.time += idleMs - 1;
    expect(cache.get('a')).toBeDefined(); // a read renews it
    clock.time += idleMs - 1;
    expect(cache.get('a')).toBeDefined();
    clock.time += idleMs;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.charged).toBe(0);
  });

  it('sweeps the entries not read for the idle time when another is stored', () => {
    const clock = new ManualClock();
    const idleMs = 60_000;
    const cache = new HistoryCache(1024 * 1024, idleMs, clock.now);
    for (let i = 0; i < 100; i += 1) {
      cache.set(`old${i}`, version, ['x']);
    }
    clock.time += idleMs / 2;
    cache.set('read', version, ['x']);
    expect(cache.get('old0')).toBeDefined(); // read: kept
    clock.time += idleMs / 2;
    cache.set('new', version, ['x']);
    expect(cache.size).toBe(3); // old0 (read at half time), read, new
    expect(cache.get('old1')).toBeUndefined();
    expect(cache.get('old0')).toBeDefined();
    expect(cache.get('read')).toBeDefined();
  });
});
