// ESLint for the whole repository: a small set of correctness rules, the type conventions of CONVENTIONS,
// and the code style enforced through `@effect/dprint` (dprint's TypeScript formatter run as an ESLint rule,
// from npm packages only). `npm run lint` checks; `npm run lint:fix` also rewrites the formatting.
import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import { defineConfig, globalIgnores } from "eslint/config"
import globals from "globals"
import tseslint from "typescript-eslint"

export default defineConfig(
  globalIgnores([
    "**/node_modules/",
    "**/dist/",
    "**/build/",
    "**/coverage/",
    "**/.tsbuild/",
    "**/.holdout/",
    ".ci/out/",
    // recorded Harbor job directories and example task trees: data, not code
    "packages/strategy-harbor/test/fixtures/jobs/",
    "examples/harbor/tasks/"
  ]),
  js.configs.recommended,
  tseslint.configs.recommended,
  effectEslint.configs.dprint,
  {
    files: ["**/*.{ts,mts,cts,js,mjs,cjs}"],
    languageOptions: {
      parser: tseslint.parser,
      ecmaVersion: "latest",
      sourceType: "module",
      globals: globals.node
    },
    linterOptions: {
      reportUnusedDisableDirectives: "error"
    },
    rules: {
      // Effect.gen bodies need not yield
      "require-yield": "off",
      "object-shorthand": "error",

      "no-unused-vars": "off",
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrorsIgnorePattern: "^_",
          destructuredArrayIgnorePattern: "^_",
          ignoreRestSiblings: true
        }
      ],
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/consistent-type-imports": [
        "error",
        { prefer: "type-imports", fixStyle: "separate-type-imports" }
      ],

      "@effect/dprint": [
        "error",
        {
          config: {
            indentWidth: 2,
            lineWidth: 120,
            semiColons: "asi",
            quoteStyle: "alwaysDouble",
            trailingCommas: "never",
            operatorPosition: "maintain",
            "arrowFunction.useParentheses": "force"
          }
        }
      ]
    }
  },
  {
    // library code reports through Effect (logs, the Console service, the CLI's renderer), never console.*
    files: ["packages/*/src/**/*.ts"],
    rules: {
      "no-console": "error",
      // a library handles data sets of any size: spreading a large array into push overflows the stack
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.property.name='push'] > SpreadElement.arguments",
          message: "Do not spread arguments into Array.push (stack overflow on large arrays): use a loop or concat"
        }
      ]
    }
  },
  {
    // core's modules stay small enough to read whole: at most 400 lines, counted as `wc -l` counts them
    files: ["packages/core/src/**/*.ts"],
    rules: {
      "max-lines": ["error", { max: 400, skipBlankLines: false, skipComments: false }]
    }
  }
)
