// Helpers of the browser tests: the servers (t/web/stack.py), Chromium
// (Debian's, never a downloaded one), pages signed in as a user.

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const SHOTS = path.join(REPO, 'build', 'web-screenshots');

/** Starts the servers: resolves to {url, tokens, nginx_pid, prefix, stop}. */
export function startStack(users = ['alice', 'bob', 'carol', 'dave']) {
  return new Promise((resolve, reject) => {
    const proc = spawn('/usr/bin/python3', [path.join(HERE, 'stack.py'), ...users],
                       { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    let done = false;
    const timer = setTimeout(() => { if (!done) { proc.kill(); reject(new Error('stack did not start in 120 s')); } }, 120000);
    proc.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line && !done) {
        done = true;
        clearTimeout(timer);
        const info = JSON.parse(line);
        info.stop = () => new Promise((r) => {
          if (proc.exitCode !== null) return r();
          proc.on('exit', r);
          proc.stdin.end();
        });
        resolve(info);
      }
    });
    proc.on('exit', (code) => {
      if (!done) { done = true; clearTimeout(timer); reject(new Error(`stack.py exited ${code}`)); }
    });
  });
}

export function workerPids(masterPid) {
  try {
    return execFileSync('pgrep', ['-P', String(masterPid)], { encoding: 'utf8' })
      .split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export async function launch() {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
    headless: true,
  });
}

/** A page of its own browser context, signed in by the URL fragment.
 *  page.dialogs and page.errors collect what should never happen. */
export async function openAs(browser, stack, user, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, ...contextOptions });
  const page = await context.newPage();
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', (d) => { page.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.console = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') page.console.push(`${new Date().toISOString()} ${user}: ${m.text()}`);
  });
  await page.goto(`${stack.url}/#token=${stack.tokens[user]}`);
  await page.waitForFunction(() => window.__chat && window.__chat.client.state === 'open', null, { timeout: 20000 });
  return page;
}

export function shot(page, name) {
  return page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** The messages a page shows in the open conversation: [{id, seq, text}]. */
export function rendered(page) {
  return page.$$eval('.messages .message-list > li.msg', (els) => els.map((e) => ({
    id: Number(e.dataset.id), seq: Number(e.dataset.seq),
    text: (e.querySelector('.content') || {}).textContent || '',
  })));
}

/** The conversation's messages as the server has them (newest 100). */
export function serverMessages(page, convId) {
  return page.evaluate(async (id) => {
    const r = await window.__chat.client.messages(id, { limit: 100 });
    return r.items.map((m) => ({ id: m.id, seq: m.seq })).reverse();
  }, convId);
}

/** How many times the page's client has (re)opened its connection. */
export async function countOpens(page) {
  await page.evaluate(() => {
    if (window.__opens !== undefined) return;
    window.__opens = 0;
    window.__chat.client.on('state', ({ state }) => { if (state === 'open') window.__opens++; });
  });
}

/** Keeps what helps to read a failure: the pages' console errors and
 *  nginx's error log, beside the screenshots. */
export function keepLogs(stack, pages) {
  try {
    writeFileSync(path.join(SHOTS, 'console.log'), pages.flatMap((p) => p.console || []).join('\n') + '\n');
    copyFileSync(stack.error_log, path.join(SHOTS, 'nginx-error.log'));
  } catch (e) {
    console.error('keeping logs:', e.message);
  }
}
