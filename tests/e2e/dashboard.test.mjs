// The dashboard in a real headless browser (Debian's chromium, driven by
// playwright-core) against a real `baton serve` on a temporary repository,
// with the fake agent doing the work. Screenshots go to artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, existsSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BATON = process.env.BATON_BIN || path.join(root, 'target/debug/baton');
const FAKE = path.join(root, 'target/debug/fake-agent');
const STANDIN = path.join(root, 'target/debug/github-stand-in');
const ARTIFACTS = path.join(here, 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

const GIT_ENV = {
  GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.com',
};

let browser;
const servers = [];

before(async () => {
  for (const bin of [BATON, FAKE, STANDIN]) assert.ok(existsSync(bin), `${bin} is built (cargo build --workspace)`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  await Promise.all(servers.map((s) => s.stop()));
  for (const s of servers) rmSync(s.dir, { recursive: true, force: true });
});

/** Starts `baton` with `args` (a serve) in `cwd`: its address, the
 * sign-in link `baton token url` prints in `tokenCwd`, a way to stop it and
 * everything it started, and a way to call its API with that link's token. */
async function launch(args, cwd, env, dir, tokenCwd = cwd) {
  const proc = spawn(BATON, args, { cwd, env, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const url = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`baton serve did not start: ${seen}`)), 20000);
    proc.stderr.on('data', (chunk) => {
      seen += chunk;
      const m = seen.match(/baton serve: listening on (http:\/\/[\d.:]+)\n/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => reject(new Error(`baton serve exited ${code}: ${seen}`)));
  });
  // Every request needs a token, on loopback too: the page signs in with
  // the link `baton token url` prints, the helpers send the same token.
  const link = execFileSync(BATON, ['token', 'url'], { cwd: tokenCwd, env }).toString().trim();
  const token = link.split('#token=')[1];
  return {
    url, dir, link,
    /** Ends baton serve and everything it started (its process group). */
    async stop() {
      const kill = (sig) => { try { process.kill(-proc.pid, sig); } catch { /* gone */ } };
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    async api(method, p, body) {
      const headers = { Authorization: `Bearer ${token}` };
      if (body) headers['Content-Type'] = 'application/json';
      const res = await fetch(url + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
      const text = await res.text();
      try {
        return { status: res.status, json: JSON.parse(text) };
      } catch {
        throw new Error(`${method} ${url}${p}: ${res.status} ${text.slice(0, 500)}`);
      }
    },
  };
}

/** A git repository at `repo` with `tasks` (TOML) planned for the fake agent. */
function newRepo(repo, env, tasks) {
  execFileSync('git', ['init', '-q', '-b', 'main', repo], { env });
  execFileSync('git', ['-C', repo, 'commit', '-q', '--allow-empty', '-m', 'init'], { env });
  writeFileSync(path.join(repo, 'baton.toml'),
    `[agent.fake]\nadapter = "exec"\ncommand = [${JSON.stringify(FAKE)}]\n\n[defaults]\nagent = "fake"\n\n${tasks}`);
}

/** A temporary repository with `tasks` (TOML) planned for the fake agent, and `baton serve` on it (with `more` in its environment). */
async function serve(tasks, more = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'baton-e2e-'));
  const repo = path.join(dir, 'repo');
  const env = { ...process.env, ...GIT_ENV, HOME: dir, ...more };
  newRepo(repo, env, tasks);
  const server = { ...(await launch(['serve', '--addr', '127.0.0.1:0'], repo, env, dir)), repo };
  servers.push(server);
  return server;
}

const card = (page, id) => page.locator(`[data-testid="task-card-${id}"]`);

async function stateOf(page, id) {
  return card(page, id).getAttribute('data-state');
}

async function waitState(page, id, state, timeout = 30000) {
  try {
    await page.waitForSelector(`[data-testid="task-card-${id}"][data-state="${state}"]`, { timeout });
  } catch (e) {
    await page.screenshot({ path: path.join(ARTIFACTS, `failed-${id}-${state}.png`), fullPage: true });
    throw e;
  }
}

test('a running task moves to succeeded on the page without a reload', async () => {
  const s = await serve('');
  const go = path.join(s.dir, 'go');
  writeFileSync(path.join(s.repo, 'baton.toml'),
    `[agent.fake]\nadapter = "exec"\ncommand = [${JSON.stringify(FAKE)}]\n\n[[task]]\nid = "slow"\nagent = "fake"\nprompt = "say started; wait-file ${go}; write slow.txt done"\n`);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  const started = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  assert.equal(started.status, 201);
  await waitState(page, 'slow', 'running');
  await page.evaluate(() => { window.__notReloaded = true; });
  writeFileSync(go, '');
  await waitState(page, 'slow', 'succeeded');
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
  await card(page, 'slow').click();
  const transcript = page.getByTestId('transcript');
  await transcript.getByText('merged into the integration branch').waitFor({ timeout: 10000 });
  await page.getByRole('tab', { name: 'Diff' }).click();
  await page.getByTestId('diff').getByText('+done').waitFor({ timeout: 10000 });
  // The scorecard counts the task for its profile, at its first try.
  const fake = page.getByTestId('scorecard').locator('tr[data-profile="fake"]');
  await fake.waitFor({ timeout: 10000 });
  const cells = await fake.locator('td').allTextContents();
  assert.deepEqual(cells.slice(0, 5), ['fake', '1', '1', '0', '0']);
  await page.screenshot({ path: path.join(ARTIFACTS, 'desktop-succeeded.png'), fullPage: true });
  await page.close();
});

test('Stop on a running task stops it', async () => {
  const s = await serve('[[task]]\nid = "forever"\nprompt = "write wip.txt halfway; hang"\n');
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await waitState(page, 'forever', 'running');
  await card(page, 'forever').click();
  await page.getByTestId('btn-stop').click();
  await waitState(page, 'forever', 'stopped');
  const runs = await s.api('GET', '/api/runs');
  const report = await s.api('GET', `/api/runs/${runs.json.runs[0].id}`);
  assert.equal(report.json.tasks[0].status, 'stopped');
  assert.match(report.json.tasks[0].reason, /stopped by request/);
  await page.close();
});

test('a message typed in the task pane reaches the task and shows in its transcript', async () => {
  const s = await serve('');
  const go = path.join(s.dir, 'go');
  writeFileSync(path.join(s.repo, 'baton.toml'),
    `[agent.fake]\nadapter = "exec"\ncommand = [${JSON.stringify(FAKE)}]\n\n[[task]]\nid = "listener"\nagent = "fake"\nprompt = "say started; wait-file ${go}; write done.txt done"\n`);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  const { json } = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await waitState(page, 'listener', 'running');
  await card(page, 'listener').click();
  await page.getByTestId('steer-input').fill('the API moved to v2');
  await page.getByTestId('btn-message').click();
  await page.getByTestId('transcript').getByText('the API moved to v2').waitFor({ timeout: 10000 });
  const sent = await s.api('GET', `/api/runs/${json.run}/tasks/listener/messages`);
  assert.deepEqual(sent.json.messages.map((m) => m.text), ['the API moved to v2']);
  assert.equal(await page.getByTestId('steer-input').inputValue(), '', 'the input is cleared once sent');
  writeFileSync(go, '');
  await waitState(page, 'listener', 'succeeded');
  await page.close();
});

test('Approve on a task waiting for approval merges it', async () => {
  const s = await serve('[[task]]\nid = "gated"\nprompt = "write gated.txt change"\napprove = true\n');
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  const { json } = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await waitState(page, 'gated', 'awaiting_approval');
  const banner = page.getByTestId('attention-banner');
  await banner.waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await banner.innerText(), /gated/);
  await card(page, 'gated').click();
  await page.getByTestId('btn-approve').click();
  await waitState(page, 'gated', 'succeeded');
  const report = await s.api('GET', `/api/runs/${json.run}`);
  assert.equal(report.json.tasks[0].merged, true);
  await page.close();
});

test('a race shows its candidates side by side, and a person picks another winner before it merges', async () => {
  const s = await serve('[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n'
    + '[[task]]\nid = "race"\nagent = "sh"\ncandidates = 2\napprove = true\n'
    + 'prompt = "if [ $BATON_TASK = race.1 ]; then echo one > r.txt; else printf \'two\\\\nlines\\\\n\' > r.txt; fi"\n');
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  const { json } = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await waitState(page, 'race', 'awaiting_approval');
  await page.getByTestId('won-race.1').waitFor({ timeout: 10000 });
  await card(page, 'race').click();
  await page.getByTestId('tab-candidates').click();
  const reason = page.getByTestId('pick-reason');
  await reason.getByText('race.1 ranked first of 2 that passed, by diff_lines').waitFor({ timeout: 10000 });
  await page.getByTestId('candidate-diff-race.1').getByText('+one').waitFor({ timeout: 10000 });
  await page.getByTestId('candidate-diff-race.2').getByText('+lines').waitFor({ timeout: 10000 });
  assert.equal(await page.getByTestId('pick-race.1').isDisabled(), true, 'the winner cannot be picked again');
  await page.screenshot({ path: path.join(ARTIFACTS, 'desktop-race.png'), fullPage: true });
  await page.getByTestId('pick-race.2').click();
  await reason.getByText('picked by hand (baton pick) in place of race.1').waitFor({ timeout: 10000 });
  await page.getByTestId('won-race.2').waitFor({ timeout: 10000 });
  await page.getByTestId('btn-approve').click();
  await waitState(page, 'race', 'succeeded');
  const report = await s.api('GET', `/api/runs/${json.run}`);
  const race = report.json.tasks.find((t) => t.id === 'race');
  assert.equal(race.merged, true);
  assert.deepEqual(race.candidates.map((c) => c.winner), [false, true]);
  await page.close();
});

test('a task added from the form runs', async () => {
  const s = await serve('');
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  await page.getByTestId('add-prompt').fill('say hi from the form');
  await page.getByTestId('add-submit').click();
  await page.waitForSelector('[data-testid^="task-card-t1-say-hi"][data-state="succeeded"]', { timeout: 30000 });
  const runs = await s.api('GET', '/api/runs');
  const report = await s.api('GET', `/api/runs/${runs.json.runs[0].id}`);
  assert.equal(report.json.tasks[0].result, 'hi from the form');
  await page.close();
});

test('the board is usable on a phone-sized screen', async () => {
  const s = await serve(
    '[[task]]\nid = "api"\nprompt = "write api.txt x; say done"\n\n' +
    '[[task]]\nid = "ui-work"\nprompt = "hang"\n\n' +
    '[[task]]\nid = "review"\nneeds = ["api"]\nprompt = "say looks good"\napprove = true\n\n' +
    '[[task]]\nid = "docs"\nneeds = ["review"]\nprompt = "say docs"\n');
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await context.newPage();
  await page.goto(s.link);
  await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await waitState(page, 'review', 'awaiting_approval');
  await waitState(page, 'ui-work', 'running');
  await page.screenshot({ path: path.join(ARTIFACTS, 'phone-board.png'), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  await card(page, 'review').tap();
  const approve = page.getByTestId('btn-approve');
  await approve.waitFor({ state: 'visible' });
  const box = await approve.boundingBox();
  assert.ok(box && box.height >= 40, `Approve is finger-sized (${box && box.height}px)`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'phone-detail.png'), fullPage: true });
  await approve.tap();
  await waitState(page, 'review', 'succeeded');
  // On a phone the detail covers the board: back to it, then the next task.
  await page.getByRole('button', { name: 'Close task' }).tap();
  await card(page, 'ui-work').tap();
  const stop = page.getByTestId('btn-stop');
  const sbox = await stop.boundingBox();
  assert.ok(sbox && sbox.height >= 40, `Stop is finger-sized (${sbox && sbox.height}px)`);
  await stop.tap();
  await waitState(page, 'ui-work', 'stopped');
  await context.close();
});

test('a conflict is shown coming, then resolved by a resolution attempt', async () => {
  const s = await serve('');
  const go = path.join(s.dir, 'go');
  // The resolver keeps both sides: it drops the conflict markers.
  const keepBoth = "for f in $(git diff --name-only --diff-filter=U); do sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' \"$f\"; done";
  writeFileSync(path.join(s.repo, 'baton.toml'),
    `[agent.fake]\nadapter = "exec"\ncommand = [${JSON.stringify(FAKE)}]\n\n` +
    `[agent.fixer]\nadapter = "exec"\ncommand = ["bash", "-ec", ${JSON.stringify(keepBoth)}]\n\n` +
    '[defaults]\nagent = "fake"\n\n[run]\nmax_parallel = 2\nresolver = "fixer"\n\n' +
    `[[task]]\nid = "slow"\non_conflict = "resolve"\nprompt = "write shared.txt from slow; commit early; wait-file ${go}"\n\n` +
    '[[task]]\nid = "quick"\nprompt = "sleep 0.2; write shared.txt from quick"\n');
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  const { json } = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await waitState(page, 'quick', 'succeeded');
  const warn = card(page, 'slow').locator('.card-warn');
  await warn.waitFor({ timeout: 15000 });
  assert.match(await warn.innerText(), /conflict ahead: shared\.txt/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'conflict-ahead.png'), fullPage: true });
  writeFileSync(go, '');
  await waitState(page, 'slow', 'succeeded');
  await card(page, 'slow').click();
  const transcript = page.getByTestId('transcript');
  await transcript.getByText('a resolution attempt starts').waitFor({ timeout: 10000 });
  await transcript.locator('.tag-resolve').first().waitFor({ timeout: 10000 });
  await page.getByRole('tab', { name: 'Attempts' }).click();
  const rows = page.locator('#attempts tbody tr:not(.reason)');
  await rows.nth(1).waitFor({ timeout: 10000 });
  assert.match(await rows.nth(1).innerText(), /resolution/);
  assert.doesNotMatch(await rows.nth(0).innerText(), /resolution/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'resolution-attempt.png'), fullPage: true });
  const report = await s.api('GET', `/api/runs/${json.run}`);
  const slow = report.json.tasks.find((t) => t.id === 'slow');
  assert.equal(slow.merged, true);
  const attempts = await s.api('GET', `/api/runs/${json.run}/tasks/slow/attempts`);
  assert.deepEqual(attempts.json.attempts.map((a) => a.kind), ['work', 'resolve']);
  await page.close();
});

test('a goal becomes a proposed plan, shown as a graph and editable TOML, then runs as edited', async () => {
  // The planner is a stand-in (exec): it writes a two-task plan to $BATON_PLAN_OUT.
  const planner = `cat > "$BATON_PLAN_OUT" <<'PLAN'
[agent.fake]
adapter = "exec"
command = [${JSON.stringify(FAKE)}]

[defaults]
agent = "fake"

[[task]]
id = "api"
prompt = "write api.txt first"

[[task]]
id = "docs"
needs = ["api"]
prompt = "write docs.txt from the planner"
PLAN
echo "api first, then its docs"`;
  const s = await serve(`[agent.planner]\nadapter = "exec"\ncommand = ["bash", "-ec", ${JSON.stringify(planner)}]\n`);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(s.link);
  await page.getByTestId('goal-text').fill('An API and its docs');
  await page.getByTestId('goal-agent').fill('planner');
  await page.getByTestId('goal-submit').click();
  const proposal = page.getByTestId('proposal');
  await proposal.waitFor({ state: 'visible', timeout: 30000 });
  assert.match(await proposal.innerText(), /api first, then its docs/);
  // The graph: both tasks, joined by an edge.
  await page.waitForSelector('[data-testid="proposal-dag"] g[data-task="docs"]');
  assert.equal(await page.locator('[data-testid="proposal-dag"] path.edge').count(), 1);
  await page.screenshot({ path: path.join(ARTIFACTS, 'proposal.png'), fullPage: true });
  // It waits for a yes in the inbox too (a plan item, runnable from there).
  const planItem = page.locator('li.attn-plan');
  await planItem.waitFor({ timeout: 10000 });
  assert.match(await planItem.innerText(), /An API and its docs[\s\S]*Run it[\s\S]*Discard/);
  const plannerRun = (await s.api('GET', '/api/inbox')).json.items.find((i) => i.kind === 'plan').run;
  // Edit it, then run it.
  const toml = page.getByTestId('proposal-toml');
  const text = await toml.inputValue();
  assert.match(text, /id = "docs"/);
  await toml.fill(text.replace('from the planner', 'edited by a person'));
  await page.getByTestId('proposal-run').click();
  await waitState(page, 'docs', 'succeeded');
  const runs = await s.api('GET', '/api/runs');
  const run = runs.json.runs.find((r) => r.plan === 'dashboard-plan.toml');
  assert.ok(run, 'the edited plan ran');
  const report = await s.api('GET', `/api/runs/${run.id}`);
  const branch = report.json.integration_branch;
  const docs = execFileSync('git', ['-C', s.repo, 'show', `${branch}:docs.txt`]).toString();
  assert.equal(docs, 'edited by a person\n');
  // The yes is recorded: the plan left the inbox.
  await planItem.waitFor({ state: 'hidden', timeout: 10000 });
  const decided = (await s.api('GET', `/api/plans/${plannerRun}`)).json.decided;
  assert.deepEqual(decided, { decision: 'approved', run: run.id });
  // A broken edit is refused with the plan's error, and nothing starts.
  await page.getByTestId('goal-submit').click();
  await proposal.waitFor({ state: 'visible', timeout: 30000 });
  await toml.fill('[[task]]\nid = "x"\nneeds = ["nowhere"]\nprompt = "y"\n');
  await page.getByTestId('proposal-run').click();
  await page.getByTestId('proposal-status').getByText(/nowhere/).waitFor({ timeout: 10000 });
  await page.close();
  // A notification's link opens the plan still waiting; Discard says no.
  const waiting = (await s.api('GET', '/api/inbox')).json.items.filter((i) => i.kind === 'plan');
  assert.equal(waiting.length, 1, 'the refused edit left its plan waiting');
  const linked = await browser.newPage({ viewport: { width: 390, height: 800 } });
  await linked.goto(s.link.replace('/#', `/?proposal=${waiting[0].run}#`));
  await linked.getByTestId('proposal').waitFor({ state: 'visible', timeout: 10000 });
  await linked.getByTestId('proposal-discard').click();
  await linked.getByTestId('proposal').waitFor({ state: 'hidden', timeout: 10000 });
  assert.equal((await s.api('GET', `/api/plans/${waiting[0].run}`)).json.decided.decision, 'discarded');
  assert.equal((await s.api('GET', '/api/inbox')).json.items.length, 0);
  await linked.close();
});

test('a link to a task opens that run and task, and the run shows its pull request', async () => {
  // The GitHub stand-in (GitHub's REST shapes, a bare repository as the remote, a CI check).
  const TOKEN = 'e2e-github-token';
  const s = await serve('', { E2E_GITHUB_TOKEN: TOKEN });
  const origin = path.join(s.dir, 'origin.git');
  const urlFile = path.join(s.dir, 'github-url');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', origin], { env: { ...process.env, ...GIT_ENV } });
  execFileSync('git', ['-C', s.repo, 'remote', 'add', 'origin', origin]);
  execFileSync('git', ['-C', s.repo, 'push', '-q', 'origin', 'main']);
  const gh = spawn(STANDIN, ['serve', '--repo', 'acme/app', '--token', TOKEN, '--url-file', urlFile,
    '--remote', origin, '--ci-script', 'test -f notes.txt'], { stdio: 'ignore' });
  try {
    let api = '';
    for (let i = 0; i < 100 && !api; i++) {
      await new Promise((r) => setTimeout(r, 50));
      api = existsSync(urlFile) ? readFileSync(urlFile, 'utf8').trim() : '';
    }
    writeFileSync(path.join(s.repo, 'baton.toml'),
      `[agent.fake]\nadapter = "exec"\ncommand = [${JSON.stringify(FAKE)}]\n\n[defaults]\nagent = "fake"\n\n` +
      `[[task]]\nid = "notes"\nprompt = "write notes.txt hello"\n\n` +
      `[land]\nmode = "pr"\nfollow = true\nmerge_when = "approved"\nrepo = "acme/app"\napi_url = "${api}"\n` +
      `token_env = "E2E_GITHUB_TOKEN"\npoll = "1s"\n`);
    const first = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
    assert.equal(first.status, 201, JSON.stringify(first.json));
    const run = first.json.run;
    // Green and waiting for an approval that does not come.
    for (let i = 0; i < 200; i++) {
      const r = await s.api('GET', `/api/runs/${run}`);
      if (r.json.pull && /waiting for an approval/.test(r.json.pull.note || '')) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    // A newer run, which the board shows by default.
    writeFileSync(path.join(s.repo, 'other.toml'),
      `[agent.fake]\nadapter = "exec"\ncommand = [${JSON.stringify(FAKE)}]\n\n[[task]]\nid = "other"\nagent = "fake"\nprompt = "say other"\n`);
    const second = await s.api('POST', '/api/runs', { plan: 'other.toml' });
    assert.equal(second.status, 201);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const [base, hash] = s.link.split('#');
    await page.goto(`${base.replace(/\/$/, '')}/?run=${run}&task=notes#${hash}`);
    const pull = page.getByTestId('run-pull');
    await pull.waitFor({ timeout: 15000 });
    const text = await pull.innerText();
    assert.match(text, /pull request #1/);
    assert.match(text, /following/);
    assert.match(text, /checks: 1 passed/);
    assert.match(text, /waiting for an approval/);
    assert.equal(await pull.locator('a').getAttribute('href'), 'https://github.com/acme/app/pull/1');
    // The task's pane is open on the linked task.
    await page.getByTestId('transcript').getByText('merged into the integration branch').waitFor({ timeout: 10000 });
    assert.equal(await page.getByTestId('task-detail').isVisible(), true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'pull-request.png'), fullPage: true });
    await page.close();
  } finally {
    gh.kill();
  }
});

test('the panel of what comes in lists a source and its items, a schedule and a hook', async () => {
  const item = JSON.stringify({ id: 'ENG-1', title: 'Write notes', labels: ['quiet'] });
  const s = await serve(
    `[agent.quiet]\nadapter = "exec"\ncommand = [${JSON.stringify(FAKE)}]\nenv = { FAKE_AGENT_SCRIPT = "say noted" }\n\n` +
    `[[route]]\ntags = ["quiet"]\nagent = "quiet"\n\n` +
    `[[source]]\nkind = "command"\nname = "board"\ncommand = ["sh", "-c", ${JSON.stringify(`echo '${item}'`)}]\npoll = "5s"\n\n` +
    `[[schedule]]\nname = "nightly"\ncron = "0 3 * * *"\nprompt = "say tidy"\n\n` +
    `[[hook]]\nname = "deploy"\ntoken_env = "E2E_HOOK_TOKEN"\nprompt = "say {{ payload.version }}"\n`,
    { E2E_HOOK_TOKEN: 'e2e-hook-token' });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(s.link);
  const panel = page.getByTestId('incoming');
  await panel.waitFor({ state: 'visible', timeout: 15000 });
  await page.getByTestId('schedules').getByText(/0 3 \* \* \* · a task · next /).waitFor({ timeout: 10000 });
  assert.match(await page.getByTestId('hooks').innerText(), /POST \/api\/hooks\/deploy · token · a task/);
  // The source's item, once taken (the panel looks again every 15 s).
  const entry = page.getByTestId('source-command').getByRole('button', { name: 'ENG-1 Write notes' });
  await entry.waitFor({ timeout: 30000 });
  await entry.click();
  await page.getByTestId('task-detail').waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await page.getByTestId('task-detail').innerText(), /board-eng-1-write-notes[\s\S]*quiet[\s\S]*noted/);
  // A run without a pull request says nothing about one.
  assert.equal(await page.getByTestId('run-pull').count(), 0);
  assert.doesNotMatch(await page.locator('#run-head').innerText(), /null/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'incoming.png'), fullPage: true });
  await page.close();
});

const SH = '[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n';

test('the inbox answers an agent\'s question inline, with its count in the title', async () => {
  const s = await serve(SH +
    `[[task]]\nid = "pick"\nagent = "sh"\nprompt = '''c=$(${JSON.stringify(BATON)} ask "Which colour?" --option red --option blue); echo "$c" > colour.txt'''\n\n` +
    '[[task]]\nid = "gated"\nprompt = "write gated.txt v1"\napprove = true\n');
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  const { json } = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  const inbox = page.getByTestId('inbox');
  await inbox.getByText('pick: asks: Which colour?').waitFor({ timeout: 20000 });
  await inbox.getByText(/gated: waits for your approval/).waitFor({ timeout: 20000 });
  await page.waitForFunction(() => document.title === '(2) baton', null, { timeout: 10000 });
  const items = (await s.api('GET', '/api/inbox')).json.items;
  const q = items.find((i) => i.kind === 'question');
  const a = items.find((i) => i.kind === 'approval');
  await page.screenshot({ path: path.join(ARTIFACTS, 'inbox-desktop.png'), fullPage: true });
  await page.getByTestId(`inbox-answer-${q.id}-blue`).click();
  await page.getByTestId(`inbox-approve-${a.id}`).click();
  await waitState(page, 'pick', 'succeeded');
  await waitState(page, 'gated', 'succeeded');
  await page.waitForFunction(() => document.title === 'baton', null, { timeout: 10000 });
  await page.getByTestId('attention-banner').waitFor({ state: 'hidden', timeout: 10000 });
  const report = await s.api('GET', `/api/runs/${json.run}`);
  const pick = report.json.tasks.find((t) => t.id === 'pick');
  const colour = execFileSync('git', ['-C', s.repo, 'show', `${pick.branch}:colour.txt`]).toString();
  assert.equal(colour, 'blue\n');
  await page.close();
});

test('on a phone, a free question is answered from the inbox', async () => {
  const s = await serve(SH +
    `[[task]]\nid = "name"\nagent = "sh"\nprompt = '''n=$(${JSON.stringify(BATON)} ask "What should the release be called?"); echo "$n" > name.txt'''\n`);
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await context.newPage();
  await page.goto(s.link);
  const { json } = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await page.getByTestId('inbox').getByText(/asks: What should the release be called\?/).waitFor({ timeout: 20000 });
  const [q] = (await s.api('GET', '/api/inbox')).json.items;
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'inbox-phone.png'), fullPage: true });
  await page.getByTestId(`inbox-text-${q.id}`).fill('Aurora');
  await page.getByTestId(`inbox-send-${q.id}`).tap();
  await waitState(page, 'name', 'succeeded');
  const report = await s.api('GET', `/api/runs/${json.run}`);
  const name = execFileSync('git', ['-C', s.repo, 'show', `${report.json.tasks[0].branch}:name.txt`]).toString();
  assert.equal(name, 'Aurora\n');
  await context.close();
});

test('the service worker shows a pushed question with its buttons', async () => {
  const s = await serve('');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['notifications'], { origin: s.url });
  const page = await context.newPage();
  await page.goto(s.link);
  const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  assert.equal(scope, `${s.url}/`);
  const cdp = await context.newCDPSession(page);
  const registration = new Promise((resolve) => cdp.on('ServiceWorker.workerRegistrationUpdated',
    ({ registrations }) => { const r = registrations.find((x) => x.scopeURL === scope && !x.isDeleted); if (r) resolve(r.registrationId); }));
  await cdp.send('ServiceWorker.enable');
  const registrationId = await registration;
  // What `baton serve` pushes for a question (the payload its Web Push
  // channel encrypts; the push service hands it to the worker decrypted).
  const payload = {
    title: 'baton: pick asks', body: 'baton: task pick of run r1 asks: Which colour?', tag: 'baton-41',
    kind: 'question', actions: [{ action: 'a0', title: 'red' }, { action: 'a1', title: 'blue' }],
    links: { a0: `${s.url}/api/act/x.y`, a1: `${s.url}/api/act/z.w` }, click: `${s.url}/?run=r1&task=pick`,
  };
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: s.url, registrationId, data: JSON.stringify(payload) });
  let shown = [];
  for (let i = 0; i < 100 && !shown.length; i++) {
    shown = await page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
      .map((n) => ({ title: n.title, body: n.body, tag: n.tag, actions: n.actions.map((a) => a.title), data: n.data, sticky: n.requireInteraction })));
    if (!shown.length) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(shown.length, 1, 'the notification is shown');
  const [n] = shown;
  assert.equal(n.title, 'baton: pick asks');
  assert.match(n.body, /Which colour\?/);
  assert.equal(n.tag, 'baton-41');
  assert.equal(n.sticky, true, 'a question stays until answered');
  assert.deepEqual(n.data.links, payload.links);
  // Action buttons show where the platform has them (Notification.maxActions).
  const max = await page.evaluate(() => Notification.maxActions || 0);
  assert.deepEqual(n.actions, ['red', 'blue'].slice(0, max));
  await context.close();
});

test('a review comment on a diff line reaches the agent and shows its lines changed', async () => {
  const script = 'if [ -n "$BATON_FEEDBACK" ]; then printf "%s" "$BATON_FEEDBACK" > review.txt; sed -i "2s/.*/two fixed/" notes.txt; else printf "one\\ntwo\\nthree\\n" > notes.txt; fi';
  const s = await serve(SH + `[[task]]\nid = "w"\nagent = "sh"\napprove = true\nprompt = '''${script}'''\n`);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(s.link);
  const { json } = await s.api('POST', '/api/runs', { plan: 'baton.toml' });
  await waitState(page, 'w', 'awaiting_approval');
  await card(page, 'w').click();
  await page.getByRole('tab', { name: 'Diff' }).click();
  await page.getByTestId('diff-line-notes.txt:2').click();
  await page.getByTestId('review-text').fill('make it say fixed');
  await page.getByTestId('review-add').click();
  await page.getByTestId('diff').getByText('make it say fixed [draft]').waitFor({ timeout: 10000 });
  await page.getByTestId('review-submit').click();
  await page.getByTestId('diff').getByText('make it say fixed [changed: addressed?]').waitFor({ timeout: 30000 });
  await page.screenshot({ path: path.join(ARTIFACTS, 'review.png'), fullPage: true });
  const comments = (await s.api('GET', `/api/runs/${json.run}/tasks/w/review`)).json.comments;
  assert.deepEqual(comments.map((c) => [c.path, c.line, c.mark]), [['notes.txt', 2, 'changed']]);
  const report = await s.api('GET', `/api/runs/${json.run}`);
  const review = execFileSync('git', ['-C', s.repo, 'show', `${report.json.tasks[0].branch}:review.txt`]).toString();
  assert.match(review, /1\. notes\.txt line 2:[\s\S]*>    2 \| two[\s\S]*make it say fixed/);
  await page.close();
});

/** One `baton serve` of repositories `names` (each with its `tasks[name]`
 * planned for the fake agent); the sign-in link shows the first. */
async function serveRepos(names, tasks) {
  const dir = mkdtempSync(path.join(tmpdir(), 'baton-e2e-'));
  const env = { ...process.env, ...GIT_ENV, HOME: dir };
  const args = ['serve', '--addr', '127.0.0.1:0'];
  for (const name of names) {
    const repo = path.join(dir, name);
    newRepo(repo, env, tasks[name] || '');
    args.push('--repo', repo);
  }
  // Started outside any repository; the sign-in link shows the first.
  const server = await launch(args, dir, env, dir, path.join(dir, names[0]));
  servers.push(server);
  return server;
}

test('one server of three repositories: the page switches between them and gathers what needs you', async () => {
  const s = await serveRepos(['web', 'api', 'docs'], {
    api: '[[task]]\nid = "api-task"\nprompt = "write api.txt hello"\n',
    docs: '[[task]]\nid = "docs-task"\nprompt = "write docs.txt hello"\napprove = true\n',
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(s.link);
  const pick = page.getByTestId('repo-switch');
  await pick.waitFor({ state: 'visible', timeout: 10000 });
  assert.deepEqual(await pick.locator('option').allInnerTexts(), ['web', 'api', 'docs']);
  assert.equal(await pick.inputValue(), 'web');
  assert.equal((await s.api('POST', '/api/repos/api/runs', { plan: 'baton.toml' })).status, 201);
  assert.equal((await s.api('POST', '/api/repos/docs/runs', { plan: 'baton.toml' })).status, 201);
  // Both runs are under way (docs' task waits for approval) before the page
  // looks: web, shown again, has none of them.
  const waiting = async () => {
    const { json } = await s.api('GET', '/api/repos/docs/inbox');
    return json.items.length === 1;
  };
  for (let i = 0; !(await waiting()); i++) {
    assert.ok(i < 300, 'docs-task waits for approval within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  await page.reload();
  await pick.waitFor({ state: 'visible', timeout: 10000 });
  await page.waitForFunction(() => /No runs yet/.test(document.getElementById('runs').innerText), null, { timeout: 10000 });
  assert.equal(await card(page, 'docs-task').count(), 0);
  await pick.selectOption('api');
  await waitState(page, 'api-task', 'succeeded');
  assert.equal(await card(page, 'docs-task').count(), 0);
  assert.match(page.url(), /\?repo=api/);
  // docs' task waits for approval: api's page says so, with its repository.
  const banner = page.getByTestId('attention-banner');
  await banner.waitFor({ state: 'visible', timeout: 20000 });
  await page.waitForFunction(() => /docs: docs-task/.test(document.getElementById('attention').innerText), null, { timeout: 20000 });
  await page.screenshot({ path: path.join(ARTIFACTS, 'repos-needs-you.png'), fullPage: true });
  // Approving it there merges it in docs.
  await page.locator('[data-testid^="inbox-approve-docs-"]').click();
  await page.locator('[data-testid^="inbox-status-docs-"]').filter({ hasText: /approv|done/i }).waitFor({ timeout: 10000 });
  await pick.selectOption('docs');
  await waitState(page, 'docs-task', 'succeeded');
  const runs = await s.api('GET', '/api/repos/docs/runs');
  assert.equal(runs.json.runs.length, 1);
  assert.equal((await s.api('GET', '/api/repos/web/runs')).json.runs.length, 0);
  await page.close();
});
