import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'models/.cache/', 'src/api/console/vendor/', 'test/.artifacts/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The web console is plain browser ES modules served as is (no bundler).
    files: ['src/api/console/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'sessionStorage',
          'fetch',
          'Node',
          'CSS',
          'EventSource',
          'URL',
          'URLSearchParams',
          'performance',
          'requestAnimationFrame',
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'clearInterval',
          'confirm',
          'devicePixelRatio',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    // Plain Node scripts shipped as is (the container's HEALTHCHECK).
    files: ['**/*.mjs'],
    languageOptions: {
      globals: Object.fromEntries(
        ['process', 'URL', 'console', 'setTimeout', 'fetch'].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
