/**
 * "Did you mean …?" for a name that is not one of the known names: the closest known name by edit
 * distance, when it is close enough to be a typo (at most a third of the name's length, at least 1).
 */

/** The Levenshtein distance of two strings (insertions, deletions and substitutions cost 1). */
const distance = (left: string, right: string): number => {
  let previous = Array.from({ length: right.length + 1 }, (_, index) => index)
  for (let i = 1; i <= left.length; i++) {
    const current = [i]
    for (let j = 1; j <= right.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (left[i - 1] === right[j - 1] ? 0 : 1)
      )
    }
    previous = current
  }
  return previous[right.length]!
}

/**
 * The known name closest to `name`, if one is close enough to be what was meant; names are compared
 * regardless of case unless `options.ignoreCase` is `false`.
 */
export const closest = (
  name: string,
  known: Iterable<string>,
  options: { readonly ignoreCase?: boolean } = {}
): string | undefined => {
  const fold = options.ignoreCase === false ? (text: string) => text : (text: string) => text.toLowerCase()
  const limit = Math.max(1, Math.floor(name.length / 3))
  let best: { readonly name: string; readonly distance: number } | undefined
  for (const candidate of known) {
    const d = distance(fold(name), fold(candidate))
    if (d <= limit && (best === undefined || d < best.distance)) best = { name: candidate, distance: d }
  }
  return best?.name
}

/** ` Did you mean "validation"?`, or nothing when no known name is close. */
export const didYouMean = (name: string, known: Iterable<string>): string => {
  const match = closest(name, known)
  return match === undefined ? "" : ` Did you mean "${match}"?`
}
