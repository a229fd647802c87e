import { Injectable, PipeTransform } from '@nestjs/common';
import { isUUID } from 'class-validator';

/**
 * Accepts a UUID (normalized to lower case) and turns anything else into the given
 * not-found problem: an id that can't exist is as unknown as one that doesn't.
 */
@Injectable()
export class UuidOrNotFoundPipe implements PipeTransform<string, string> {
  constructor(private readonly notFound: () => Error) {}

  transform(value: string): string {
    if (!isUUID(value)) {
      throw this.notFound();
    }
    return value.toLowerCase();
  }
}
