// Loads Flagon pages in headless Chromium and reports, as one JSON line on stdout, whether any
// XSS payload ran and what the browser holds of the session cookie. Driven by
// tests/all/browser.rs, which starts the server and checks the report.
//
// Usage: node xss.mjs <base-url>   (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) {
  console.error("usage: node xss.mjs <base-url>");
  process.exit(2);
}

const payloads = [
  `<img src=x onerror="window.__pwned='img'">`,
  `"><img src=x onerror="window.__pwned='quoted'">`,
  `' autofocus onfocus="window.__pwned='single'" x='`,
  `x autofocus onfocus=window.__pwned=1`,
  `x onfocus=window.__pwned=2 autofocus`,
  "x`onfocus=window.__pwned=3`autofocus",
  `</script><script>window.__pwned='script'</script>`,
  `";window.__pwned='js-string';//`,
  `javascript:window.__pwned='link'`,
  ` JaVaScRiPt:window.__pwned='link2'`,
  `java\tscript:window.__pwned='link3'`,
  `data:text/html,<script>parent.__pwned='data'</script>`,
  `<svg onload="window.__pwned='svg'">`,
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
const report = { pages: [], dialogs: [], cookie: null, documentCookie: null, loggedIn: false };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("dialog", async (d) => {
    report.dialogs.push(d.message());
    await d.dismiss();
  });

  for (const p of payloads) {
    await page.goto(`${base}/xss?v=${encodeURIComponent(p)}`, { waitUntil: "load" });
    // Give autofocus/onerror handlers a moment, then try the link.
    await page.waitForTimeout(50);
    const before = await page.evaluate(() => ({
      pwned: window.__pwned ?? null,
      text: document.getElementById("text").textContent,
      quoted: document.getElementById("quoted").value,
      unquotedAttrs: document.getElementById("unquoted").getAttributeNames(),
      linkProtocol: document.body.dataset.linkProtocol ?? null,
      scriptValue: window.__value ?? null,
    }));
    await page.click("#link", { noWaitAfter: false }).catch(() => {});
    await page.waitForTimeout(50);
    const after = await page.evaluate(() => window.__pwned ?? null).catch(() => "navigated");
    report.pages.push({ payload: p, ...before, pwnedAfterClick: after === "navigated" ? null : after });
  }

  // Log in through the real form (CSRF token from the template), then read the cookie jar.
  await page.goto(`${base}/home`, { waitUntil: "load" });
  await page.click("#login button");
  await page.waitForLoadState("load");
  report.loggedIn = (await page.textContent("body")).includes("Hello ada");
  const cookies = await context.cookies();
  report.cookie = cookies.find((c) => c.name.endsWith("session")) ?? null;
  if (report.cookie) report.cookie.value = report.cookie.value.length > 0 ? "<set>" : "";
  report.documentCookie = await page.evaluate(() => document.cookie);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
