import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, Max, Min, ValidateIf } from 'class-validator';
import { DecimalInteger } from '../../common/validation/decimal-integer';

export const PAGE_LIMIT_DEFAULT = 50;
export const PAGE_LIMIT_MAX = 200;

/** GET /api/conversations/:id/messages: at most one cursor, and a limit. */
export class PageQueryDto {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: PAGE_LIMIT_MAX,
    default: PAGE_LIMIT_DEFAULT,
  })
  @Max(PAGE_LIMIT_MAX, { message: `limit must be at most ${PAGE_LIMIT_MAX}` })
  @Min(1, { message: 'limit must be at least 1' })
  @IsInt({ message: 'limit must be an integer' })
  @DecimalInteger()
  @ValidateIf((_dto: unknown, value: unknown) => value !== undefined)
  limit?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    description: 'The messages that follow this seq (catching up).',
  })
  @Min(0, { message: 'after must not be negative' })
  @IsInt({ message: 'after must be an integer seq' })
  @DecimalInteger()
  @ValidateIf((_dto: unknown, value: unknown) => value !== undefined)
  after?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'The messages that precede this seq (scrolling back). Not with `after`.',
  })
  @Min(1, { message: 'before must be at least 1' })
  @IsInt({ message: 'before must be an integer seq' })
  @DecimalInteger()
  @ValidateIf((_dto: unknown, value: unknown) => value !== undefined)
  before?: number;
}
