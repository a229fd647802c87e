/**
 * An override that fails, in `files`, an import from any of `folders` (under src/), with
 * `message` saying where the import should go instead.
 */
function importsNone(files, folders, message, excludedFiles = []) {
  return {
    files,
    excludedFiles,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: folders.flatMap((folder) => [`**/${folder}`, `**/${folder}/**`]), message },
          ],
        },
      ],
    },
  };
}

module.exports = {
  root: true,
  parser: '@typescript-eslint/parser',
  parserOptions: {
    project: 'tsconfig.json',
    tsconfigRootDir: __dirname,
    sourceType: 'module',
  },
  plugins: ['@typescript-eslint'],
  extends: [
    'plugin:@typescript-eslint/recommended',
    'plugin:prettier/recommended',
  ],
  env: { node: true, jest: true },
  ignorePatterns: ['.eslintrc.js', 'dist', 'node_modules', 'coverage'],
  rules: {
    '@typescript-eslint/no-floating-promises': 'error',
    '@typescript-eslint/no-misused-promises': 'error',
    '@typescript-eslint/await-thenable': 'error',
    '@typescript-eslint/no-explicit-any': 'error',
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    eqeqeq: ['error', 'always'],
    curly: ['error', 'all'],
  },
  overrides: [
    // conversations/ may import access/, never the other way: access control and rate
    // limits reach the store through ports of their own, which the store module provides.
    importsNone(
      ['src/access/**/*.ts'],
      ['conversations'],
      'access/ must not import conversations/: give access/ a port the store module provides.',
    ),
    // What every feature builds on imports no feature, so nothing there points upward. Specs
    // may: they check these pieces against the features' own DTOs.
    importsNone(
      ['src/common/**/*.ts', 'src/http/**/*.ts'],
      [
        'access',
        'cluster',
        'console',
        'conversations',
        'docs-tools',
        'eviction',
        'health',
        'observability',
        'snapshot',
        'app.module',
        'app.setup',
      ],
      'common/ and http/ import no feature: move the shared piece down here.',
      ['*.spec.ts'],
    ),
  ],
};
