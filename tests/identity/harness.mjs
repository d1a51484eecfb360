// Runs the real better-auth, configured by the README's own block, against questdb's database,
// and reads questdb's API after every step. Prints one JSON object: { steps: [...] }.
//
//   node harness.mjs check|sign-up-and-sign-in|account|admin|refresh
//
// Environment: DATABASE_URL (the database better-auth writes), QUESTDB_URL and QUESTDB_API_KEY
// (questdb's API over HTTP), BETTER_AUTH_SECRET and BETTER_AUTH_URL (read by better-auth itself),
// README (default: the repository's README.md). With QUESTDB_SETTLE set, each step waits after the
// better-auth call until questdb's /readyz says its cache invalidation has passed that moment.
//
// The README block is written to a file next to this one and imported as it is: it must stay
// TypeScript that is also plain JavaScript (imports, one `export const auth`, no type annotations).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const SECTION = "### Sharing the tables with better-auth";

export function readmeConfig(path) {
  const text = readFileSync(path, "utf8");
  const start = text.indexOf(SECTION);
  if (start < 0) throw new Error(`README has no "${SECTION}" section`);
  const block = /```ts\n([\s\S]*?)```/.exec(text.slice(start));
  if (!block) throw new Error("the better-auth section has no ```ts block");
  return block[1];
}

async function loadAuth() {
  const source = readmeConfig(process.env.README ?? resolve(here, "../../README.md"));
  const folder = mkdtempSync(join(here, ".readme-"));
  try {
    const file = join(folder, "auth.mjs");
    writeFileSync(file, source);
    const { auth } = await import(pathToFileURL(file).href);
    return auth;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const auth = await loadAuth();
const context = await auth.$context;
const steps = [];

// --- questdb's side ----------------------------------------------------------------------------

async function questdb(method, path, body) {
  const response = await fetch(`${process.env.QUESTDB_URL}/api/v1/${path}`, {
    method,
    headers: {
      Authorization: `Api-Key ${process.env.QUESTDB_API_KEY}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** Until questdb's invalidation heartbeat is past now: every change committed so far has reached its cache. */
async function settle() {
  if (!process.env.QUESTDB_SETTLE) return;
  const changed = Date.now();
  for (let attempt = 0; attempt < 1000; attempt++) {
    const asked = Date.now();
    const { cache } = await (await fetch(`${process.env.QUESTDB_URL}/readyz`)).json();
    // Redis's clock and this one are the same machine's: the heartbeat is at least `asked - age`.
    if (cache?.trusted && asked - cache.heartbeat_age_seconds * 1000 > changed) return;
    await new Promise((done) => setTimeout(done, 10));
  }
  throw new Error("questdb's cache invalidation did not catch up");
}

// Every session seen so far (token -> id, owner), so that a deleted one is still looked up:
// questdb must then answer that it is gone.
const knownSessions = new Map();

function remember(...sessions) {
  for (const session of sessions) {
    if (session) knownSessions.set(session.token, { id: session.id, userId: session.userId });
  }
}

/** better-auth's view of a user and their sessions, and questdb's answers for the same. */
async function snapshot(userId) {
  const sessions = [];
  for (const [token, known] of knownSessions) {
    if (known.userId !== userId) continue;
    const found = await context.internalAdapter.findSession(token);
    sessions.push({
      auth: found ? found.session : null,
      by_id: await questdb("GET", `sessions/${known.id}/`),
      by_token: await questdb("POST", "sessions/lookup/", { token }),
    });
  }
  const user = await context.internalAdapter.findUserById(userId);
  const lookup = (kind, value) => questdb("GET", `users/by-${kind}/${encodeURIComponent(value)}/`);
  return {
    auth: user,
    questdb: await questdb("GET", `users/${userId}/`),
    by_username: user?.username ? await lookup("username", user.username) : null,
    by_email: user ? await lookup("email", user.email) : null,
    sessions,
  };
}

/**
 * Runs one better-auth call and records both sides afterwards. `user` is the user the step is
 * about: an id, or a function of the call's result (for sign-ups). A call that better-auth refuses
 * is recorded with its error, and questdb is still read.
 */
async function step(name, run, { user }) {
  let result = {};
  let error = null;
  try {
    result = (await run()) ?? {};
  } catch (caught) {
    error = {
      name: caught?.name,
      message: caught?.message,
      status: caught?.status,
      code: caught?.body?.code ?? caught?.code,
    };
  }
  remember(result.session);
  await settle();
  const userId = typeof user === "function" ? user(result) : user;
  const { session, headers: _headers, ...extra } = result;
  steps.push({ step: name, error, extra: { ...extra, session }, user: userId ? await snapshot(userId) : null });
  return result;
}

// --- better-auth's side ------------------------------------------------------------------------

/** The request headers a browser would send back after a better-auth response. */
function cookies(responseHeaders) {
  const jar = responseHeaders
    .getSetCookie()
    .map((line) => line.split(";")[0])
    .filter((pair) => !pair.endsWith("="));
  return new Headers({ cookie: jar.join("; "), "user-agent": "questdb-identity-harness/1.0" });
}

async function signUp(body) {
  const { headers, response } = await auth.api.signUpEmail({ body, returnHeaders: true });
  const found = await context.internalAdapter.findSession(response.token);
  return { headers: cookies(headers), user: response.user, session: found.session };
}

async function signInEmail(email, password) {
  const { headers, response } = await auth.api.signInEmail({ body: { email, password }, returnHeaders: true });
  const found = await context.internalAdapter.findSession(response.token);
  return { headers: cookies(headers), user: response.user, session: found.session };
}

async function signInUsername(name, password) {
  const { headers, response } = await auth.api.signInUsername({
    body: { username: name, password },
    returnHeaders: true,
  });
  const found = await context.internalAdapter.findSession(response.token);
  return { headers: cookies(headers), user: response.user, session: found.session };
}

async function staffMember() {
  const email = `staff-${Date.now()}@example.com`;
  const created = await auth.api.createUser({
    body: { email, password: "staff-password-1", name: "Staff", role: "admin", data: { username: "staff_admin" } },
  });
  const signedIn = await signInEmail(email, "staff-password-1");
  return { id: created.user.id, ...signedIn };
}

const PASSWORD = "correct-horse-battery";
const LONG_IMAGE = `data:image/png;base64,${"iVBORw0KGgo".repeat(400)}`; // 4 KB: longer than any URL column
const LONG_DISPLAY_NAME = "The Very Long Display Name Of A Hero 4000"; // 41 characters

// --- scenarios ---------------------------------------------------------------------------------

const newUser = (result) => result.user?.id;

const scenarios = {
  async check() {
    // The check better-auth runs before its first query (the README leaves validateSchema on).
    steps.push({ step: "schema-check-enabled", error: null, extra: { enabled: typeof context.checkSchema === "function" } });
    await step("schema-check", () => context.checkSchema?.(), { user: null });
  },

  async "sign-up-and-sign-in"() {
    const alice = await step(
      "sign-up-with-username",
      () => signUp({ email: "Alice@Example.com", password: PASSWORD, name: "Alice", username: "Alice_One" }),
      { user: newUser },
    );
    await step("sign-up-without-username", () => signUp({ email: "bob@example.com", password: PASSWORD, name: "Bob" }), {
      user: newUser,
    });
    const me = alice.user.id;
    await step("sign-in-by-username", () => signInUsername("ALICE_one", PASSWORD), { user: me });
    await step("sign-in-by-email", () => signInEmail("alice@example.com", PASSWORD), { user: me });
    await step(
      "get-session",
      async () => {
        const found = await auth.api.getSession({ headers: alice.headers });
        return { got: found };
      },
      { user: me },
    );
  },

  async account() {
    const carol = await signUp({ email: "carol@example.com", password: PASSWORD, name: "Carol", username: "carol" });
    const me = carol.user.id;
    remember(carol.session, (await signInEmail("carol@example.com", PASSWORD)).session);
    await step(
      "update-user",
      () =>
        auth.api.updateUser({
          headers: carol.headers,
          body: { name: "Carol Renamed", image: LONG_IMAGE, displayUsername: LONG_DISPLAY_NAME, username: "carol_two" },
        }),
      { user: me },
    );
    const changed = await step(
      "change-password",
      async () => {
        const { headers, response } = await auth.api.changePassword({
          headers: carol.headers,
          body: { currentPassword: PASSWORD, newPassword: "a-new-password-2", revokeOtherSessions: true },
          returnHeaders: true,
        });
        const found = await context.internalAdapter.findSession(response.token);
        return { headers: cookies(headers), session: found.session };
      },
      { user: me },
    );
    await step("sign-out", () => auth.api.signOut({ headers: changed.headers }), { user: me });
    const again = await signInEmail("carol@example.com", "a-new-password-2");
    remember(again.session, (await signInUsername("carol_two", "a-new-password-2")).session);
    await step("revoke-sessions", () => auth.api.revokeSessions({ headers: again.headers }), { user: me });
  },

  async admin() {
    const staff = await staffMember();
    remember(staff.session);
    const created = await step(
      "admin-create-user",
      () =>
        auth.api.createUser({ headers: staff.headers, body: { email: "dave@example.com", password: PASSWORD, name: "Dave" } }),
      { user: newUser },
    );
    const dave = created.user.id;
    remember((await signInEmail("dave@example.com", PASSWORD)).session);
    const as = { headers: staff.headers };
    await step("set-role-custom", () => auth.api.setRole({ ...as, body: { userId: dave, role: "moderator" } }), {
      user: dave,
    });
    await step("set-role-list", () => auth.api.setRole({ ...as, body: { userId: dave, role: ["moderator", "gm"] } }), {
      user: dave,
    });
    await step(
      "ban-user",
      () => auth.api.banUser({ ...as, body: { userId: dave, banReason: "botting", banExpiresIn: 3600 } }),
      { user: dave },
    );
    await step("sign-in-while-banned", () => signInEmail("dave@example.com", PASSWORD), { user: dave });
    await step("unban-user", () => auth.api.unbanUser({ ...as, body: { userId: dave } }), { user: dave });
    await step("sign-in-after-unban", () => signInEmail("dave@example.com", PASSWORD), { user: dave });
    await step(
      "impersonate-user",
      async () => {
        const { response } = await auth.api.impersonateUser({ ...as, body: { userId: dave }, returnHeaders: true });
        return { session: response.session, staff_id: staff.id };
      },
      { user: dave },
    );
    await step("remove-user", () => auth.api.removeUser({ ...as, body: { userId: dave } }), { user: dave });
  },

  async refresh() {
    const erin = await signUp({ email: "erin@example.com", password: PASSWORD, name: "Erin", username: "erin" });
    remember(erin.session);
    await step(
      "questdb-refresh-seen-by-get-session",
      async () => {
        const refreshed = await questdb("POST", `sessions/${erin.session.id}/refresh/`);
        const found = await auth.api.getSession({ headers: erin.headers });
        return { refreshed, got: found };
      },
      { user: erin.user.id },
    );
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
await scenarios[name]();
// Written in full before exiting: a pipe takes large writes asynchronously, and the README's pool
// would otherwise keep the process alive.
await new Promise((done) => process.stdout.write(`${JSON.stringify({ steps })}\n`, done));
process.exit(0);
