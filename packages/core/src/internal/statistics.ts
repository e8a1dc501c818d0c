/**
 * Small statistics Holdout needs everywhere: Student's t quantiles, the standard error and 95%
 * interval of a mean from its sums, and a seeded generator for resampling.
 */

// the 97.5% quantile of Student's t for 1..30 degrees of freedom
const t975 = [
  12.706204736,
  4.302652730,
  3.182446305,
  2.776445105,
  2.570581836,
  2.446911851,
  2.364624252,
  2.306004135,
  2.262157163,
  2.228138852,
  2.200985160,
  2.178812830,
  2.160368656,
  2.144786688,
  2.131449546,
  2.119905299,
  2.109815578,
  2.100922040,
  2.093024054,
  2.085963447,
  2.079613845,
  2.073873068,
  2.068657610,
  2.063898562,
  2.059538553,
  2.055529439,
  2.051830516,
  2.048407142,
  2.045229642,
  2.042272456
]

const z975 = 1.959963984540054

/** The 97.5% quantile of Student's t with `df` degrees of freedom (a Cornish–Fisher expansion past 30). */
export const tQuantile975 = (df: number): number => {
  if (df <= 30) return t975[Math.max(1, Math.floor(df)) - 1]!
  const z = z975
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2) +
    (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
}

/** The standard error and 95% t interval of a mean of `n` values with the given sums; none below two values. */
export const meanInterval = (
  n: number,
  sum: number,
  sumOfSquares: number
):
  | { readonly standardError: number; readonly interval: { readonly lower: number; readonly upper: number } }
  | undefined =>
{
  if (n < 2) return undefined
  const mean = sum / n
  const variance = Math.max(0, (sumOfSquares - n * mean * mean) / (n - 1))
  const standardError = Math.sqrt(variance / n)
  const half = tQuantile975(n - 1) * standardError
  return { standardError, interval: { lower: mean - half, upper: mean + half } }
}

/** sfc32 seeded from four 32-bit words: uniform floats in [0, 1). */
export const generator = (a0: number, b0: number, c0: number, d0: number): () => number => {
  let a = a0 | 0
  let b = b0 | 0
  let c = c0 | 0
  let d = d0 | 0
  return () => {
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
}

/** A generator seeded by a number (for seeded resampling). */
export const seeded = (seed: number): () => number => {
  const random = generator(0x9e3779b9, 0x243f6a88, 0xb7e15162, seed | 0)
  for (let index = 0; index < 12; index++) random()
  return random
}
