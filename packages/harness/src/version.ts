/**
 * The version of `@holdout/harness`, as its `package.json` gives it (a test keeps the two equal):
 * shown by `holdout --version` and in the sidecar's OpenAPI document.
 *
 * @since 0.1.0
 * @category constants
 */
export const version = "0.1.0"
