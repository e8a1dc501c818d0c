/**
 * The viewer's one HTML page: inline styles and script, no request outside the page's origin (a
 * content security policy says so to the browser too). Live, it reads `api/…` beside itself; as a
 * report, the data is embedded and it makes no request at all.
 *
 * @internal
 */
import { script, styles } from "./client.js"
import type { Embedded } from "./data.js"

const escape = (value: string) =>
  value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** JSON inside a script element: `<` escaped, so no `</script>` or `<!--` can end or bend it. */
const embed = (data: Embedded) =>
  JSON.stringify(data).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029")

/** The content security policy: inline code only; the live page may read its own origin, a report nothing. */
export const contentSecurityPolicy = (live: boolean) =>
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; " +
  `connect-src ${live ? "'self'" : "'none'"}; base-uri 'none'; form-action 'none'`

/** The page, live (no data given) or as a self-contained report (data embedded). */
export const render = (options: { readonly title: string; readonly embedded?: Embedded }): string => {
  const live = options.embedded === undefined
  const data = options.embedded === undefined
    ? ""
    : `<script type="application/json" id="holdout-data">${embed(options.embedded)}</script>\n`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escape(contentSecurityPolicy(live))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(options.title)}</title>
<style>${styles}</style>
</head><body>
<header><h1>${escape(options.title)}</h1><span id="live" class="off">${
    live ? "connecting" : "report"
  }</span><span id="generated" class="muted"></span>
<nav><a href="#runs-over-time">over time</a><a href="#scores">scores</a><a href="#budgets">budgets</a><a href="#verifier">verifier</a><a href="#failed">failed</a><a href="#runs">runs</a><a href="#samples">samples</a><a href="#compare">compare</a></nav></header>
<main>
<noscript><p>This page draws its views with its own inline script: open it in a browser with JavaScript on.</p></noscript>
<div id="errors"></div>
<section id="runs-over-time"><h2>Runs over time</h2><div id="runs-over-time-body"></div></section>
<section id="scores"><h2>Score per candidate</h2><div id="scores-body"></div>
<p class="note">The mean of each candidate's newest run on a split with its 95% interval (at block level for an optimizer's run of a non_viewable split); these are exact means, also where the optimizer was told a released one.</p></section>
<section id="budgets"><h2>Budgets</h2><div id="budgets-body"></div></section>
<section id="verifier"><h2>Verifier</h2><div id="verifier-body"></div></section>
<section id="failed"><h2>Failed runs</h2><div id="failed-body"></div></section>
<section id="runs"><h2>Runs</h2><div id="runs-body"></div></section>
<section id="samples"><h2>Samples</h2>
<p class="note">Per-sample results of runs on viewable splits; other splits are shown in aggregate only.</p>
<div class="controls"><select id="sample-run"></select>
<label>show <select id="sample-status"><option value="all">all</option><option value="wrong">errors and score below 1</option><option value="errors">errors</option><option value="right">score 1</option></select></label>
<label>containing <input id="sample-text" type="search" placeholder="text in output, input, error"></label>
<button id="samples-more" type="button" disabled>load more</button></div>
<div id="samples-note" class="note"></div>
<table id="samples-table"><thead><tr></tr></thead><tbody id="samples-table-body"></tbody></table></section>
<section id="compare"><h2>Compare candidates</h2>
<p class="note">Two candidates' newest runs on a viewable split, paired by sample.</p>
<div class="controls"><label>split <select id="compare-split"></select></label><label>A <select id="compare-a"></select></label>
<label>B <select id="compare-b"></select></label><button id="compare-run" type="button">compare</button></div>
<div id="compare-body"></div></section>
</main>
${data}<script>${script}</script>
</body></html>
`
}
