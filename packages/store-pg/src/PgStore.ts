/**
 * The PostgreSQL store of a stack: a `Ledger` and a `TaskStore` in one database that many processes
 * on many hosts share. They are the SQL ledger and task store (`@holdout/store-sqlite/sql`) on a
 * `@effect/sql-pg` client: the rules are the same as on SQLite; PostgreSQL decides the reservations
 * of every host exactly (each group-commit batch is one transaction under the ledger's advisory
 * lock) and keeps the non_viewable blocks' secret and the release mechanisms' state (the store's
 * meta values) with the runs. The schema is created and migrated on open.
 *
 * A lost connection or a restarting server is a `StoreError`: reads, and reservations (idempotent by
 * their id), are tried again for a few seconds first; nothing acknowledged is lost, since every
 * acknowledged write was committed (`synchronous_commit` as the server sets it, `on` by default).
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { HoldoutError, type Ledger, type Model, type TaskStore } from "@holdout/core"
import { LedgerSql, TaskStoreSql } from "@holdout/store-sqlite/sql"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

/**
 * Options of a PostgreSQL store: the database's URL (`postgres://user:password@host:port/database`;
 * when omitted, the environment variable `HOLDOUT_PG_URL`) and the budgets of its ledger.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly budgets: ReadonlyArray<Model.SplitBudget>
  /** The most connections this process opens (default 10). */
  readonly maxConnections?: number | undefined
}

/**
 * The URL read when `url` is not given.
 *
 * @since 0.1.0
 * @category constructors
 */
export const urlConfig: Config.Config<Redacted.Redacted<string>> = Config.redacted("HOLDOUT_PG_URL")

type Services = Ledger.Ledger | TaskStore.TaskStore
type Errors = HoldoutError.ConfigError | HoldoutError.StoreError

/**
 * The URL without its password, for messages.
 *
 * @since 0.1.0
 * @category combinators
 */
export const displayUrl = (url: Redacted.Redacted<string>): string =>
  Either.match(Either.try(() => new URL(Redacted.value(url))), {
    onLeft: () => "(an unparsable URL)",
    onRight: (parsed) => {
      if (parsed.password !== "") parsed.password = "***"
      return parsed.toString()
    }
  })

const messageOf = (error: unknown): string => {
  const cause = typeof error === "object" && error !== null && "cause" in error ? error.cause : undefined
  const text = (value: unknown) =>
    typeof value === "object" && value !== null && "message" in value && typeof value.message === "string" &&
      value.message !== ""
      ? value.message
      : typeof value === "object" && value !== null && "code" in value
      ? String(value.code)
      : String(value)
  return cause === undefined ? text(error) : `${text(error)}: ${text(cause)}`
}

/**
 * The URL of the store: `url` when given, else `HOLDOUT_PG_URL`; neither is a `ConfigError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveUrl = (
  url: string | Redacted.Redacted<string> | undefined
): Effect.Effect<Redacted.Redacted<string>, HoldoutError.ConfigError> =>
  url !== undefined
    ? Effect.succeed(typeof url === "string" ? Redacted.make(url) : url)
    : Effect.flatMap(
      Effect.orElseSucceed(Config.option(urlConfig), () => Option.none<Redacted.Redacted<string>>()),
      Option.match({
        onNone: () =>
          Effect.fail(
            new HoldoutError.ConfigError({
              message:
                "No PostgreSQL URL for the store: set store.url in the configuration or the HOLDOUT_PG_URL environment variable."
            })
          ),
        onSome: Effect.succeed
      })
    )

/**
 * A `SqlClient` on the database at `url`; a server that cannot be reached is a `StoreError` naming it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (
  url: Redacted.Redacted<string>,
  options: { readonly maxConnections?: number | undefined } = {}
): Layer.Layer<SqlClient.SqlClient, HoldoutError.StoreError> =>
  Layer.mapError(
    PgClient.layer({ url, maxConnections: options.maxConnections, applicationName: "holdout" }),
    (error) =>
      new HoldoutError.StoreError({
        op: "open",
        message: `Cannot connect to PostgreSQL at ${displayUrl(url)} (${
          messageOf(error)
        }): check that the server runs and accepts this URL (store.url or HOLDOUT_PG_URL).`,
        cause: error
      })
  )

/**
 * Ledger and task store in the PostgreSQL database at `options.url` (or `HOLDOUT_PG_URL`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Services, Errors> =>
  Layer.merge(LedgerSql.layer({ budgets: options.budgets }), TaskStoreSql.layer).pipe(
    Layer.provide(Layer.unwrapEffect(
      Effect.map(resolveUrl(options.url), (url) => layerClient(url, { maxConnections: options.maxConnections }))
    ))
  )
