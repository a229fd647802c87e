import { Injectable, PipeTransform } from '@nestjs/common';
import { ValidationFailedException } from '../errors/problem.catalogue';

/** For routes that take no body: nothing, or an empty JSON object, and no unknown fields. */
@Injectable()
export class EmptyBodyPipe implements PipeTransform<unknown, void> {
  transform(value: unknown): void {
    if (value === undefined) {
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ValidationFailedException([
        { field: '(body)', message: 'the body must be empty or a JSON object' },
      ]);
    }
    const unknown = Object.keys(value);
    if (unknown.length > 0) {
      throw new ValidationFailedException(
        unknown.map((field) => ({ field, message: `property ${field} should not exist` })),
      );
    }
  }
}
