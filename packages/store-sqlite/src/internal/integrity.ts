/**
 * What an existing database file must look like before the stores open it. A missing file is a
 * new store; an existing one that is empty, does not start with SQLite's header, or holds tables
 * that are not Holdout's is refused with `LedgerCorrupt`, rather than opened as fresh budgets (an
 * empty file is a valid empty database to SQLite, and the migrations would happily create the
 * tables in someone else's database).
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as SqlClient from "@effect/sql/SqlClient"
import { HoldoutError } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { storeOp } from "./errors.js"
import * as Tables from "./schema.js"
import * as Transaction from "./transaction.js"

/** The first 16 bytes of every SQLite database file. */
const sqliteHeader = "SQLite format 3\u0000"

const startOver = (filename: string) =>
  `Nothing was changed. Restore it from a backup, or to start over with fresh budgets, move ${filename} ` +
  `(and its -wal and -shm files) aside.`

const corrupt = (filename: string, what: string) =>
  new HoldoutError.LedgerCorrupt({ location: filename, message: `The database ${what}. ${startOver(filename)}` })

/**
 * Checks the file before a client opens it: `true` when it does not exist yet (its directory is
 * then created), `false` when it is an existing SQLite file.
 */
export const checkFile = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  filename: string
): Effect.Effect<boolean, HoldoutError.LedgerCorrupt> =>
  Effect.gen(function*() {
    const ioCorrupt = (error: { readonly message: string }) => corrupt(filename, `cannot be read (${error.message})`)
    const exists = yield* Effect.mapError(fs.exists(filename), ioCorrupt)
    if (!exists) {
      yield* fs.makeDirectory(path.dirname(filename), { recursive: true }).pipe(Effect.mapError(ioCorrupt))
      return true
    }
    const stat = yield* Effect.mapError(fs.stat(filename), ioCorrupt)
    if (stat.type !== "File") return yield* corrupt(filename, "is not a file")
    if (Number(stat.size) === 0) return yield* corrupt(filename, "file is empty (0 bytes)")
    const head = yield* Effect.scoped(
      Effect.flatMap(fs.open(filename, { flag: "r" }), (file) => file.readAlloc(16))
    ).pipe(Effect.mapError(ioCorrupt))
    const text = Option.match(head, { onNone: () => "", onSome: (bytes) => new TextDecoder("latin1").decode(bytes) })
    if (text !== sqliteHeader) return yield* corrupt(filename, "file does not start with SQLite's header")
    return false
  })

/**
 * Creates a new store's database so that the file never exists empty: the schema is created in a
 * file of its own (`<filename>.<random>.init`), checkpointed, and then hard-linked to `filename`,
 * which fails if another process created it meanwhile (then that one is used). A crash before the
 * link leaves only the `.init` file, and the next open starts again.
 */
export const createFresh = <E>(
  fs: FileSystem.FileSystem,
  filename: string,
  client: (filename: string) => Layer.Layer<SqlClient.SqlClient, E>
): Effect.Effect<void, E | HoldoutError.StoreError | HoldoutError.LedgerCorrupt> =>
  Effect.gen(function*() {
    const init = `${filename}.${globalThis.crypto.randomUUID()}.init`
    const removeInit = Effect.forEach(["", "-wal", "-shm", "-journal"], (suffix) =>
      Effect.ignore(fs.remove(init + suffix)), {
      discard: true
    })
    yield* Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(client(init))
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Tables.configure
        yield* Tables.migrate
        yield* sql.unsafe("PRAGMA wal_checkpoint(TRUNCATE)")
      }).pipe(Effect.provide(context), storeOp("open"))
    })).pipe(Effect.onError(() =>
      removeInit
    ))
    // complete and closed: into place, unless another process was first (then its store is used)
    yield* fs.link(init, filename).pipe(
      Effect.catchAll((error) =>
        error._tag === "SystemError" && error.reason === "AlreadyExists"
          ? Effect.void
          : Effect.fail(corrupt(filename, `could not be created (${error.message})`))
      ),
      Effect.ensuring(removeInit)
    )
  })

/** Checks, on an open client, that a database with tables is a Holdout store. */
export const checkTables = (filename: string): Effect.Effect<void, HoldoutError.LedgerCorrupt, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`.pipe(
      Effect.mapError((error) => corrupt(filename, `cannot be read as SQLite (${error.message})`))
    )
    const names = new Set(rows.map((row) => row.name).filter((name) => !name.startsWith("sqlite_")))
    if (names.size === 0) return
    if (!names.has("holdout_migrations") || !names.has("holdout_reservations")) {
      return yield* corrupt(filename, "holds tables that are not a Holdout store's")
    }
  })

/** On a clean close, moves the write-ahead log into the main file, so that the main file is complete. */
export const checkpointOnClose = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.addFinalizer(() => Effect.ignore(Transaction.exclusive(sql, sql.unsafe("PRAGMA wal_checkpoint(TRUNCATE)"))))
)
