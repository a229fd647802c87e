import { Clock } from '../../src/common/time/clock';

/** A clock that only moves when a test moves it. */
export class FakeClock extends Clock {
  constructor(public time: number) {
    super();
  }
  now(): number {
    return this.time;
  }
  advance(ms: number): void {
    this.time += ms;
  }
}
