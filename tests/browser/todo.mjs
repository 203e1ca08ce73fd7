// examples/todo end to end in headless Chromium, the way people use it: two users sign up and
// add todos; bob can neither see nor change alice's (through the UI, by typing her URLs, or by
// posting to them with his own CSRF token); search, complete, delete and log out; bob gets 403
// on the admin page and alice (an admin) sees it; the login rate limit answers 429 after the
// set number of failures. Every page's console errors are recorded (a CSP violation shows up
// there). Reports one JSON line on stdout; tests/all/todo.rs starts the server and checks it.
//
// Usage: node todo.mjs <base-url> [screenshot-dir]   (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from "playwright-core";

const [base, shots] = process.argv.slice(2);
if (!base) {
  console.error("usage: node todo.mjs <base-url> [screenshot-dir]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
const report = { steps: {}, console: [], failures: [] };
const check = (name, ok, detail) => {
  report.steps[name] = ok;
  if (!ok) report.failures.push({ name, detail });
};

async function user(name) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") {
      report.console.push({ user: name, url: page.url(), type: m.type(), text: m.text() });
    }
  });
  page.on("pageerror", (e) => report.console.push({ user: name, url: page.url(), type: "pageerror", text: String(e) }));
  return { context, page };
}

// Submit the form holding `selector` and return the final response's status.
async function submit(page, selector) {
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: "load" }),
    page.click(selector),
  ]);
  return response ? response.status() : null;
}

async function signUp(page, username, password) {
  await page.goto(`${base}/signup`);
  await page.fill("#username", username);
  await page.fill("#password", password);
  return submit(page, "form.stack button");
}

async function addTodo(page, title) {
  await page.fill("#new-title", title);
  return submit(page, "form.add button");
}

const titles = async (page) => page.$$eval("li.todo .title", (els) => els.map((e) => e.textContent));
const shot = async (page, name) => {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
};

try {
  const alice = await user("alice");
  const bob = await user("bob");

  await alice.page.goto(`${base}/`);
  await shot(alice.page, "home");
  // A protected page sends a browser to the login page, and back after signing in.
  const toLogin = await alice.page.goto(`${base}/todos`);
  check("login_redirect", alice.page.url().startsWith(`${base}/login?next=`), alice.page.url());
  check("login_page", toLogin.status() === 200, toLogin.status());
  await shot(alice.page, "login");

  check("alice_signs_up", (await signUp(alice.page, "alice", "correct horse battery staple")) === 200);
  check("alice_on_todos", new URL(alice.page.url()).pathname === "/todos", alice.page.url());
  for (const t of ["Buy milk", "Write the quarterly report", "Call the plumber", "Water the plants"]) {
    await addTodo(alice.page, t);
  }
  const aliceTitles = await titles(alice.page);
  check("alice_has_four", aliceTitles.length === 4, aliceTitles);
  const aliceEdit = await alice.page.getAttribute("li.todo:has-text('Buy milk') a:has-text('Edit')", "href");
  const aliceDelete = await alice.page.getAttribute("li.todo:has-text('Buy milk') form:has(button.danger)", "action");

  check("bob_signs_up", (await signUp(bob.page, "bob", "a different long passphrase")) === 200);
  await addTodo(bob.page, "Bob's own secret plan");
  const bobTitles = await titles(bob.page);
  check("bob_sees_only_his", bobTitles.length === 1 && bobTitles[0] === "Bob's own secret plan", bobTitles);

  // Typing alice's URLs: her edit page is a 404 for bob, and so is posting to her delete
  // action with bob's own valid CSRF token (from his page, as a same-origin form would).
  const typed = await bob.page.goto(`${base}${aliceEdit}`);
  check("bob_typed_edit_404", typed.status() === 404, typed.status());
  check("bob_404_page_has_no_title", !(await bob.page.content()).includes("Buy milk"));
  await bob.page.goto(`${base}/todos`);
  const token = await bob.page.getAttribute("form.add input[name=csrf_token]", "value");
  const posted = await bob.context.request.post(`${base}${aliceDelete}`, {
    form: { csrf_token: token },
    headers: { origin: base },
    maxRedirects: 0,
  });
  check("bob_posted_delete_404", posted.status() === 404, posted.status());
  await alice.page.goto(`${base}/todos`);
  check("alice_still_has_four", (await titles(alice.page)).length === 4);

  // Search, complete, delete.
  await alice.page.fill("#q", "MILK");
  await submit(alice.page, "form.search button");
  const found = await titles(alice.page);
  check("search_finds_one", found.length === 1 && found[0] === "Buy milk", found);
  await submit(alice.page, "li.todo:has-text('Buy milk') form.toggle button");
  check("completed", (await alice.page.$$("li.todo.is-done:has-text('Buy milk')")).length === 1);
  await alice.page.goto(`${base}/todos`);
  await submit(alice.page, "li.todo:has-text('Call the plumber') form:has(button.danger) button");
  const left = await titles(alice.page);
  check("deleted", left.length === 3 && !left.includes("Call the plumber"), left);
  check("flash_shown", (await alice.page.$$("p.flash")).length >= 1);
  await shot(alice.page, "todos");

  // API keys: create one (shown once), then use it from outside the browser session.
  await alice.page.goto(`${base}/account/keys`);
  await alice.page.fill("#key-name", "laptop script");
  check("key_created", (await submit(alice.page, "form.add button")) === 201);
  const key = (await alice.page.textContent("pre.secret code")).trim();
  await shot(alice.page, "keys");
  const api = await browser.newContext();
  const listed = await api.request.get(`${base}/api/todos`, { headers: { authorization: `Bearer ${key}` } });
  const body = await listed.json().catch(() => null);
  check("api_lists_alices", listed.status() === 200 && body && body.todos.length === 3, [listed.status(), body]);
  const anon = await api.request.get(`${base}/api/todos`);
  check("api_without_key_401", anon.status() === 401, anon.status());
  await api.close();

  // Roles: bob is no admin; alice is (TODO_ADMINS=alice).
  const admin = await bob.page.goto(`${base}/admin/users`);
  check("bob_admin_403", admin.status() === 403, admin.status());
  const adminOk = await alice.page.goto(`${base}/admin/users`);
  check("alice_admin_200", adminOk.status() === 200 && (await alice.page.content()).includes("bob"), adminOk.status());
  await shot(alice.page, "admin");

  // Log out.
  await alice.page.goto(`${base}/todos`);
  await submit(alice.page, "form.inline button");
  check("logged_out", new URL(alice.page.url()).pathname === "/login", alice.page.url());
  const after = await alice.page.goto(`${base}/todos`);
  check("logged_out_redirects", alice.page.url().startsWith(`${base}/login`), [after.status(), alice.page.url()]);

  // The login limit: 5 failures for one account (per 15 minutes), then 429 even with the
  // right password.
  const mallory = await user("mallory");
  const statuses = [];
  for (let i = 0; i < 6; i++) {
    await mallory.page.goto(`${base}/login`);
    await mallory.page.fill("#username", "alice");
    await mallory.page.fill("#password", `wrong guess number ${i}`);
    statuses.push(await submit(mallory.page, "form.stack button"));
  }
  check("failed_logins_422", statuses.slice(0, 5).every((s) => s === 422), statuses);
  check("then_429", statuses[5] === 429, statuses);
  report.loginStatuses = statuses;
  await mallory.page.goto(`${base}/login`);
  await mallory.page.fill("#username", "alice");
  await mallory.page.fill("#password", "correct horse battery staple");
  const locked = await submit(mallory.page, "form.stack button");
  check("right_password_still_429", locked === 429, locked);
} catch (e) {
  report.failures.push({ name: "exception", detail: String(e && e.stack ? e.stack : e) });
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
